"""Shared by the study tests: the small real edit run they use (conftest's ``study_run_dir`` makes it once a session),
studies made from it, a rater's HTTP walk."""

from __future__ import annotations

import re
from pathlib import Path

import edit
import study
from tests.conftest import compose_config

FACES = ("001.jpg", "006.jpg", "014.jpg", "021.jpg", "047.jpg", "080.jpg")
RECIPES = ("happiness_prototype", "anger_masking_smile", "surprise_prototype")
FIELD = re.compile(r"<input type='hidden' name='(\w+)' value='([^']*)'>")
STATE = re.compile(r"<main data-state='(\w+)'>")


def edit_run(run_dir: Path) -> Path:
    """A catalog edit run of three recipes on six bundled faces (four groups) into ``run_dir``, with the real
    pipeline, measure=off."""
    cfg = compose_config("edit", [f"faceset.only=[{','.join(FACES)}]", "expression=catalog",
                                  f"expression.only=[{','.join(RECIPES)}]", "measure=off", "logger=none",
                                  "workers=1", "progress=false", "grid_thumb=48"])
    summary = edit.edit(cfg, run_dir)
    assert summary["failed"] == 0, summary
    return run_dir


def study_config(study_dir: Path, *overrides: str, action: str = "create", run_dir: Path | None = None):
    extra = [f"input={run_dir}"] if run_dir else []
    return compose_config("study", [f"action={action}", f"study.dir={study_dir}", *extra, *overrides])


def make_study(run_dir: Path, study_dir: Path, *overrides: str) -> dict:
    """``study.py action=create`` on ``run_dir`` (in process, the real config)."""
    return study.run(study_config(study_dir, *overrides, run_dir=run_dir))


def fields(page: str) -> dict[str, str]:
    return dict(FIELD.findall(page))


def state(page: str) -> str:
    found = STATE.search(page)
    return found.group(1) if found else ""
