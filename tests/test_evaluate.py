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
from complexface.calibration import Calibration, family_and_intensity, fit_gain
from complexface.evaluation import headline, headline_checks, summarize
from complexface.settings import SettingError
from complexface.stats import mean_ci95
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
                               "expression.edits=[AU12:1,AU4:1]", "expression.scales=[-3,0,3]",
                               "measure.measurer.identity_every=1", *FAST])
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
    # corners pulled down on request: read as AU12 going down, not as AU15 appearing
    assert (frown["d_AU12"] < -1.0).all() and (frown["d_AU15"] == 0).all()
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
    assert report.index("<h2>Headline</h2>") < report.index("<h2>Calibration</h2>")
    assert "AU12: response &gt;= 0.7 per unit at +3 in every group: " in report
    assert "AU4: nose drift &lt;= 1% at +3 in every group: " in report  # no +4 in this sweep


def test_wandb_offline_run_holds_grids_table_and_summary(measured_run):
    runs = list((measured_run / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    files = runs[0] / "files"
    images = sorted(p.relative_to(files / "media/images").as_posix() for p in (files / "media/images").rglob("*.*"))
    assert any(p.startswith("grids/black/AU12_1") for p in images)
    assert any(p.startswith("grids/western/AU4_1") for p in images)
    assert any(p.startswith("plots/gain") for p in images)
    tables = list((files / "media/table").glob("edits_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert len(table["data"]) == 10 and table["columns"][:5] == ["face", "group", "edit", "source", "edited"]
    config, summary = read_offline_run(runs[0])
    assert summary["AU12/western/on_target"] > 1.0 and 0 <= summary["id_dist/mean"] < 0.6
    assert summary["headline/warp/AU12/western/response_per_unit"] > 0.3
    assert summary["headline/warp/AU12/all/faces"] == 2
    assert config["expression"]["edits"] == ["AU12:1", "AU4:1"] and config["measure"]["enabled"] is True


def test_evaluate_on_a_run_writes_all_files_without_touching_it(measured_run, tmp_path):
    manifest_before = (measured_run / "manifest.jsonl").read_bytes()
    cfg = compose_config("evaluate", [f"input={measured_run}", "recompute=true", "progress=false", "logger=none"])
    written = evaluate.evaluate(cfg, tmp_path)
    assert set(written) == {"metrics", "summary", "calibration", "report"}
    fresh = pd.read_csv(written["metrics"])
    stored = pd.read_csv(measured_run / "metrics.csv")
    assert np.allclose(fresh["d_AU12"], stored["d_AU12"], atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "plots").glob("*.png")) == [
        "drift_AU12.png", "drift_AU4.png", "gain.png", "response_AU12.png", "response_AU4.png"]
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


def test_tracking_sees_brow_lowering_that_redetection_under_reads(measured_run):
    from PIL import Image

    from complexface.au import parse_edit
    from complexface.measure.metrics import EditMeasurer

    source = np.asarray(Image.open(measured_run / "crops/001/source.png").convert("RGB"))
    edited = np.asarray(Image.open(measured_run / "crops/001/AU4_3.png").convert("RGB"))
    rows = {mode: EditMeasurer(identity=None, landmarks=mode).measure(source, [parse_edit("AU4=3")], [edited])[0]
            for mode in ("detect", "track")}
    assert rows["track"]["d_AU4"] > 0.7 * 3
    assert rows["track"]["d_AU4"] > rows["detect"]["d_AU4"] + 1.0
    assert np.isnan(rows["track"]["id_dist"])


def test_mean_ci95_matches_scipy():
    from scipy import stats

    assert all(np.isnan(mean_ci95([])))
    mean, half = mean_ci95([2.5, np.nan])  # NaNs are ignored
    assert mean == 2.5 and np.isnan(half)
    rng = np.random.default_rng(0)
    for values in ([1.0, 3.0], rng.normal(1.0, 2.0, 50)):
        low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
        assert mean_ci95(values) == pytest.approx((np.mean(values), (high - low) / 2), rel=1e-12)


def gain_matrix(cells: dict[tuple[str, str], float]) -> np.ndarray:
    """The identity with ``cells`` ((measured AU, requested AU) -> value) set."""
    gain = np.eye(len(EDITABLE))
    for (measured, requested), value in cells.items():
        gain[EDITABLE.index(measured), EDITABLE.index(requested)] = value
    return gain


TRUE_GAIN = gain_matrix({("AU4", "AU4"): 0.8, ("AU1", "AU4"): -0.3, ("AU6", "AU6"): 0.5, ("AU9", "AU6"): 0.2,
                         ("AU12", "AU12"): 1.2, ("AU15", "AU12"): -0.5})
STRENGTH = {"strong": 1.0, "weak": 0.5}  # the weak group's editor moves everything half as far


def synthetic_table(families: list[dict[str, float]], faces: int = 6, noise: float = 0.0) -> pd.DataFrame:
    """A metrics table of the 'warp' editor on two groups whose measured change is exactly ``g * TRUE_GAIN @ r``
    (+ noise) on the excited columns (an AU never requested has no data); families are unit requests, swept
    over -5..5."""
    rng = np.random.default_rng(1)
    rows = []
    for group, strength in STRENGTH.items():
        for face in range(faces):
            for unit in [{}, *families]:
                for k in ([0] if not unit else [-5, -4, -3, -2, -1, 1, 2, 3, 4, 5]):
                    r = np.array([unit.get(au, 0.0) * k for au in EDITABLE])
                    d = strength * TRUE_GAIN @ r + noise * rng.normal(size=len(EDITABLE)) * bool(unit)
                    label = "+".join(unit) + "=" + "+".join(f"{v * k:g}" for v in unit.values()) if unit else "neutral"
                    rows.append({"face": f"{group}{face}", "group": group, "edit": label, "status": "ok",
                                 "editor": "warp", **{f"req_{a}": v for a, v in zip(EDITABLE, r, strict=True)},
                                 **{f"d_{a}": v for a, v in zip(EDITABLE, d, strict=True)}})
    return pd.DataFrame(rows)


def expected_gain(strength: float) -> np.ndarray:
    """TRUE_GAIN scaled by ``strength`` on the columns the synthetic table excites, identity elsewhere."""
    gain = np.eye(len(EDITABLE))
    for au in ("AU4", "AU6", "AU12"):
        j = EDITABLE.index(au)
        gain[:, j] = strength * TRUE_GAIN[:, j]
    return gain


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    families = [{"AU4": 1.0}, {"AU6": 1.0}, {"AU12": 1.0}, {"AU6": 1.0, "AU12": 1.0}]
    return Calibration.from_table(synthetic_table(families))


def test_calibration_recovers_a_known_gain_per_group(calibration):
    assert set(calibration.editors) == {"warp"} and set(calibration.editors["warp"]) == {"all", "strong", "weak"}
    for group, strength in STRENGTH.items():
        np.testing.assert_allclose(calibration.gain("warp", group), expected_gain(strength), atol=2e-3)
        assert calibration.editors["warp"][group].excited == ["AU4", "AU6", "AU12"]
        assert calibration.editors["warp"][group].n_edits == 6 * 4 * 10
    strong, weak = calibration.gain("warp", "strong"), calibration.gain("warp", "weak")
    assert strong[EDITABLE.index("AU1"), EDITABLE.index("AU4")] == pytest.approx(-0.3, abs=2e-3)  # the leak
    assert weak[EDITABLE.index("AU12"), EDITABLE.index("AU12")] == pytest.approx(0.6, abs=2e-3)
    # all faces: in between; None and unknown groups fall back to all faces
    assert calibration.gain("warp")[EDITABLE.index("AU4"), EDITABLE.index("AU4")] == pytest.approx(0.6, abs=0.05)
    np.testing.assert_array_equal(calibration.gain("warp", "nobody"), calibration.gain("warp", None))
    curve = calibration.editors["warp"]["weak"].curves["AU12"]
    assert curve.intensity == [-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5] and curve.n == [6] * 11
    assert curve.mean["AU15"][-1] == pytest.approx(-0.5 * 0.5 * 5) and curve.ci95["AU15"][-1] == pytest.approx(0)
    with pytest.raises(SettingError, match="has: warp"):
        calibration.gain("magicface")


def test_jointly_requested_aus_share_their_response():
    gain = Calibration.from_table(synthetic_table([{"AU6": 1.0, "AU12": 1.0}], noise=0.01)).gain("warp", "strong")
    six, twelve = EDITABLE.index("AU6"), EDITABLE.index("AU12")
    np.testing.assert_allclose(gain[:, six] + gain[:, twelve], TRUE_GAIN[:, six] + TRUE_GAIN[:, twelve], atol=0.01)
    np.testing.assert_allclose(gain[:, six] - np.eye(12)[six], gain[:, twelve] - np.eye(12)[twelve], atol=1e-9)
    assert np.allclose(np.delete(gain, [six, twelve], axis=1), np.delete(np.eye(12), [six, twelve], axis=1))
    # no data at all: the identity
    np.testing.assert_array_equal(fit_gain(np.zeros((3, 12)), np.ones((3, 12))), np.eye(12))


def test_calibration_file_round_trip(calibration, tmp_path):
    path = calibration.save(tmp_path / "calibration.json")
    data = json.loads(path.read_text())
    assert data["version"] == 1 and set(data["editors"]["warp"]) == {"all", "strong", "weak"}
    weak = data["editors"]["warp"]["weak"]
    assert weak["gain"]["AU1"]["AU4"] == pytest.approx(-0.15, abs=2e-3) and weak["excited"] == ["AU4", "AU6", "AU12"]
    assert set(weak["curves"]["AU4"]) == {"intensity", "n", "request", *EDITABLE}
    loaded = Calibration.load(path)
    for group in ("all", "strong", "weak"):
        np.testing.assert_allclose(loaded.gain("warp", group), calibration.gain("warp", group), atol=1e-6)
    assert loaded.editors["warp"]["weak"].curves["AU12"].mean["AU12"][-1] == pytest.approx(0.5 * 1.2 * 5)
    assert loaded.save(tmp_path / "again.json").read_text() == path.read_text()


@pytest.mark.parametrize("text, message", [(None, "not found"), ("{", "not a calibration"),
                                           ("[1, 2]", "not a version-1"), ('{"version": 1}', "not a valid"),
                                           ('{"version": 1, "editors": {"warp": {"all": {}}}}', "not a valid")])
def test_missing_or_corrupt_calibration_is_a_setting_error(tmp_path, text, message):
    path = tmp_path / "calibration.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(SettingError, match=message):
        Calibration.load(path)


def test_headline_reads_plus_three_or_the_nearest_positive_intensity():
    table = synthetic_table([{"AU4": 1.0}, {"AU12": 1.0}], faces=3)
    table = table[~table["edit"].isin(["AU4=3", "AU4=-3"])]  # AU4 lacks +3: read at +2 (nearest, lower)
    d = table[[f"d_{a}" for a in EDITABLE]].to_numpy()
    req = table[[f"req_{a}" for a in EDITABLE]].to_numpy()
    table = table.assign(on_target=(d * np.sign(req)).sum(axis=1) / np.maximum((req != 0).sum(axis=1), 1),
                         off_target=0.1 * np.abs(req).max(axis=1), id_dist=0.2, nose_len_change=0.001,
                         track_err_px=0.5)
    head = headline(table).set_index(["family", "group"])
    assert head.loc[("AU4", "all"), "intensity"] == 2 and head.loc[("AU12", "all"), "intensity"] == 3
    assert head.loc[("AU4", "weak"), "response_per_unit"] == pytest.approx(0.4)
    assert head.loc[("AU12", "strong"), "leakage_per_unit"] == pytest.approx(0.1)
    assert head.loc[("AU12", "all"), "faces"] == 6
    assert head.loc[("AU12", "all"), "nose_drift_pct_at_4"] == pytest.approx(0.1)
    checks = headline_checks(headline(table))
    assert "AU4: response >= 0.7 per unit at +2 in every group: no (lowest 0.40, weak, n=3)" in checks
    assert "AU12: leakage <= 0.15 per unit at +3 in every group: yes (largest 0.10, strong, n=3)" in checks
    assert "AU12: landmark motion recovered within 1 px (median) at +3 in every group: yes (largest 0.50 px, strong, " \
        "n=3)" in checks


def test_calibration_json_from_a_real_edit_run(measured_run):
    calibration = Calibration.load(measured_run / "calibration.json")
    assert set(calibration.editors) == {"warp"} and set(calibration.editors["warp"]) == {"all", "western", "black"}
    everyone = calibration.editors["warp"]["all"]
    assert everyone.excited == ["AU4", "AU12"] and everyone.n_edits == 2 * 4
    assert everyone.curves["AU12"].intensity == [-3, 0, 3] and everyone.curves["AU12"].n == [2, 2, 2]
    assert calibration.gain("warp")[EDITABLE.index("AU12"), EDITABLE.index("AU12")] > 0.3
