"""Evaluating edit runs: metrics.csv, summary.csv, plots, report.html and tracker logging."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from complexface.atomic import atomic_write
from complexface.au import EDITABLE, parse_edit
from complexface.calibration import ALL, DELTA, REQ, Calibration, with_families
from complexface.faces import FaceEntry, load_image
from complexface.faces.image_io import ImageError
from complexface.measure.metrics import GEOMETRY, METRICS, SIDE_COLUMNS, TRACKING, EditMeasurer
from complexface.report import plots
from complexface.report.html import Section, write_report
from complexface.runs import OK, Manifest, Record
from complexface.stats import mean_ci95
from complexface.tracking import Tracker

KEY = ["face", "group", "edit"]
METRIC_COLUMNS = [*KEY, *REQ, *DELTA, *METRICS]
MEASURE_COLUMNS = ["file", "status", *EDITABLE, *GEOMETRY]

HEADLINE_INTENSITY = 3.0
"""The headline reads edits at this requested intensity (or the nearest measured positive one)."""
DRIFT_INTENSITY = 4.0
"""Nose drift is also read at this intensity, where measured."""
MIN_RESPONSE = 0.7
"""Check: measured change of the requested AUs per unit requested, at least (1 = as asked)."""
MAX_LEAKAGE = 0.15
"""Check: leakage (off_target) per unit requested, at most."""
MAX_NOSE_DRIFT_PCT = 1.0
"""Check: |mean nose-length change| in percent, at most."""
MAX_TRACK_ERR_PX = 1.0
"""Check: median error of the measured landmark motion against the editor's true motion (px at 512), at most."""


def _read_crop(run_dir: Path, path: str) -> np.ndarray:
    return np.asarray(Image.open(run_dir / path).convert("RGB"))


def measure_records(manifest: Manifest, measurer: EditMeasurer, progress: bool = True, persist: bool = True) -> None:
    """Measure every OK record that has no metrics yet, in memory; ``persist`` also appends them
    to the manifest file (a run measuring itself; evaluate.py leaves its input untouched)."""
    by_face: dict[str, list[Record]] = defaultdict(list)
    for record in manifest:
        if record.status == OK and "metrics" not in record.extra:
            by_face[record.face_id].append(record)
    for records in tqdm(by_face.values(), desc="measure", unit="face", disable=not progress or not by_face):
        source = _read_crop(manifest.run_dir, records[0].source_crop)
        outputs = [_read_crop(manifest.run_dir, r.crop) for r in records]
        edits = [parse_edit(r.edit) for r in records]
        for record, row in zip(records, measurer.measure(source, edits, outputs), strict=True):
            record.extra = {**record.extra, "metrics": row}
        if persist:
            manifest.add(records)


def metrics_table(records: Iterable[Record]) -> pd.DataFrame:
    """One row per face x edit (``metrics.csv``), from the metrics stored in the records (a manifest)."""
    rows = []
    for record in records:
        metrics = record.extra.get("metrics", {})
        status = record.status if record.status != OK else metrics.get("status", "unmeasured")
        reason = record.reason or metrics.get("reason", "")
        rows.append({"face": record.face_id, "group": record.group, "edit": record.label,
                     **{c: metrics.get(c, np.nan) for c in [*REQ, *DELTA, *METRICS]},
                     "status": status, "reason": reason, "editor": record.extra.get("editor", "unknown"),
                     **{c: metrics.get(c, np.nan) for c in [*SIDE_COLUMNS, *TRACKING]}})
    columns = [*METRIC_COLUMNS, "status", "reason", "editor", *SIDE_COLUMNS, *TRACKING]
    table = pd.DataFrame(rows, columns=columns)
    requests = np.array([parse_edit(e).vector() for e in table["edit"]]).reshape(-1, len(REQ))
    table[REQ] = requests  # requested values are known even when measuring failed
    return table.sort_values(["group", "face", "edit"], kind="stable").reset_index(drop=True)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """group x family x intensity: n, and mean and 95% CI half-width of each metric (``summary.csv``)."""
    out = []
    for (group, family, intensity), part in with_families(table).groupby(["group", "family", "intensity"]):
        row = {"group": group, "family": family, "intensity": intensity, "n": len(part)}
        for c in [*DELTA, *METRICS]:
            row[f"{c}_mean"], row[f"{c}_ci95"] = mean_ci95(part[c])
        out.append(row)
    return pd.DataFrame(out)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_write(path, "w") as handle:
        frame.to_csv(handle, index=False, float_format="%.5g")
    return path


def _plot_path(out_dir: Path, kind: str, family: str) -> Path:
    return out_dir / f"{kind}_{family.replace('+', '_')}.png"


def calibration_plots(calibration: Calibration, out_dir: Path) -> list[tuple[Path, str]]:
    """Response curves per edit family and the gain figure; returns (path, caption)."""
    families = sorted({f for groups in calibration.editors.values() for f in groups[ALL].curves})
    if not families:
        return []
    figures = [(plots.response_curves(calibration, family, _plot_path(out_dir, "response", family)),
                f"{family}: measured change of each requested AU vs requested intensity, per editor and group "
                f"(mean, 95% CI where >= 3 faces; dotted: as requested)") for family in families]
    figures.append((plots.gain_heatmaps(calibration, out_dir / "gain.png"),
                    "Gain: measured change of every AU per unit requested along each edit family (G r for the "
                    "family's unit request; boxed cells: the requested AUs, ideal 1; all others: leakage, ideal 0)"))
    return figures


def drift_plots(table: pd.DataFrame, out_dir: Path) -> list[tuple[Path, str]]:
    """Identity, nose-length and leakage curves per edit family; returns (path, caption)."""
    data = with_families(table)
    return [(plots.drift_curves(data, family, _plot_path(out_dir, "drift", family)),
             f"{family}: identity distance, nose-length drift and leakage vs intensity, per group")
            for family in sorted(f for f in data["family"].unique() if f)]


def headline(table: pd.DataFrame) -> pd.DataFrame:
    """Per editor, edit family and group (``all`` first), at requested intensity +3 or the nearest measured positive
    one: faces, response and leakage per unit requested, nose drift (%) there and at +4, identity distance and,
    where measured, the median landmark-tracking error."""
    data = with_families(table)
    rows = []
    for (editor, family), part in data[data["family"] != ""].groupby(["editor", "family"]):
        positive = part.loc[part["intensity"] > 0, "intensity"].unique()
        if not len(positive):
            continue
        at = float(min(positive, key=lambda x: (abs(x - HEADLINE_INTENSITY), x)))
        for group, rows_of in [(ALL, part), *part.groupby("group")]:
            here, strong = rows_of[rows_of["intensity"] == at], rows_of[rows_of["intensity"] == DRIFT_INTENSITY]
            row = {"editor": editor, "family": family, "group": group, "intensity": at, "faces": here["face"].nunique(),
                   "response_per_unit": here["on_target"].mean() / at,
                   "leakage_per_unit": here["off_target"].mean() / at,
                   "nose_drift_pct": 100 * here["nose_len_change"].mean(),
                   f"nose_drift_pct_at_{DRIFT_INTENSITY:g}": 100 * strong["nose_len_change"].mean(),
                   "id_dist": here["id_dist"].mean()}
            if "track_err_px" in here:
                row["track_err_px_median"] = here["track_err_px"].median()
            rows.append(row)
    return pd.DataFrame(rows).dropna(axis=1, how="all")


def _check(claim: str, groups: pd.DataFrame, column: str, limit: float, at_least: bool, unit: str = "") -> str:
    """``claim: yes|no (worst value, group, n)`` over the groups' ``column`` (its magnitude if not ``at_least``)."""
    rows = groups.dropna(subset=[column])
    if rows.empty:
        return f"{claim}: not measured"
    score = rows[column] if at_least else rows[column].abs()
    worst = rows.loc[score.idxmin() if at_least else score.idxmax()]
    passed = bool((score >= limit).all() if at_least else (score <= limit).all())
    return (f"{claim}: {'yes' if passed else 'no'} ({'lowest' if at_least else 'largest'} {worst[column]:.2f}{unit}, "
            f"{worst['group']}, n={worst['faces']})")


def headline_checks(head: pd.DataFrame) -> list[str]:
    """Plain-language checks of the headline against the module thresholds, one per family and quantity."""
    lines = []
    several = head["editor"].nunique() > 1
    for (editor, family), part in head.groupby(["editor", "family"], sort=False):
        name, at = f"{family} ({editor})" if several else family, f"+{part['intensity'].iloc[0]:g}"
        groups = part[part["group"] != ALL]
        drift = f"nose_drift_pct_at_{DRIFT_INTENSITY:g}"
        drift, drift_at = (drift, f"+{DRIFT_INTENSITY:g}") if drift in groups else ("nose_drift_pct", at)
        lines += [
            _check(f"{name}: response >= {MIN_RESPONSE:g} per unit at {at} in every group", groups,
                   "response_per_unit", MIN_RESPONSE, at_least=True),
            _check(f"{name}: leakage <= {MAX_LEAKAGE:g} per unit at {at} in every group", groups,
                   "leakage_per_unit", MAX_LEAKAGE, at_least=False),
            _check(f"{name}: nose drift <= {MAX_NOSE_DRIFT_PCT:g}% at {drift_at} in every group", groups, drift,
                   MAX_NOSE_DRIFT_PCT, at_least=False, unit="%")]
        if "track_err_px_median" in groups:
            lines.append(_check(f"{name}: landmark motion recovered within {MAX_TRACK_ERR_PX:g} px (median) at {at} "
                                f"in every group", groups, "track_err_px_median", MAX_TRACK_ERR_PX, at_least=False,
                                unit=" px"))
    return lines


def _headline_section(head: pd.DataFrame) -> Section:
    if head.empty:
        return Section("Headline", ["No measured edit at a positive intensity."])
    small = sorted(set(head.loc[(head["group"] != ALL) & (head["faces"] < 3), "group"]))
    return Section("Headline", [
        f"Per edit family and group at requested intensity +{HEADLINE_INTENSITY:g} (or the nearest measured positive "
        "intensity: column intensity). response_per_unit: measured change of the requested AUs in the requested "
        "direction per unit requested (on_target / intensity; 1 = as asked); leakage_per_unit: mean |change| of the "
        "AUs independent of the request per unit requested (off_target / intensity); nose_drift_pct: mean relative "
        "nose-length change, %; id_dist: identity distance to the source (dlib: same person below 0.6); "
        "track_err_px_median: landmark-motion error against the editor's true motion (px at 512), where measured.",
        "Groups are perceived-appearance annotations for bias evaluation, not self-identified ethnicity."
        + (f" Groups with fewer than 3 faces ({', '.join(small)}) are too small for conclusions." if small else "")],
        tables=[head.set_index(["editor", "family", "group"])], bullets=headline_checks(head))


def write_evaluation(table: pd.DataFrame, out_dir: Path, run_dirs: Sequence[Path], tracker: Tracker,
                     title: str = "complexface evaluation", notes: Sequence[Section] = ()) -> dict[str, Path]:
    """Write metrics.csv, summary.csv, calibration.json, plots/ and report.html into ``out_dir``; log to ``tracker``.

    ``run_dirs``: the edit runs the table comes from (their grids go into the report; several for the shards of
    one sweep); ``notes``: report sections placed after the headline (e.g. which shards are missing)."""
    calibration = Calibration.from_table(table)
    paths = {"metrics": write_csv(table, out_dir / "metrics.csv"),
             "summary": write_csv(summarize(table), out_dir / "summary.csv"),
             "calibration": calibration.save(out_dir / "calibration.json")}
    response = calibration_plots(calibration, out_dir / "plots")
    drift = drift_plots(table, out_dir / "plots")
    head = headline(table)
    counts = table["status"].value_counts().to_dict()
    sections = [
        _headline_section(head),
        *notes,
        Section("Run", [f"{len(table)} face x edit items: " + ", ".join(f"{v} {k}" for k, v in counts.items()),
                        "Per-item numbers: metrics.csv; per group, family and intensity with 95% CIs: summary.csv."]),
        Section("Calibration", [
            "Response curves: measured change of each requested AU against the requested intensity. Gain: a linear "
            "model d = G r of the measured change d of the 12 editable AUs for a request r, fitted per editor and "
            "group by least squares regularised towards the identity (calibration.json holds the full 12 x 12 G, "
            "the curves of every AU and which AUs the data excited; AUs only ever requested together share their "
            "measured response, so the figure shows G along each requested family)."], images=response),
        Section("Drift", images=drift),
    ]
    several = len(run_dirs) > 1
    for name, pattern in (("Group grids", "groups/*/*.jpg"), ("Face grids", "faces/*.jpg"),
                          ("Complex recipes vs prototypes", "compare/*.jpg")):
        images = [(p, _grid_caption(p, run_dir, several)) for run_dir in run_dirs
                  for p in sorted((run_dir / "grids").glob(pattern))]
        if images:
            sections.append(Section(name, images=images))
    failures = table[table["status"] != OK][["face", "edit", "status", "reason"]]
    if not failures.empty:
        sections.append(Section("Failures", tables=[failures]))
    paths["report"] = write_report(out_dir / "report.html", title, sections)
    _log(tracker, table, head, [*response, *drift], run_dirs)
    return paths


def _grid_caption(path: Path, run_dir: Path, several: bool) -> str:
    caption = f"{path.parent.name}: {path.stem}" if path.parent.parent.name == "groups" else path.stem
    return f"{run_dir.name} / {caption}" if several else caption


def log_group_grids(tracker: Tracker, run_dir: Path, prefix: str = "") -> None:
    """One image per group and edit: the group-split grids, under ``grids/<prefix><group>/``."""
    for group_dir in sorted((run_dir / "grids" / "groups").glob("*")):
        tracker.log_images(f"grids/{prefix}{group_dir.name}", {p.stem: p for p in sorted(group_dir.glob("*.jpg"))})


def _log(tracker: Tracker, table: pd.DataFrame, head: pd.DataFrame, figures: Sequence[tuple[Path, str]],
         run_dirs: Sequence[Path]) -> None:
    if run_dirs:
        by_key = {}
        for run_dir in run_dirs:
            log_group_grids(tracker, run_dir, prefix=f"{run_dir.name}/" if len(run_dirs) > 1 else "")
            by_key.update({(r.face_id, r.label): (run_dir, r) for r in Manifest(run_dir)})
        columns = ["face", "group", "edit", "source", "edited", *DELTA, *METRICS]
        rows = []
        for _, row in table[table["status"] == OK].iterrows():
            if (row["face"], row["edit"]) in by_key:
                run_dir, record = by_key[(row["face"], row["edit"])]
                rows.append([row["face"], row["group"], row["edit"], str(run_dir / record.source_crop),
                             str(run_dir / record.crop), *[row[c] for c in [*DELTA, *METRICS]]])
        tracker.log_table("edits", columns, rows, image_columns=["source", "edited"])
    tracker.log_images("plots", {p.stem: p for p, _ in figures})
    means = {f"{c}/mean": float(table[c].mean()) for c in METRICS if table[c].notna().any()}
    for (group, family), part in with_families(table).groupby(["group", "family"]):
        for c in ("on_target", "off_target", "id_dist", "nose_len_change"):
            means[f"{family}/{group}/{c}"] = float(part[c].mean())
    for _, row in head.iterrows():
        for c in head.columns.drop(["editor", "family", "group"]):
            means[f"headline/{row['editor']}/{row['family']}/{row['group']}/{c}"] = float(row[c])
    tracker.log_summary(means)


def measure_folder(entries: Sequence[FaceEntry], measurer: EditMeasurer, progress: bool = True) -> pd.DataFrame:
    """Absolute AU estimates and geometry of each photo (``measures.csv``); bad photos get a status."""
    rows = []
    for entry in tqdm(entries, desc="measure", unit="photo", disable=not progress):
        try:
            row = measurer.measure_photo(load_image(entry.path))
        except ImageError as err:
            row = {"status": "failed", "reason": str(err)}
        rows.append({"file": entry.path.name, "group": entry.group, **row})
    return pd.DataFrame(rows, columns=[*MEASURE_COLUMNS, "group", "reason"])
