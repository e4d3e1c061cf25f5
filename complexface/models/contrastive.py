"""Contrastive image-text training shared by the CLIP-style modules: loss, retrieval metrics, the loop.

The loss is CLIP's symmetric InfoNCE with a learnable temperature; items of the same recipe in a
batch count as positives of each other (their captions describe the same expression), so the
targets are the normalised same-recipe mask. Validation embeds the whole split and reports
image->text and text->image recall@k (a hit is a retrieved item of the same recipe), the chance
level of recall@1, and zero-shot accuracy: each image classified among the catalog recipes, a
recipe being the mean embedding of its captions, per caption language. Image->text recall@1 and
zero-shot accuracy are also reported per face group of the image (``<metric>_<group>``), the
perceived-appearance annotation of the face set, for bias checks.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from complexface.expressions import load_catalog

MAX_LOGIT_SCALE = math.log(100.0)


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor,
                     labels: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over L2-normalised embeddings; ``labels`` (B,) make same-label pairs positives."""
    logits = logit_scale.clamp(max=MAX_LOGIT_SCALE).exp() * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
    if labels is None:
        targets = torch.eye(len(image), device=image.device)
    else:
        targets = (labels[:, None] == labels[None, :]).float()
    targets = targets / targets.sum(1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets.T)) / 2


def recall_at_k(similarity: torch.Tensor, query_labels: torch.Tensor, item_labels: torch.Tensor,
                ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Fraction of queries (rows) whose top-k items (columns) include one with the query's label."""
    order = similarity.argsort(dim=1, descending=True)
    hits = item_labels[order] == query_labels[:, None]
    return {k: hits[:, :k].any(1).float().mean().item() for k in ks}


def chance_recall_at_1(query_labels: torch.Tensor, item_labels: torch.Tensor) -> float:
    """Expected recall@1 of a random ranking: the mean share of items with the query's label."""
    return (item_labels[None, :] == query_labels[:, None]).float().mean(1).mean().item()


def zero_shot_accuracy(image: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor) -> float:
    """Share of (normalised) image embeddings whose most similar class embedding is their label's."""
    return ((image @ classes.T).argmax(1) == labels).float().mean().item()


def first_occurrences(index: torch.Tensor) -> torch.Tensor:
    """Positions of the first occurrence of each value of ``index``, in order of position."""
    order = torch.argsort(index, stable=True)
    first = torch.ones_like(order, dtype=torch.bool)
    first[1:] = index[order][1:] != index[order][:-1]
    return order[first].sort().values


def gather_strings(strings: list[str], world_size: int) -> list[str]:
    """Every rank's ``strings``, concatenated in rank order (as ``all_gather`` stacks tensors)."""
    if world_size == 1:
        return strings
    gathered: list[list[str] | None] = [None] * world_size
    torch.distributed.all_gather_object(gathered, strings)
    return [s for part in gathered for s in part]


class ContrastiveModule(L.LightningModule):
    """Base LightningModule: subclasses embed images (a batch) and texts (a list of strings)."""

    def __init__(self, lr: float = 1e-3, weight_decay: float = 0.01, warmup_steps: int = 0,
                 catalog: str | None = None, zero_shot_languages: Sequence[str] = ("en", "ja"),
                 init_temperature: float = 0.07) -> None:
        super().__init__()
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.recipes = load_catalog(catalog)
        self.recipe_index = {rid: i for i, rid in enumerate(self.recipes)}
        self.zero_shot_languages = tuple(zero_shot_languages)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
        self._outputs: list[tuple[torch.Tensor, ...]] = []  # image, text, labels, dataset index
        self._groups: list[str] = []  # face group of each output row

    @abstractmethod
    def encode_images(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B, D) image embeddings (not normalised)."""

    @abstractmethod
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """(B, D) text embeddings (not normalised)."""

    def labels(self, recipes: Sequence[str]) -> torch.Tensor:
        """Recipe ids -> catalog indices (-1 for rows that are no recipe, e.g. unedited sources)."""
        return torch.tensor([self.recipe_index.get(r, -1) for r in recipes], device=self.device)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = contrastive_loss(self.encode_images(batch), self.encode_texts(batch["text"]), self.logit_scale,
                                self.labels(batch["recipe"]))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["text"]))
        temperature = 1.0 / self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        self.log("train/temperature", temperature, batch_size=len(batch["text"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        index = batch.get("index", torch.full((len(batch["text"]),), -1))
        self._outputs.append((self.encode_images(batch), self.encode_texts(batch["text"]),
                              self.labels(batch["recipe"]), index.to(self.device)))
        self._groups.extend(g or "unlabeled" for g in batch.get("group", [None] * len(batch["text"])))

    test_step = validation_step

    def on_validation_epoch_end(self) -> None:
        self._log_retrieval("val")

    def on_test_epoch_end(self) -> None:
        self._log_retrieval("test")

    @torch.no_grad()
    def class_embeddings(self, language: str) -> torch.Tensor:
        """(n_recipes, D) normalised mean caption embedding of each catalog recipe."""
        means = [F.normalize(self.encode_texts(list(r.captions(language))), dim=-1).mean(0)
                 for r in self.recipes.values()]
        return F.normalize(torch.stack(means), dim=-1)

    def _log_retrieval(self, stage: str) -> None:
        if not self._outputs:
            return
        image, text, labels, index = (torch.cat(parts) for parts in zip(*self._outputs, strict=True))
        groups = gather_strings(self._groups, self.trainer.world_size)
        self._outputs.clear()
        self._groups = []
        if self.trainer.world_size > 1:
            image, text, labels, index = (self.all_gather(t).flatten(0, 1) for t in (image, text, labels, index))
            # a distributed sampler pads the shards by repeating items: count each dataset item once
            if bool((index >= 0).all()):
                keep = first_occurrences(index)
                image, text, labels = image[keep], text[keep], labels[keep]
                groups = [groups[i] for i in keep.tolist()]
        metrics = {f"{stage}/loss": contrastive_loss(image, text, self.logit_scale, labels).item()}
        image, text = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
        similarity = image @ text.T
        for name, sim in (("i2t", similarity), ("t2i", similarity.T)):
            for k, value in recall_at_k(sim, labels, labels).items():
                metrics[f"{stage}/{name}_R@{k}"] = value
        metrics[f"{stage}/chance_R@1"] = chance_recall_at_1(labels, labels)
        known = labels >= 0
        if known.any():
            classes = {language: self.class_embeddings(language) for language in self.zero_shot_languages}
            for language, embeddings in classes.items():
                accuracy = zero_shot_accuracy(image[known], labels[known], embeddings)
                metrics[f"{stage}/zeroshot_acc_{language}"] = accuracy
            metrics[f"{stage}/zeroshot_chance"] = 1.0 / len(self.recipes)
            metrics.update(self._group_metrics(stage, similarity, image, labels, groups, classes))
        self.log_dict(metrics)  # every rank holds the gathered embeddings, so the values agree

    @staticmethod
    def _group_metrics(stage: str, similarity: torch.Tensor, image: torch.Tensor, labels: torch.Tensor,
                       groups: list[str], classes: dict[str, torch.Tensor]) -> dict[str, float]:
        """Image->text recall@1 and zero-shot accuracy of the (labelled) images of each face group."""
        metrics = {}
        for group in sorted(set(groups)):
            rows = torch.tensor([g == group for g in groups], device=labels.device) & (labels >= 0)
            if not rows.any():
                continue
            metrics[f"{stage}/i2t_R@1_{group}"] = recall_at_k(similarity[rows], labels[rows], labels, ks=(1,))[1]
            for language, embeddings in classes.items():
                metrics[f"{stage}/zeroshot_acc_{language}_{group}"] = zero_shot_accuracy(image[rows], labels[rows],
                                                                                         embeddings)
        return metrics

    def configure_optimizers(self) -> dict:
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        rest = [p for p in params if p.ndim < 2]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": self.weight_decay},
                                       {"params": rest, "weight_decay": 0.0}], lr=self.lr)
        total = max(int(self.trainer.estimated_stepping_batches), 1)

        def schedule(step: int) -> float:
            if step < self.warmup_steps:
                return (step + 1) / self.warmup_steps
            progress = (step - self.warmup_steps) / max(total - self.warmup_steps, 1)
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
