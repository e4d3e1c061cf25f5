"""Training throughput (samples/s) of the contrastive modules on a CPU, tiny settings.

    python bench/bench_train.py [--data <edit run>/dataset] [--steps 30] [--threads 1]

Without --data it builds a small real dataset first (8 faces x 3 recipes, warp editor); the CLIP and
SD rows use the tests' tiny random models (their cost is mostly loading and resizing the 512 px crops). Each row
composes the real train config, runs ``--steps`` optimizer steps (no validation, no logger) and
reports samples/s over the steps after the first (feature extraction is cached beforehand).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from tests.test_train import build_tiny_clip, build_tiny_sd

ROOT = Path(__file__).resolve().parent.parent


class StepTimer(L.Callback):
    """Seconds and samples from the end of the first step to the end of the last."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.samples = 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.start is None:
            self.start = time.perf_counter()
        else:
            self.samples += len(batch["text"])
        self.end = time.perf_counter()


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def tiny_dataset(folder: Path) -> Path:
    import edit

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="edit", overrides=[
            "faceset.only=[001.jpg,006.jpg,014.jpg,021.jpg,047.jpg,050.jpg,072.jpg,080.jpg]", "expression=catalog",
            "expression.only=[anger_masking_smile,felt_smile,suppressed_sadness]", "dataset=imagefolder",
            "measure=off", "workers=1", "progress=false", "logger=none"])
    edit.edit(cfg, folder)
    return folder / "dataset"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_train-"))
    data = args.data or tiny_dataset(work / "run")
    clip, sd = build_tiny_clip(work / "tiny_clip"), build_tiny_sd(work / "tiny_sd")
    rows = {
        "expression_clip, MiniLM frozen": ["model=expression_clip"],
        "expression_clip, MiniLM LoRA r=8": ["model=expression_clip", "model.text_tuning=lora"],
        "clip (tiny random, 32 px), full": ["model=clip", f"model.pretrained={clip}", "data.image_size=32"],
        "clip (tiny random, 32 px), LoRA r=8": ["model=clip", f"model.pretrained={clip}", "data.image_size=32",
                                                "model.lora={r:8,alpha:16}"],
        "sd_lora (tiny random, 16 px), r=8": ["model=sd_lora", f"model.pretrained={sd}", "data.image_size=16",
                                              "model.sample_every_n_steps=0"],
    }
    print(f"| module ({args.steps} steps, batch {args.batch}, {args.threads} thread(s)) | samples/s | s/step |")
    print("|---|---|---|")
    for name, overrides in rows.items():
        cfg = compose_train([f"data.root={data}", f"data.batch_size={args.batch}", *overrides])
        datamodule = instantiate(cfg.data, _convert_="all")
        datamodule.prepare_data()
        module = instantiate(cfg.model, _convert_="all")
        timer = StepTimer()
        trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=args.steps, limit_val_batches=0, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[timer], default_root_dir=str(work))
        trainer.fit(module, datamodule=datamodule)
        seconds = timer.end - timer.start
        steps = max(trainer.global_step - 1, 1)
        print(f"| {name} | {timer.samples / seconds:.0f} | {seconds / steps:.3f} |")


if __name__ == "__main__":
    main()
