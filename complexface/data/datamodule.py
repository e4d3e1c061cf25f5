"""LightningDataModule over the imagefolder dataset (``<root>/{train,validation,test}/metadata.jsonl``).

Each item is a dict: ``text`` (caption in ``language``: ``en``, ``ja`` or ``both``, where
``both`` lists every image twice, once per language), ``recipe``, ``aus`` (12-vector), ``face``,
``file``, and the image input the model asks for: ``pixel_values`` (resized, normalised,
augmented on train; no torchvision) and/or ``features`` (``FaceFeatures``, cached per image).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from complexface.data.imagefolder import SPLITS
from complexface.errors import UserError
from complexface.models.features import FaceFeatures
from complexface.settings import require

LANGUAGES = ("en", "ja", "both")
INPUTS = ("pixels", "features")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class DatasetError(UserError, FileNotFoundError):
    """The dataset folder is missing or incomplete; the message says how to build it."""


class ImageTransform:
    """PIL RGB -> normalised CHW float tensor; ``train`` adds a random resized crop and a horizontal flip."""

    def __init__(self, size: int = 224, train: bool = False, min_scale: float = 0.8, hflip: bool = True,
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD) -> None:
        self.size, self.train, self.min_scale, self.hflip = size, train, min_scale, hflip
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __call__(self, image: Image.Image, rng: random.Random) -> torch.Tensor:
        if self.train:
            w, h = image.size
            side = int(min(w, h) * rng.uniform(self.min_scale, 1.0))
            x, y = rng.randint(0, w - side), rng.randint(0, h - side)
            image = image.crop((x, y, x + side, y + side))
            if self.hflip and rng.random() < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image = image.resize((self.size, self.size), Image.Resampling.BICUBIC)
        pixels = torch.from_numpy(np.asarray(image, np.float32) / 255.0).permute(2, 0, 1)
        return (pixels - self.mean) / self.std


def read_split(root: str | Path, split: str, include_sources: bool = False) -> list[dict]:
    """The metadata rows of one split (``as_photographed`` rows dropped unless ``include_sources``)."""
    path = Path(root) / split / "metadata.jsonl"
    if not path.exists():
        raise DatasetError(f"{path} not found; build the dataset with `python edit.py expression=catalog "
                           "dataset=imagefolder` and pass data.root=<run dir>/dataset")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if include_sources or r["recipe"] != "as_photographed"]


class ExpressionDataset(Dataset):
    """One split of the dataset. Augmentation draws from torch's RNG (seeded by the trainer's seed)."""

    def __init__(self, root: str | Path, split: str, language: str = "en", transform: ImageTransform | None = None,
                 features: np.ndarray | None = None, include_sources: bool = False) -> None:
        require(language in LANGUAGES, f"caption language must be one of {', '.join(LANGUAGES)}, got {language!r}")
        self.folder = Path(root) / split
        self.rows = read_split(root, split, include_sources)
        languages = ("en", "ja") if language == "both" else (language,)
        self.items = [(i, lang) for lang in languages for i in range(len(self.rows))]
        self.transform, self.features = transform, features

    def __len__(self) -> int:
        return len(self.items)

    def files(self) -> list[Path]:
        """The image of every metadata row (not every item: ``both`` lists an image twice)."""
        return [self.folder / r["file_name"] for r in self.rows]

    def __getitem__(self, index: int) -> dict[str, Any]:
        row_index, language = self.items[index]
        row = self.rows[row_index]
        item: dict[str, Any] = {"text": row[f"text_{language}"], "recipe": row["recipe"], "face": row["face"],
                                "aus": torch.tensor(row["aus"], dtype=torch.float32), "file": row["file_name"],
                                "index": torch.tensor(index), "group": row.get("group")}
        if self.transform is not None:
            with Image.open(self.folder / row["file_name"]) as image:
                rng = random.Random(int(torch.randint(2**31 - 1, ())))
                item["pixel_values"] = self.transform(image.convert("RGB"), rng)
        if self.features is not None:
            item["features"] = torch.from_numpy(self.features[row_index])
        return item


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors, keep strings as lists."""
    return {k: torch.stack([i[k] for i in items]) if torch.is_tensor(items[0][k]) else [i[k] for i in items]
            for k in items[0]}


class ExpressionDataModule(L.LightningDataModule):
    """Train/validation/test loaders over ``root``; ``inputs`` names the image inputs the model takes."""

    def __init__(self, root: str, language: str = "both", inputs: Sequence[str] = ("pixels",), image_size: int = 224,
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD, augment: bool = True,
                 features: FaceFeatures | None = None, batch_size: int = 32, eval_batch_size: int = 128,
                 num_workers: int = 0, include_sources: bool = False) -> None:
        super().__init__()
        require(bool(inputs) and set(inputs) <= set(INPUTS),
                f"data inputs must be a non-empty subset of {list(INPUTS)}, got {list(inputs)}")
        require(language in LANGUAGES, f"caption language must be one of {', '.join(LANGUAGES)}, got {language!r}")
        require(batch_size >= 1 and eval_batch_size >= 1 and image_size >= 1 and num_workers >= 0,
                f"batch_size, eval_batch_size and image_size must be positive and num_workers >= 0, got "
                f"{batch_size}, {eval_batch_size}, {image_size} and {num_workers}")
        self.root, self.language, self.inputs = Path(root), language, tuple(inputs)
        self.image_size, self.mean, self.std, self.augment = image_size, tuple(mean), tuple(std), augment
        self.feature_model = features or (FaceFeatures() if "features" in inputs else None)
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.include_sources = include_sources
        self.datasets: dict[str, ExpressionDataset] = {}

    def _cache(self, split: str) -> Path:
        return self.root / ".cache" / f"{split}-{self.feature_model.name}.npz"

    def _splits(self) -> list[str]:
        present = [s for s in SPLITS if (self.root / s / "metadata.jsonl").exists()]
        if "train" not in present:
            read_split(self.root, "train")  # raises the DatasetError that says how to build it
        return present

    def prepare_data(self) -> None:
        """Compute the cached image features (rank 0 only; other ranks read the cache)."""
        if self.feature_model is not None:
            for split in self._splits():
                rows = read_split(self.root, split, self.include_sources)
                self.feature_model.of_files([self.root / split / r["file_name"] for r in rows], self._cache(split))

    def setup(self, stage: str | None = None) -> None:
        for split in self._splits():
            if split in self.datasets:
                continue
            transform = None
            if "pixels" in self.inputs:
                transform = ImageTransform(self.image_size, train=self.augment and split == "train",
                                           mean=self.mean, std=self.std)
            dataset = ExpressionDataset(self.root, split, self.language, transform, None, self.include_sources)
            if self.feature_model is not None:
                dataset.features = self.feature_model.of_files(dataset.files(), self._cache(split))
            self.datasets[split] = dataset

    @property
    def feature_dim(self) -> int:
        return self.feature_model.dim if self.feature_model else 0

    def _loader(self, split: str, train: bool) -> DataLoader:
        if split not in self.datasets:
            raise DatasetError(f"the dataset at {self.root} has no {split!r} split")
        dataset = self.datasets[split]
        return DataLoader(dataset, batch_size=self.batch_size if train else self.eval_batch_size, shuffle=train,
                          num_workers=self.num_workers, collate_fn=collate,
                          drop_last=train and len(dataset) > self.batch_size,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
