"""Contrastive training: python train.py data.root=<edit run>/dataset [model=...] [trainer=...] [experiment=...]."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from complexface.atomic import remove_stale_temps, write_text
from complexface.errors import exit_on_user_error

WANDB_ID = "wandb_run_id.txt"
log = logging.getLogger(__name__)


def build_logger(cfg: DictConfig, run_dir: Path):
    """The Lightning logger (False for none); a W&B run resumes with the id stored in the run dir."""
    if not cfg.train_logger:
        return False
    stored = run_dir / WANDB_ID
    overrides = {"id": stored.read_text().strip()} if "id" in cfg.train_logger and stored.exists() else {}
    return instantiate(cfg.train_logger, **overrides, _convert_="all")


def close_logger(logger, trainer: L.Trainer) -> None:
    """Flush and close a W&B run (rank 0), so the next run in the process starts fresh."""
    if logger and trainer.is_global_zero and hasattr(logger.experiment, "finish"):
        logger.experiment.finish()


def train(cfg: DictConfig, run_dir: Path) -> dict:
    """Fit (or resume) in ``run_dir``; test and export the best checkpoint (else the last weights).

    Returns the final metrics (also written to ``metrics.json``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.run_dir = str(run_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data, _convert_="all")
    model = instantiate(cfg.model, _convert_="all")
    callbacks = [instantiate(c, _convert_="all") for c in (cfg.callbacks or {}).values()]
    logger = build_logger(cfg, run_dir)
    trainer = instantiate(cfg.trainer, default_root_dir=str(run_dir), callbacks=callbacks, logger=logger,
                          _convert_="all")
    config = OmegaConf.to_container(cfg, resolve=True)
    if trainer.is_global_zero:
        write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        if logger:
            logger.log_hyperparams(config)
            if hasattr(logger, "experiment") and hasattr(logger.experiment, "id"):
                write_text(run_dir / WANDB_ID, logger.experiment.id)
    last = run_dir / "checkpoints" / "last.ckpt"
    remove_stale_temps(last.parent)  # a save cut short by a kill (checkpoints are written atomically)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=str(last) if cfg.resume and last.exists() else None)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best:  # test and export the best checkpoint's weights
            checkpoint = torch.load(best, map_location="cpu", weights_only=False)
            model.on_load_checkpoint(checkpoint)  # a module that saves only part of itself checks that part (sd_lora)
            model.load_state_dict(checkpoint["state_dict"], strict=model.strict_loading)
        if cfg.test and "test" in datamodule.datasets:
            results = trainer.test(model, datamodule=datamodule, verbose=False)
            metrics.update(results[0] if results else {})
    except BaseException:
        try:
            close_logger(logger, trainer)
        except Exception as err:  # a requeue kills the W&B service with the job: keep why the run ended
            log.warning("could not close the W&B run: %r", err)
        raise
    close_logger(logger, trainer)
    if cfg.export and trainer.is_global_zero:
        metrics["export"] = str(model.save_pretrained(run_dir / "model"))
    metrics.update(global_step=trainer.global_step, best_checkpoint=best, global_rank=trainer.global_rank)
    if trainer.is_global_zero:
        write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    metrics = exit_on_user_error(lambda: train(cfg, Path(HydraConfig.get().runtime.output_dir)))
    if metrics["global_rank"] == 0:
        print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
