"""Experiment tracking: W&B (offline by default, run files inside the output dir) or nothing.

Both stacks take the same W&B settings: ``logger.mode`` (edit.py, evaluate.py: ``WandbTracker``) and
``train_logger.mode`` (train.py: ``wandb_logger``, Lightning's WandbLogger) are ``offline | online | disabled``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from complexface.settings import require

WANDB_MODES = ("offline", "online", "disabled")
"""``offline``: the run lives in ``<output dir>/wandb`` and ``wandb sync`` uploads it; ``online``: streams to the
server (needs WANDB_API_KEY); ``disabled``: W&B calls do nothing."""


def check_mode(mode: str, setting: str) -> str:
    """``mode`` if it is one of WANDB_MODES, else SettingError naming ``setting``."""
    require(mode in WANDB_MODES, f"{setting} must be one of {', '.join(WANDB_MODES)}, got {mode!r}")
    return mode


class Tracker:
    """No-op tracker (``logger=none``); the W&B tracker has the same methods."""

    run_dir: Path | None = None

    def __init__(self, **_: Any) -> None:
        """Accepts (and ignores) the W&B tracker's arguments, so configs can swap them."""

    def log_images(self, key: str, images: Mapping[str, Path | np.ndarray]) -> None:
        """Log named images under ``key`` (e.g. one grid per group)."""

    def log_table(self, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                  image_columns: Sequence[str] = ()) -> None:
        """Log a table; values in ``image_columns`` are image paths shown as thumbnails."""

    def log_summary(self, metrics: Mapping[str, float]) -> None:
        """Set run-level summary metrics (compared across runs of a sweep)."""

    def finish(self) -> None:
        """Close the run."""


class WandbTracker(Tracker):
    """A W&B run. ``mode="offline"`` writes under ``<dir>/wandb`` and syncs later with
    ``wandb sync``; ``mode="online"`` streams to the server; ``mode="disabled"`` logs nothing."""

    def __init__(self, output_dir: str | os.PathLike, project: str = "complexface", mode: str = "offline",
                 name: str | None = None, group: str | None = None, tags: Sequence[str] = (),
                 config: Mapping[str, Any] | None = None, job_type: str | None = None) -> None:
        import wandb

        check_mode(mode, "logger.mode")
        self._wandb = wandb
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(project=project, mode=mode, dir=str(output_dir), name=name, group=group,
                              tags=list(tags), config=dict(config or {}), job_type=job_type,
                              settings=wandb.Settings(console="off", x_disable_stats=True))
        self.run_dir = Path(self.run.dir).parent

    def _image(self, value: Path | np.ndarray, caption: str | None = None):
        data = str(value) if isinstance(value, Path) else value
        return self._wandb.Image(data, caption=caption)

    def log_images(self, key: str, images: Mapping[str, Path | np.ndarray]) -> None:
        self.run.log({f"{key}/{name}": self._image(img, caption=name) for name, img in images.items()})

    def log_table(self, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                  image_columns: Sequence[str] = ()) -> None:
        image_idx = {columns.index(c) for c in image_columns}
        table = self._wandb.Table(columns=list(columns))
        for row in rows:
            table.add_data(*[self._image(Path(v)) if i in image_idx and v else v for i, v in enumerate(row)])
        self.run.log({key: table})

    def log_summary(self, metrics: Mapping[str, float]) -> None:
        self.run.summary.update(dict(metrics))

    def finish(self) -> None:
        self.run.finish()


def wandb_logger(save_dir: str | os.PathLike, mode: str = "offline", offline: bool | None = None,
                 **kwargs: Any):
    """Lightning's ``WandbLogger`` for train.py (``train_logger=wandb``), set like ``logger=wandb``: ``mode`` is
    offline | online | disabled; ``kwargs`` (project, name, group, tags, job_type, id, resume) go to it unchanged.
    The old ``train_logger.offline`` switch is refused with a message naming ``train_logger.mode``."""
    from lightning.pytorch.loggers import WandbLogger

    require(offline is None, f"train_logger.offline={offline} is no longer read: use train_logger.mode=offline|"
            f"online|disabled (the key logger.mode has for edit.py and evaluate.py), e.g. "
            f"train_logger.mode={'offline' if offline else 'online'}")
    check_mode(mode, "train_logger.mode")
    return WandbLogger(save_dir=str(save_dir), offline=mode == "offline", mode=mode, **kwargs)
