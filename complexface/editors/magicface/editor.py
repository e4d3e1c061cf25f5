"""The MagicFace editor: the diffusion model behind the Editor interface.

Weights load once, lazily, in the process that edits (the editor pickles before and after).
Every edit of a face starts from the same seeded noise, so batching does not change results,
and the zero edit also goes through the model: MagicFace regenerates the face, and a sweep's
neutral column shows that regeneration rather than the untouched input.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from complexface.au import AUEdit
from complexface.editors.base import Editor
from complexface.editors.magicface.loading import check_checkpoint
from complexface.editors.magicface.pipeline import MagicFacePipeline
from complexface.faces.align import AlignedFace
from complexface.faces.condition import BackgroundCondition
from complexface.settings import require

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` -> bf16 on CUDA (fp16 where bf16 is unsupported), fp32 elsewhere."""
    if dtype == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    require(dtype in DTYPES, f"unknown dtype {dtype!r}; use auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Square uint8 image to ``size`` (area filter to shrink, cubic to enlarge)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    shrink = image.shape[0] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


class MagicFaceEditor(Editor):
    """MagicFace edits of aligned crops, batched per face (ID encoder once per batch).

    ``weights``: folder with ``ID_enc/`` and ``denoising_unet/``; ``base_model``: SD 1.5 folder.
    Missing files or UNet tensors that do not fit raise MagicFaceWeightsError here, at
    construction (only file headers are read), before any work starts.
    """

    name = "magicface"
    needs_bg = True

    def __init__(self, weights: str | os.PathLike | None = None, base_model: str | os.PathLike | None = None,
                 steps: int = 50, guidance: float = 1.5, dtype: str = "auto", device: str = "auto",
                 batch_size: int = 8, seed: int = 424, own_queries: bool = True) -> None:
        self.weights, self.base_model = check_checkpoint(weights, base_model)
        require(steps >= 1 and batch_size >= 1,
                f"magicface editor: steps and batch_size must be positive, got {steps} and {batch_size}")
        self.steps, self.guidance, self.batch_size, self.seed = steps, guidance, batch_size, seed
        self.dtype, self.device, self.own_queries = dtype, device, own_queries
        self._pipe: MagicFacePipeline | None = None
        self._bg: BackgroundCondition | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pipe": None, "_bg": None}

    @property
    def pipe(self) -> MagicFacePipeline:
        """The loaded pipeline (loaded on first use)."""
        if self._pipe is None:
            device = resolve_device(self.device)
            self._pipe = MagicFacePipeline.from_pretrained(self.weights, self.base_model,
                                                           torch_dtype=resolve_dtype(self.dtype, device),
                                                           device=device, own_queries=self.own_queries)
        return self._pipe

    def noise(self) -> torch.Tensor:
        """The initial noise every edit starts from (a CPU draw, so it is the same on any device)."""
        pipe = self.pipe
        size = pipe.resolution // pipe.vae_scale_factor
        generator = torch.Generator("cpu").manual_seed(self.seed)
        return torch.randn((1, pipe.denoiser.config.out_channels, size, size), generator=generator)

    def edit(self, face: AlignedFace, edits: Sequence[AUEdit], bg: np.ndarray | None = None) -> list[np.ndarray]:
        """One uint8 crop of ``face.image``'s size per edit; ``bg`` defaults to BackgroundCondition's."""
        if not edits:
            return []
        if bg is None:
            self._bg = self._bg or BackgroundCondition()
            bg = self._bg(face)
        size = self.pipe.resolution
        encoded = self.pipe.encode_face(resize(face.image, size), resize(bg, size))
        noise = self.noise()
        outputs: list[np.ndarray] = []
        for start in range(0, len(edits), self.batch_size):
            batch = edits[start:start + self.batch_size]
            result = self.pipe.generate(encoded, [e.vector() for e in batch], num_inference_steps=self.steps,
                                        au_guidance_scale=self.guidance, latents=noise, output_type="np")
            for crop in (result.images * 255).round().astype(np.uint8):
                outputs.append(resize(crop, face.size))
        return outputs
