"""Measure an edit run (python evaluate.py input=RUN_DIR), the runs of a multirun merged into one evaluation (the
shards of a face set: input=MULTIRUN_DIR) or a folder of photos (input=FOLDER)."""

from __future__ import annotations

import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from complexface.errors import exit_on_user_error
from complexface.evaluation import measure_folder, measure_records, metrics_table, write_csv, write_evaluation
from complexface.faces import FaceSet, FaceSetError
from complexface.report.html import Section
from complexface.shards import MultirunError, find_runs, merged_records, shard_problems, shard_table


def evaluate(cfg: DictConfig, out_dir: Path) -> dict[str, Path]:
    """Write the evaluation of ``cfg.input`` into ``out_dir``; returns the written files."""
    source = Path(cfg.input).expanduser()
    if not source.is_dir():
        raise FaceSetError(f"input not found: {source}; give an edit.py run dir, a multirun dir of edit runs or "
                           f"a folder of photos")
    if not cfg.measure.enabled:
        raise FaceSetError("evaluate.py needs measure=on (or measure=arcface)")
    measurer = instantiate(cfg.measure.measurer)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        runs = find_runs(source)
    except MultirunError:
        runs = []
    if not any(r.manifest.path.exists() for r in runs):  # no manifest below: a folder of photos
        table = measure_folder(list(FaceSet(source)), measurer, progress=cfg.progress)
        return {"measures": write_csv(table, out_dir / "measures.csv")}
    problems = shard_problems(runs)
    for problem in problems:
        warnings.warn(problem, stacklevel=2)
    for run in runs:
        if cfg.recompute:
            for record in run.manifest:
                record.extra.pop("metrics", None)
        measure_records(run.manifest, measurer, progress=cfg.progress, persist=False)
    table = metrics_table(merged_records(runs))
    notes = []
    if len(runs) > 1:
        shards = shard_table(runs)
        notes.append(Section("Runs merged", [f"{len(runs)} runs of {source}; " + (
            "; ".join(problems) if problems else "every run complete")], tables=[shards]))
        write_csv(shards, out_dir / "runs.csv")
    tracker = instantiate(cfg.logger)(output_dir=out_dir, config=OmegaConf.to_container(cfg, resolve=True),
                                      job_type="evaluate")
    try:
        written = write_evaluation(table, out_dir, [r.run_dir for r in runs], tracker,
                                   title=f"complexface: {source.name}", notes=notes)
        tracker.log_summary({"runs": len(runs), "run_problems": len(problems)})
        return written
    finally:
        tracker.finish()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    written = exit_on_user_error(lambda: evaluate(cfg, Path(HydraConfig.get().runtime.output_dir)))
    for name, path in written.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
