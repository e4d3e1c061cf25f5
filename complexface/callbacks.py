"""Lightning callbacks of the training runs."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch

from complexface.report.plots import training_curves


class TrainingCurves(L.Callback):
    """Validation metrics and the mean training loss at every validation, plotted to ``path`` when fitting ends
    (and logged as an image to a logger that takes images). The history is kept in checkpoints, so the figure of
    a resumed run covers the whole run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.history: list[dict[str, float]] = []
        self._loss_sum: torch.Tensor | float = 0.0
        self._loss_count = 0

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self._loss_sum = self._loss_sum + loss.detach()  # summed on the device: no sync per step
            self._loss_count += 1

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row = {"epoch": float(trainer.current_epoch), "step": float(trainer.global_step)}
        row.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")})
        if self._loss_count:
            row["train/loss"] = float(self._loss_sum) / self._loss_count
        self._loss_sum, self._loss_count = 0.0, 0
        self.history.append(row)

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not self.history:
            return
        training_curves(self.history, self.path)
        if trainer.logger is not None and hasattr(trainer.logger, "log_image"):
            trainer.logger.log_image("curves", [str(self.path)], step=trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])


class StopOnSigterm(L.Callback):
    """A run told to stop (SIGTERM: Slurm preempting, requeuing or cancelling the job) ends as stopped, not failed.

    Lightning's own SIGTERM handler talks to the other ranks, which may already be gone; the error it then raises
    would become the job's result (a failed run, reported by the launcher) while Slurm starts the job again. This
    callback notes the signal before Lightning's handler runs and turns whatever then ends the run into
    ``SystemExit(143)``, which leaves no result behind: the requeued job, resuming from ``last.ckpt``, reports."""

    def __init__(self) -> None:
        self.received = False

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        previous = signal.getsignal(signal.SIGTERM)  # Lightning's, registered when the run started

        def note(signum: int, frame: Any) -> None:
            self.received = True
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGTERM, note)

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        if self.received and not isinstance(exception, SystemExit):
            raise SystemExit(128 + signal.SIGTERM) from exception
