"""``model=clip``: transformers' ``CLIPModel`` from a local folder, trained with the contrastive loop.

Towers can be frozen or partly unfrozen (``*_trainable_layers``: None = all, 0 = frozen, N = the
last N encoder layers plus the final norm); the projections and the temperature always train.
``lora`` ({r, alpha, dropout, targets}) adds peft LoRA adapters instead. ``save_pretrained``
writes a plain CLIP folder (LoRA merged) that ``CLIPModel.from_pretrained`` reloads.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from complexface.models.contrastive import ContrastiveModule
from complexface.weights import clip_folder, from_pretrained_strictly


def _unfreeze_last(tower: nn.Module, layers: int | None) -> None:
    """Train the whole tower (None), nothing (0) or its last ``layers`` encoder layers and final norm."""
    if layers is None:
        tower.requires_grad_(True)
        return
    tower.requires_grad_(False)
    if layers > 0:
        for layer in tower.encoder.layers[-layers:]:
            layer.requires_grad_(True)
        norm = getattr(tower, "final_layer_norm", None) or getattr(tower, "post_layernorm", None)
        if norm is not None:
            norm.requires_grad_(True)


class CLIPModule(ContrastiveModule):
    """CLIP fine-tuning on the expression dataset (pixel inputs)."""

    def __init__(self, pretrained: str, text_trainable_layers: int | None = None,
                 vision_trainable_layers: int | None = None, lora: Mapping[str, Any] | None = None,
                 max_length: int = 77, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from transformers import AutoTokenizer, CLIPModel

        self.save_hyperparameters()
        path = clip_folder(pretrained, "model.pretrained=<a local CLIP folder>")
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        clip = from_pretrained_strictly(CLIPModel.from_pretrained, path, "CLIP model")
        self.max_length = min(max_length, clip.config.text_config.max_position_embeddings)
        self.lora = dict(lora) if lora else None
        if self.lora:
            from peft import LoraConfig, get_peft_model

            config = LoraConfig(r=self.lora.get("r", 8), lora_alpha=self.lora.get("alpha", 16),
                                lora_dropout=self.lora.get("dropout", 0.0),
                                target_modules=list(self.lora.get("targets", ("q_proj", "v_proj"))),
                                modules_to_save=["text_projection", "visual_projection"])
            self.clip = get_peft_model(clip, config)
        else:
            _unfreeze_last(clip.text_model, text_trainable_layers)
            _unfreeze_last(clip.vision_model, vision_trainable_layers)
            self.clip = clip
        with torch.no_grad():
            self.logit_scale.copy_(clip.logit_scale.detach())

    @property
    def base(self):
        """The underlying ``CLIPModel`` (inside the peft wrapper with LoRA)."""
        return self.clip.base_model.model if self.lora else self.clip

    def encode_images(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.base.get_image_features(pixel_values=batch["pixel_values"]).pooler_output

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt").to(self.device)
        return self.base.get_text_features(input_ids=tokens["input_ids"],
                                           attention_mask=tokens["attention_mask"]).pooler_output

    def save_pretrained(self, folder: str | Path) -> Path:
        """A plain ``CLIPModel`` folder (LoRA merged, the learned temperature in ``logit_scale``) and the tokenizer."""
        clip = copy.deepcopy(self.clip)
        clip = clip.merge_and_unload() if self.lora else clip
        with torch.no_grad():
            clip.logit_scale.copy_(self.logit_scale.detach())
        clip.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        return Path(folder)
