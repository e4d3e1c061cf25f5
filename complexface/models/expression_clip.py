"""``model=expression_clip``: a small CLIP over landmark AU features + dlib embeddings and a sentence tower.

Image tower: the ``FaceFeatures`` vector of each crop (cached by the data module), standardised by a
running batch norm, then an MLP projection head. Text tower: ``SentenceEncoder`` (MiniLM, frozen or
LoRA) and its own projection head. Trains in minutes on a CPU.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from complexface.models.contrastive import ContrastiveModule
from complexface.models.features import FaceFeatures
from complexface.models.text import SentenceEncoder
from complexface.weights import load_state_strictly

HEADS_FILE, CONFIG_FILE, TEXT_FOLDER = "heads.safetensors", "expression_clip.json", "text_model"


def projection(in_dim: int, hidden: int, out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out))


class ExpressionCLIP(ContrastiveModule):
    """Contrastive model; ``mesh``/``identity`` choose the image features (must match the data module's)."""

    def __init__(self, mesh: bool = False, identity: bool = True, text_model: str | None = None,
                 text_tuning: str = "frozen", lora_r: int = 8, lora_alpha: int = 16,
                 lora_targets: Sequence[str] = ("query", "value"), embed_dim: int = 128, hidden_dim: int = 256,
                 dropout: float = 0.1, feature_dropout: float = 0.2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.feature_dim = FaceFeatures(mesh, identity).dim
        self.text = SentenceEncoder(text_model, text_tuning, lora_r, lora_alpha, lora_targets=lora_targets)
        self.image_norm = nn.BatchNorm1d(self.feature_dim, affine=False)
        self.feature_dropout = nn.Dropout(feature_dropout)
        self.image_head = projection(self.feature_dim, hidden_dim, embed_dim, dropout)
        self.text_head = projection(self.text.hidden_size, hidden_dim, embed_dim, dropout)

    def encode_images(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.image_head(self.feature_dropout(self.image_norm(batch["features"].float())))

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self.text_head(self.text(texts))

    def save_pretrained(self, folder: str | Path) -> Path:
        """``text_model/`` (a transformers folder, LoRA merged), the heads and their config."""
        folder = Path(folder)
        self.text.save_pretrained(folder / TEXT_FOLDER)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if not k.startswith("text.")}
        save_file(state, str(folder / HEADS_FILE))
        config = {k: v for k, v in self.hparams.items() if k not in ("text_model", "text_tuning")}
        (folder / CONFIG_FILE).write_text(json.dumps({**config, "text_tuning": "frozen"}, indent=1, default=list))
        return folder


def load_expression_clip(folder: str | Path) -> ExpressionCLIP:
    """An ``ExpressionCLIP`` saved by ``save_pretrained`` (frozen, eval mode).

    The text tower loads (strictly) from ``text_model/``; ``heads.safetensors`` must hold every other tensor of
    the model its config describes but the text tower's, with the right shapes, and nothing else
    (CheckpointMismatchError otherwise).
    """
    folder = Path(folder)
    config = json.loads((folder / CONFIG_FILE).read_text())
    model = ExpressionCLIP(text_model=str(folder / TEXT_FOLDER), **config)
    load_state_strictly(model, load_file(str(folder / HEADS_FILE)), str(folder / HEADS_FILE), elsewhere=("text.",))
    return model.eval()


def text_embeddings(model: ExpressionCLIP, texts: Sequence[str]) -> torch.Tensor:
    """Normalised shared-space embeddings of texts."""
    with torch.no_grad():
        return F.normalize(model.encode_texts(list(texts)), dim=-1)
