"""Checkpoints written atomically: a job killed while saving (preempted, requeued, out of time) leaves the previous
checkpoint whole, never a torn ``last.ckpt`` that the requeued job could not resume from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins import TorchCheckpointIO

from complexface.atomic import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, writing to a temp file beside the target and renaming it over the target."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_write(Path(path), "wb") as handle:
            torch.save(checkpoint, handle)
