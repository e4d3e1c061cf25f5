"""AU sweeps over a face set: python edit.py [faceset=...] [editor=...] [expression=...] [measure=on|off]."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from complexface.atomic import write_text
from complexface.errors import exit_on_user_error
from complexface.evaluation import log_group_grids, measure_records, metrics_table, write_evaluation
from complexface.faces import FaceSet
from complexface.report.grids import write_grids
from complexface.runs import RunInfo
from complexface.sweep import SweepJob, run_sweep


def build(cfg: DictConfig, run_dir: Path) -> tuple[SweepJob, FaceSet]:
    """Instantiate the face set, expression plan, editor, face pipeline and measurer from the config."""
    faceset = instantiate(cfg.faceset)
    plan, editor = instantiate(cfg.expression, _convert_="all"), instantiate(cfg.editor, _convert_="all")
    if plan.name == "catalog" and not editor.sides and not cfg.expression.get("only"):
        plan, dropped = plan.without_sided()  # the whole catalog: skip what this editor cannot make
        if dropped:
            warnings.warn(f"the {editor.name} editor has no per-side AUs: skipping the one-sided recipe(s) "
                          f"{', '.join(dropped)} (editor=warp makes them)", stacklevel=2)
    job = SweepJob(
        plan=plan,
        editor=editor,
        pipeline=instantiate(cfg.face_pipeline),
        run_dir=run_dir,
        measurer=instantiate(cfg.measure.measurer) if cfg.measure.enabled else None,
        crop_format=cfg.crop_format,
        photo_format=cfg.photo_format,
    )
    return job, faceset


def edit(cfg: DictConfig, run_dir: Path) -> dict:
    """Run (or resume) the sweep in ``run_dir``: manifest, grids, summary, and (measured) the report."""
    job, faceset = build(cfg, run_dir)
    info = RunInfo([e.face_id for e in faceset], [e.label for e in job.plan.edits], faceset.shard, faceset.num_shards)
    info.start(run_dir)
    config = OmegaConf.to_container(cfg, resolve=True)
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    manifest = run_sweep(job, list(faceset), workers=cfg.workers, progress=cfg.progress)
    grids = write_grids(manifest, job.plan, thumb=cfg.grid_thumb)
    tracker = instantiate(cfg.logger)(output_dir=run_dir, config=config, job_type="edit")
    written = {}
    try:
        if job.measurer is not None:
            measure_records(manifest, job.measurer, progress=cfg.progress)
            written = write_evaluation(metrics_table(manifest), run_dir, [run_dir], tracker)
        else:
            log_group_grids(tracker, run_dir)
    finally:
        tracker.finish()
    summary = manifest.write_summary()
    info.finish(run_dir)
    summary.update({k: str(written[k]) for k in ("report", "calibration") if k in written})
    if cfg.dataset.enabled:
        summary["dataset"] = instantiate(cfg.dataset.builder, _convert_="all").build(run_dir)
    summary["grids"] = str(run_dir / "grids")
    summary["n_face_grids"], summary["n_group_grids"] = len(grids["faces"]), len(grids["groups"])
    summary["n_compare_grids"] = len(grids["compare"])
    return summary


@hydra.main(version_base="1.3", config_path="conf", config_name="edit")
def main(cfg: DictConfig) -> None:
    summary = exit_on_user_error(lambda: edit(cfg, Path(HydraConfig.get().runtime.output_dir)))
    print(json.dumps({k: v for k, v in summary.items() if k not in ("failures", "dataset")}))
    for failure in summary["failures"]:
        print(f"failed ({len(failure['faces'])} photo(s): {', '.join(failure['faces'])}): {failure['reason']}")
    print(f"grids: {summary['grids']}")
    for key in ("report", "calibration"):
        if key in summary:
            print(f"{key}: {summary[key]}")
    if "dataset" in summary:
        print(f"dataset: {summary['dataset']['path']} {summary['dataset']['rows']}")


if __name__ == "__main__":
    main()
