"""MagicFace's reference attention as diffusers attention processors on a stock SD UNet.

In each transformer block of the denoiser, the first self-attention attends over the block's own
tokens followed by the matching ID-encoder capture, both normalised by the *denoiser* block's
``norm1``; only the block's own tokens are kept. Keys and values of the reference tokens do not
change during sampling, so they are computed once per reference and reused at every step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from torch import nn


def transformer_blocks(unet: UNet2DConditionModel) -> list[BasicTransformerBlock]:
    """The UNet's transformer blocks in forward order (down, mid, up; 16 in SD 1.5).

    ``named_modules()`` lists the mid block last, so it cannot be used for this.
    """
    stages = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    return [block for stage in stages for transformer in getattr(stage, "attentions", None) or []
            for block in transformer.transformer_blocks]


def _heads(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """[B, T, H*D] -> [B, H, T, D]."""
    return x.unflatten(-1, (attn.heads, -1)).transpose(1, 2)


def _attend(attn: Attention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Multi-head SDPA of projected tokens ([B, T, H*D]) followed by the output projection."""
    out = F.scaled_dot_product_attention(_heads(attn, query), _heads(attn, key), _heads(attn, value))
    out = out.transpose(1, 2).flatten(2).to(query.dtype)
    return attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor


class ReferenceAttnProcessor:
    """Self-attention over ``[own tokens ; norm(reference)]`` that returns the own tokens only.

    ``own_queries=True`` projects queries for the own tokens only and caches the reference's
    keys/values; ``False`` is the original formulation (queries for all tokens, then a slice),
    kept for comparison and benchmarks.
    """

    def __init__(self, norm: nn.Module, own_queries: bool = True) -> None:
        self.norm = norm
        self.own_queries = own_queries
        self.reference: torch.Tensor | None = None
        self._kv: tuple[torch.Tensor, torch.Tensor] | None = None

    def set_reference(self, reference: torch.Tensor | None) -> None:
        """The raw ID-encoder capture ``[1 or B, M, C]`` (before ``norm1``); None detaches it."""
        self.reference = reference
        self._kv = None

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None) -> torch.Tensor:
        if self.reference is None:
            raise RuntimeError("reference attention called without a reference; run the ID encoder first")
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("reference attention is self-attention without a mask")
        batch = hidden_states.shape[0]
        if not self.own_queries:
            tokens = torch.cat([hidden_states, self.norm(self.reference).expand(batch, -1, -1)], dim=1)
            out = _attend(attn, attn.to_q(tokens), attn.to_k(tokens), attn.to_v(tokens))
            return out[:, : hidden_states.shape[1]]
        if self._kv is None:
            reference = self.norm(self.reference)
            self._kv = attn.to_k(reference), attn.to_v(reference)
        ref_key, ref_value = (t.expand(batch, -1, -1) for t in self._kv)
        key = torch.cat([attn.to_k(hidden_states), ref_key], dim=1)
        value = torch.cat([attn.to_v(hidden_states), ref_value], dim=1)
        return _attend(attn, attn.to_q(hidden_states), key, value)


class ReferenceAttention:
    """Installs ReferenceAttnProcessors on every transformer block of a denoiser UNet."""

    def __init__(self, unet: UNet2DConditionModel, own_queries: bool = True) -> None:
        self.processors: list[ReferenceAttnProcessor] = []
        for block in transformer_blocks(unet):
            processor = ReferenceAttnProcessor(block.norm1, own_queries)
            block.attn1.set_processor(processor)
            self.processors.append(processor)

    def set_references(self, captures: Sequence[torch.Tensor] | None) -> None:
        """One capture per block in forward order; None detaches them all."""
        if captures is None:
            captures = [None] * len(self.processors)
        if len(captures) != len(self.processors):
            raise ValueError(f"{len(captures)} ID captures for {len(self.processors)} denoiser transformer blocks")
        for processor, capture in zip(self.processors, captures, strict=True):
            processor.set_reference(capture)


class _CapturesDone(Exception):
    """Stops the ID encoder once the last transformer block's input is captured."""


def capture_block_inputs(unet: UNet2DConditionModel, run: Callable[[], object]) -> list[torch.Tensor]:
    """Call ``run`` (a forward pass of ``unet``) and return the inputs ``[B, HW, C]`` of its
    transformer blocks in forward order; the pass stops after the last block's input."""
    blocks = transformer_blocks(unet)
    captures: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        captures.append(args[0] if args else kwargs["hidden_states"])
        if len(captures) == len(blocks):
            raise _CapturesDone

    handles = [block.register_forward_pre_hook(hook, with_kwargs=True) for block in blocks]
    try:
        run()
    except _CapturesDone:
        pass
    finally:
        for handle in handles:
            handle.remove()
    if len(captures) != len(blocks):
        raise RuntimeError(f"captured {len(captures)} of {len(blocks)} transformer block inputs")
    return captures
