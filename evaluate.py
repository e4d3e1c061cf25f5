"""Measure an edit run (python evaluate.py input=RUN_DIR) or a folder of photos (input=FOLDER)."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from complexface.errors import exit_on_user_error
from complexface.evaluation import measure_folder, measure_records, metrics_table, write_csv, write_evaluation
from complexface.faces import FaceSet, FaceSetError
from complexface.runs import MANIFEST, Manifest


def evaluate(cfg: DictConfig, out_dir: Path) -> dict[str, Path]:
    """Write the evaluation of ``cfg.input`` into ``out_dir``; returns the written files."""
    source = Path(cfg.input).expanduser()
    if not source.is_dir():
        raise FaceSetError(f"input not found: {source}; give an edit.py run dir or a folder of photos")
    if not cfg.measure.enabled:
        raise FaceSetError("evaluate.py needs measure=on (or measure=arcface)")
    measurer = instantiate(cfg.measure.measurer)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (source / MANIFEST).exists():
        table = measure_folder(list(FaceSet(source)), measurer, progress=cfg.progress)
        return {"measures": write_csv(table, out_dir / "measures.csv")}
    manifest = Manifest(source)
    if cfg.recompute:
        for record in manifest:
            record.extra.pop("metrics", None)
    measure_records(manifest, measurer, progress=cfg.progress, persist=False)
    tracker = instantiate(cfg.logger)(output_dir=out_dir, config=OmegaConf.to_container(cfg, resolve=True),
                                      job_type="evaluate")
    try:
        return write_evaluation(metrics_table(manifest), out_dir, source, tracker, title=f"complexface: {source.name}")
    finally:
        tracker.finish()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    written = exit_on_user_error(lambda: evaluate(cfg, Path(HydraConfig.get().runtime.output_dir)))
    for name, path in written.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
