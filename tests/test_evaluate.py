"""evaluate.py and edit.py's measurement: files, W&B offline contents, bad photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import edit
import evaluate
from complexface.au import EDITABLE
from complexface.evaluation import family_and_intensity, summarize
from tests.conftest import ROOT, compose_config, make_bad_inputs

FAST = ["workers=1", "progress=false", "grid_thumb=64"]


def read_offline_run(run: Path) -> tuple[dict, dict]:
    """(config, summary) of an offline W&B run, read back from its .wandb record file."""
    from wandb.proto import wandb_internal_pb2 as pb
    from wandb.sdk.internal import datastore

    store = datastore.DataStore()
    store.open_for_scan(str(next(run.glob("run-*.wandb"))))
    config, summary = {}, {}
    while (data := store.scan_data()) is not None:
        record = pb.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            config.update({u.key: json.loads(u.value_json) for u in record.run.config.update})
        elif kind == "summary":
            summary.update({u.key: json.loads(u.value_json) for u in record.summary.update if u.key})
    return config, summary


@pytest.fixture(scope="module")
def measured_run(tmp_path_factory) -> Path:
    """A tiny real, measured edit run: 2 faces (two groups) x AU12 at -3, 0, 3 and AU4 at 3."""
    run_dir = tmp_path_factory.mktemp("run")
    cfg = compose_config("edit", ["faceset.only=[001.jpg,006.jpg]", "expression=custom",
                               "expression.edits=[AU12:1,AU4:1]", "expression.scales=[-3,0,3]", *FAST])
    edit.edit(cfg, run_dir)
    return run_dir


def test_edit_measures_as_it_goes(measured_run):
    table = pd.read_csv(measured_run / "metrics.csv")
    expected = ["face", "group", "edit", *[f"req_{a}" for a in EDITABLE], *[f"d_{a}" for a in EDITABLE],
                "on_target", "off_target", "id_dist", "nose_len_change", "bg_rmse"]
    assert list(table.columns[: len(expected)]) == expected
    assert len(table) == 2 * 5 and (table["status"] == "ok").all()
    smile = table[table["edit"] == "AU12=3"]
    frown = table[table["edit"] == "AU12=-3"]
    assert (smile["d_AU12"] > 1.0).all() and (smile["on_target"] > 1.0).all()
    # corners pulled down: less AU12 on a smiling face, more AU15 on a neutral one
    assert ((frown["d_AU12"] - frown["d_AU15"]) < -1.0).all()
    neutral = table[table["edit"] == "neutral"]
    assert (neutral[[f"d_{a}" for a in EDITABLE]].abs().to_numpy() < 1e-9).all()
    assert (neutral["id_dist"] < 1e-6).all() and (neutral["bg_rmse"] == 0).all()
    assert (table["id_dist"] < 0.6).all()  # mild geometric edits keep the person
    summary = pd.read_csv(measured_run / "summary.csv")
    assert set(summary["group"]) == {"western", "black"} and set(summary["family"]) == {"AU4", "AU12"}
    assert {"d_AU12_mean", "d_AU12_ci95", "id_dist_mean", "n"} <= set(summary.columns)
    report = (measured_run / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 5 and "src='http" not in report
    assert "perceived-appearance" in report


def test_wandb_offline_run_holds_grids_table_and_summary(measured_run):
    runs = list((measured_run / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    files = runs[0] / "files"
    images = sorted(p.relative_to(files / "media/images").as_posix() for p in (files / "media/images").rglob("*.*"))
    assert any(p.startswith("grids/black/AU12_1") for p in images)
    assert any(p.startswith("grids/western/AU4_1") for p in images)
    assert any(p.startswith("plots/leakage") for p in images)
    tables = list((files / "media/table").glob("edits_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert len(table["data"]) == 10 and table["columns"][:5] == ["face", "group", "edit", "source", "edited"]
    config, summary = read_offline_run(runs[0])
    assert summary["AU12/western/on_target"] > 1.0 and 0 <= summary["id_dist/mean"] < 0.6
    assert config["expression"]["edits"] == ["AU12:1", "AU4:1"] and config["measure"]["enabled"] is True


def test_evaluate_on_a_run_writes_all_files_without_touching_it(measured_run, tmp_path):
    manifest_before = (measured_run / "manifest.jsonl").read_bytes()
    cfg = compose_config("evaluate", [f"input={measured_run}", "recompute=true", "progress=false", "logger=none"])
    written = evaluate.evaluate(cfg, tmp_path)
    assert set(written) == {"metrics", "summary", "report"}
    fresh = pd.read_csv(written["metrics"])
    stored = pd.read_csv(measured_run / "metrics.csv")
    assert np.allclose(fresh["d_AU12"], stored["d_AU12"], atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "plots").glob("*.png")) == [
        "drift_AU12.png", "drift_AU4.png", "leakage.png", "response_AU12.png", "response_AU4.png"]
    assert (measured_run / "manifest.jsonl").read_bytes() == manifest_before


def test_evaluate_on_a_photo_folder_gives_statuses_not_a_crash(tmp_path):
    folder = tmp_path / "photos"
    expected = make_bad_inputs(folder)
    shutil.copy(ROOT / "complexface/assets/demo_faces/081.jpg", folder / "smiling.jpg")
    cfg = compose_config("evaluate", [f"input={folder}", "progress=false", "logger=none"])
    written = evaluate.evaluate(cfg, tmp_path / "out")
    table = pd.read_csv(written["measures"]).set_index("file")
    assert list(table.columns[:14]) == ["status", *EDITABLE, "nose_length"]
    for name, outcome in expected.items():
        assert table.loc[name, "status"] == ("ok" if outcome == "ok" else "failed"), name
    assert "no face found" in table.loc["no_face.png", "reason"]
    assert table.loc["smiling.jpg", "AU12"] > table.loc["gray.png", "AU12"]


def test_family_intensity_and_summary_ci():
    assert family_and_intensity({"AU6": 2.0, "AU12": 2.0}) == ("AU6+AU12", 2.0)
    assert family_and_intensity({"AU4": -3.0}) == ("AU4", -3.0)
    rows = [{"face": f, "group": "g", "edit": e, "status": "ok", **{f"d_{a}": 0.0 for a in EDITABLE},
             "on_target": v} for f, e, v in [("a", "AU12=2", 1.0), ("b", "AU12=2", 3.0), ("a", "neutral", np.nan)]]
    summary = summarize(pd.DataFrame(rows).assign(**{c: np.nan for c in (
        "off_target", "id_dist", "nose_len_change", "nose_width_change", "face_ratio_change", "eye_size_change",
        "pose_change_deg", "bg_rmse")}))
    two = summary[summary["intensity"] == 2].iloc[0]
    assert two["on_target_mean"] == 2.0 and two["on_target_ci95"] == pytest.approx(12.706 * 1.0, rel=1e-3)
    assert set(summary["intensity"]) == {0.0, 2.0}  # the neutral edit joins the AU12 family at 0


def test_missing_input_is_a_clear_error(tmp_path):
    cfg = compose_config("evaluate", [f"input={tmp_path / 'nope'}", "logger=none"])
    with pytest.raises(Exception, match="input not found"):
        evaluate.evaluate(cfg, tmp_path / "out")


def test_flow_tracking_sees_brow_lowering_that_redetection_under_reads(measured_run):
    from PIL import Image

    from complexface.au import parse_edit
    from complexface.measure.metrics import EditMeasurer

    source = np.asarray(Image.open(measured_run / "crops/001/source.png").convert("RGB"))
    edited = np.asarray(Image.open(measured_run / "crops/001/AU4_3.png").convert("RGB"))
    rows = {mode: EditMeasurer(identity=None, landmarks=mode).measure(source, [parse_edit("AU4=3")], [edited])[0]
            for mode in ("detect", "flow")}
    assert rows["flow"]["d_AU4"] > 1.5
    assert rows["flow"]["d_AU4"] > rows["detect"]["d_AU4"] + 1.0
    assert np.isnan(rows["flow"]["id_dist"])
