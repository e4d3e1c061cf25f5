"""edit.py end to end: the real Hydra config, shrunk; bad inputs; resume after a kill; multirun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import edit
from complexface.errors import user_error
from complexface.runs import MANIFEST, OK, Manifest, Record
from tests.conftest import ROOT, compose_config, make_bad_inputs

FAST = ["workers=1", "progress=false", "grid_thumb=64"]


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / MANIFEST).read_text().splitlines()]


def run_script(*args: str, cwd: Path = ROOT, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(ROOT / "edit.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, **kw)


def test_default_config_is_the_poster_sweep():
    cfg = compose_config("edit", [])
    job, entries = edit.build(cfg, Path("unused"))
    assert len(entries) == 20
    assert job.plan.row_labels == ["AU4=1", "AU6+AU12=1+1"]
    assert [e.label for e in job.plan.grid[1]][:2] == ["AU6+AU12=-5+-5", "AU6+AU12=-4+-4"]
    assert len(job.plan.edits) == 21  # 2 rows x 11 scales, the zero edit shared
    assert job.editor.name == "warp"


def test_edit_on_two_faces_writes_manifest_crops_photos_and_grids(tmp_path):
    cfg = compose_config("edit", ["faceset.limit=2", "expression=custom",
                        "expression.edits=[AU12:3,AU6+AU12:2+2]", "expression.scales=[-1,1]", *FAST])
    summary = edit.edit(cfg, tmp_path)
    assert summary["ok"] == 8 and summary["failed"] == 0
    rows = records(tmp_path)
    assert {(r["face_id"], r["label"]) for r in rows} == {
        (f, e) for f in ("001", "006") for e in ("AU12=-3", "AU12=3", "AU6+AU12=-2+-2", "AU6+AU12=2+2")}
    for r in rows:
        crop = np.asarray(Image.open(tmp_path / r["crop"]))
        source = np.asarray(Image.open(tmp_path / r["source_crop"]))
        photo = Image.open(tmp_path / r["photo"])
        original = Image.open(ROOT / "complexface/assets/demo_faces" / r["face_file"])
        assert crop.shape == (512, 512, 3) and photo.size == original.size
        assert np.abs(crop.astype(int) - source).max() > 30  # the edit changed the face
        assert r["group"] in ("western", "black") and r["edit"]
    face_grid = Image.open(tmp_path / "grids/faces/001.jpg")
    assert face_grid.width > face_grid.height > 2 * 64  # 2 rows x 3 columns (source, -1, +1)
    groups = sorted(p.relative_to(tmp_path / "grids/groups").as_posix() for p in (tmp_path / "grids/groups").rglob("*.jpg"))
    assert groups == ["black/AU12_3.jpg", "black/AU6+AU12_2+2.jpg", "western/AU12_3.jpg", "western/AU6+AU12_2+2.jpg"]
    assert json.loads((tmp_path / "summary.json").read_text())["ok"] == 8
    assert "expression" in (tmp_path / "config.yaml").read_text()


def test_bad_inputs_are_recorded_and_never_stop_the_sweep(tmp_path):
    folder = tmp_path / "faces"
    expected = make_bad_inputs(folder)
    (folder / "faces.csv").write_text("file,group\ngray.png,g1\nmissing.jpg,g2\n")
    expected["missing.jpg"] = "image not found"
    cfg = compose_config("edit", ["faceset=folder", f"faceset.path={folder}", "expression=custom",
                        "expression.edits=[AU12:2]", *FAST])
    summary = edit.edit(cfg, tmp_path / "run")
    by_file = {r["face_file"]: r for r in records(tmp_path / "run")}
    assert set(by_file) == set(expected)
    for name, outcome in expected.items():
        record = by_file[name]
        if outcome == "ok":
            assert record["status"] == "ok", (name, record["reason"])
        else:
            assert record["status"] == "failed" and outcome in record["reason"], (name, record["reason"])
    assert by_file["two_faces.jpg"]["n_faces"] == 2
    assert by_file["gray.png"]["group"] == "g1" and by_file["rgba.png"]["group"] == "unlabeled"
    assert summary["failed"] == sum(v != "ok" for v in expected.values())
    assert {f["reason"] for f in summary["failures"]} == {by_file[n]["reason"] for n, v in expected.items() if v != "ok"}


def test_torn_manifest_line_is_ignored_and_redone(tmp_path):
    cfg = compose_config("edit", ["faceset.limit=1", "expression=custom", "expression.edits=[AU12:2,AU4:2]", *FAST])
    edit.edit(cfg, tmp_path)
    lines = (tmp_path / MANIFEST).read_text().splitlines()
    (tmp_path / MANIFEST).write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    first_crop = tmp_path / json.loads(lines[0])["crop"]
    before = first_crop.stat().st_mtime_ns
    summary = edit.edit(cfg, tmp_path)
    assert summary["ok"] == 2 and first_crop.stat().st_mtime_ns == before
    assert len(Manifest(tmp_path).records) == 2


def test_reading_a_torn_manifest_writes_nothing_and_the_next_record_starts_clean(tmp_path):
    def record(face_id: str) -> Record:
        return Record(face_file=f"{face_id}.jpg", face_id=face_id, group="g", edit={"AU4": 2.0}, label="AU4=2",
                      status=OK)

    Manifest(tmp_path).add([record("001")])
    torn = (tmp_path / MANIFEST).read_bytes() + b'{"face_id": "002", "fa'
    (tmp_path / MANIFEST).write_bytes(torn)
    assert list(Manifest(tmp_path).records) == [("001", "AU4=2")] and (tmp_path / MANIFEST).read_bytes() == torn
    Manifest(tmp_path).add([record("003")])
    assert list(Manifest(tmp_path).records) == [("001", "AU4=2"), ("003", "AU4=2")]
    assert (tmp_path / MANIFEST).read_bytes().startswith(torn + b"\n")


def test_resume_after_kill_skips_finished_items(tmp_path):
    run_dir = tmp_path / "run"
    args = ["faceset.limit=10", "expression=custom", "expression.edits=[AU12:2,AU4:2,AU26:2]",
            f"hydra.run.dir={run_dir}", *FAST]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "edit.py"), *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        manifest = run_dir / MANIFEST
        if manifest.exists() and len(manifest.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {r.key: (run_dir / r.crop).stat().st_mtime_ns for r in Manifest(run_dir) if r.status == "ok"}
    assert 3 <= len(done_before) < 30
    result = run_script(*args)
    assert result.returncode == 0, result.stderr
    final = Manifest(run_dir)
    assert len(final.records) == 30 and all(r.status == "ok" for r in final)
    for record in final:
        if record.key in done_before:
            assert (run_dir / record.crop).stat().st_mtime_ns == done_before[record.key]
    assert not list(run_dir.rglob("*.tmp"))
    assert len(list((run_dir / "grids/faces").glob("*.jpg"))) == 10


def test_multirun_sweeps_an_override(tmp_path):
    result = run_script("-m", "faceset.limit=1", "expression=custom", "expression.edits=[AU12:2]",
                        "expression.scales=[1],[2]", f"hydra.sweep.dir={tmp_path}", *FAST)
    assert result.returncode == 0, result.stderr
    runs = sorted(p.parent for p in tmp_path.rglob(MANIFEST))
    assert len(runs) == 2
    labels = sorted(records(r)[0]["label"] for r in runs)
    assert labels == ["AU12=2", "AU12=4"]


@pytest.mark.parametrize(("overrides", "message"), [
    (["expression=custom", "expression.edits=[AU3:1]"], "error: expression: unknown AU 'AU3'; editable AUs are: AU1"),
    (["expression=custom", "expression.edits=[AU12:12]"], "out of range"),
    (["faceset=folder"], "error: Missing mandatory value: faceset.path"),
    (["faceset=folder", "faceset.path=/nonexistent/faces"], "error: faceset: face set folder not found"),
    (["face_pipeline.select=some"], "error: face_pipeline: face select must be 'largest' or 'all', got 'some'"),
    (["editor.min_jacobian=1.5"], "error: editor: warp editor: grid_step must be >= 1 and min_jacobian in (0, 1)"),
])
def test_user_errors_are_one_line_without_traceback(tmp_path, overrides, message):
    result = run_script(*overrides, f"hydra.run.dir={tmp_path}", *FAST)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


FIXTURE = ROOT / "tests" / "fixtures" / "magicface-tiny"
MAGICFACE = ["editor=magicface", f"editor.weights={FIXTURE / 'magicface'}", f"editor.base_model={FIXTURE / 'sd15'}"]


@pytest.mark.parametrize(("overrides", "message"), [
    (["measure.measurer.identity.model_dir=/nonexistent"], "dlib identity model files missing"),
    (["measure.measurer.landmarks=flow"], "measure landmarks must be one of track, detect, got 'flow'"),
    (["measure.measurer.identity_every=0"], "identity_every must be >= 1"),
    (["editor.lock=[nose,ears]"], "ears"),
    (["editor=closed_loop", "editor.inner=magicface"], "editor@editor.inner=magicface"),
    (["editor=closed_loop", "editor.calibration=/nonexistent/calibration.json"], "calibration file not found"),
    ([*MAGICFACE, "editor.dtype=bogus"], "unknown dtype 'bogus'"),
    ([*MAGICFACE, "editor.device=tpu"], "device 'tpu'"),
    ([*MAGICFACE, "expression=custom", "expression.edits=[AU12L:3]"], "magicface editor has no per-side AUs"),
    (["editor=closed_loop", "expression=custom", "expression.edits=[AU12R:2]"], "closed_loop editor has no per-side"),
])
def test_bad_models_and_settings_stop_the_job_when_it_is_built(overrides, message):
    """Every configured model folder, setting, dtype and device is checked before any face is edited."""
    cfg = compose_config("edit", [*overrides, *FAST])
    with pytest.raises(Exception) as info:
        edit.build(cfg, Path("unused"))
    cause = user_error(info.value)
    assert cause is not None and message in str(cause), info.value


def test_closed_loop_and_a_lock_run_from_the_config_and_the_manifest_keeps_every_iteration(tmp_path):
    cfg = compose_config("edit", ["faceset.only=[001.jpg]", "editor=closed_loop", "editor.lock=[nose]",
                                  "expression=custom", "expression.edits=[AU4:3]", "logger=none", *FAST])
    summary = edit.edit(cfg, tmp_path)
    assert summary["ok"] == 1 and summary["failed"] == 0
    record = [r for r in records(tmp_path) if r["label"] == "AU4=3"][-1]
    loop = record["extra"]["loop"]
    assert 1 <= len(loop) <= 3 and loop[0]["request"]["AU4"] > 0 and "measured" in loop[0]
    assert record["extra"]["editor"] == "closed_loop" and record["extra"]["chosen"] < len(loop)
    metrics = record["extra"]["metrics"]
    assert abs(metrics["d_AU4"] - 3) <= 0.3 and abs(metrics["nose_len_change"]) <= 0.01


def test_a_one_sided_smile_moves_and_reads_on_one_side(tmp_path):
    cfg = compose_config("edit", ["faceset.only=[001.jpg]", "expression=custom", "expression.edits=[AU12L:3]",
                                  "logger=none", *FAST])
    assert edit.edit(cfg, tmp_path)["ok"] == 1
    metrics = records(tmp_path)[-1]["extra"]["metrics"]
    assert metrics["d_AU12L"] > 2.0 and abs(metrics["d_AU12R"]) < 0.2 and metrics["req_AU12"] == 1.5
    assert metrics["on_target"] > 2.0 and metrics["off_target"] < 0.45  # the other side counts as leakage


def test_a_measurement_that_fails_counts_as_a_failure_in_the_summary(tmp_path, monkeypatch):
    from complexface.measure.metrics import EditMeasurer

    monkeypatch.setattr(EditMeasurer, "measure", lambda *a, **k: 1 / 0)
    cfg = compose_config("edit", ["faceset.only=[001.jpg]", "expression=custom", "expression.edits=[AU12:2]",
                                  "logger=none", *FAST])
    summary = edit.edit(cfg, tmp_path)
    assert summary["failed"] == summary["measure_failed"] == 1 and summary["ok"] == 0
    assert "measuring failed: ZeroDivisionError" in summary["failures"][0]["reason"]


@pytest.mark.parametrize(("launcher", "target", "setting"), [
    ("local_parallel", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", ("n_jobs", 2)),
    ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", ("timeout_min", 120)),
])
def test_shipped_launchers_compose(launcher, target, setting):
    cfg = compose_config("edit", [f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == target
    assert cfg.hydra.launcher[setting[0]] == setting[1]
