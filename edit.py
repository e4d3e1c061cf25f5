"""AU sweeps over a face set: python edit.py [faceset=...] [editor=...] [expression=...]."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from complexface.au import AUError
from complexface.atomic import write_text
from complexface.faces import FaceSetError
from complexface.report.grids import write_grids
from complexface.sweep import SweepJob, run_sweep

USER_ERRORS = (AUError, FaceSetError, MissingMandatoryValue)


def build(cfg: DictConfig, run_dir: Path) -> tuple[SweepJob, list]:
    """Instantiate the face set, expression plan, editor and face pipeline from the config."""
    entries = list(instantiate(cfg.faceset))
    job = SweepJob(
        plan=instantiate(cfg.expression, _convert_="all"),
        editor=instantiate(cfg.editor, _convert_="all"),
        pipeline=instantiate(cfg.face_pipeline),
        run_dir=run_dir,
        crop_format=cfg.crop_format,
        photo_format=cfg.photo_format,
    )
    return job, entries


def edit(cfg: DictConfig, run_dir: Path) -> dict:
    """Run (or resume) the sweep in ``run_dir``; write manifest, grids and summary."""
    job, entries = build(cfg, run_dir)
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    manifest = run_sweep(job, entries, workers=cfg.workers, progress=cfg.progress)
    grids = write_grids(manifest, job.plan, thumb=cfg.grid_thumb)
    summary = manifest.write_summary()
    summary["grids"] = str(run_dir / "grids")
    summary["n_face_grids"], summary["n_group_grids"] = len(grids["faces"]), len(grids["groups"])
    return summary


def user_error(err: BaseException) -> BaseException | None:
    """The user-facing cause of an error (unwrapping Hydra's instantiate wrapper), if any."""
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return err if isinstance(err, USER_ERRORS) else None


@hydra.main(version_base="1.3", config_path="conf", config_name="edit")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        summary = edit(cfg, run_dir)
    except Exception as err:
        cause = user_error(err)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}))
    for failure in summary["failures"]:
        print(f"failed ({len(failure['faces'])} photo(s): {', '.join(failure['faces'])}): {failure['reason']}")
    print(f"grids: {summary['grids']}")


if __name__ == "__main__":
    main()
