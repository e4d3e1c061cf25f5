"""Evaluating edit runs: metrics.csv, summary.csv, plots, report.html and tracker logging."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from complexface.atomic import atomic_write
from complexface.au import EDITABLE, parse_edit
from complexface.faces import FaceEntry, load_image
from complexface.faces.image_io import ImageError
from complexface.measure.metrics import GEOMETRY, METRICS, EditMeasurer
from complexface.report import plots
from complexface.report.html import Section, write_report
from complexface.runs import OK, Manifest, Record
from complexface.tracking import Tracker

KEY = ["face", "group", "edit"]
REQ = [f"req_{au}" for au in EDITABLE]
DELTA = [f"d_{au}" for au in EDITABLE]
METRIC_COLUMNS = [*KEY, *REQ, *DELTA, *METRICS]
MEASURE_COLUMNS = ["file", "status", *EDITABLE, *GEOMETRY]


def family_and_intensity(edit: dict[str, float]) -> tuple[str, float]:
    """``{"AU6": 2, "AU12": 2}`` -> ("AU6+AU12", 2.0): the AUs edited and the signed largest value."""
    if not edit:
        return "", 0.0
    value = max(edit.values(), key=abs)
    return "+".join(edit), float(value)


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


def metrics_table(manifest: Manifest) -> pd.DataFrame:
    """One row per face x edit (``metrics.csv``), from the metrics stored in the manifest."""
    rows = []
    for record in manifest:
        metrics = record.extra.get("metrics", {})
        status = record.status if record.status != OK else metrics.get("status", "unmeasured")
        reason = record.reason or metrics.get("reason", "")
        rows.append({"face": record.face_id, "group": record.group, "edit": record.label,
                     **{c: metrics.get(c, np.nan) for c in [*REQ, *DELTA, *METRICS]},
                     "status": status, "reason": reason})
    columns = [*METRIC_COLUMNS, "status", "reason"]
    table = pd.DataFrame(rows, columns=columns)
    for c in REQ:  # requested values are known even when measuring failed
        table[c] = [float(parse_edit(e).values.get(c[4:], 0.0)) for e in table["edit"]]
    return table.sort_values(["group", "face", "edit"], kind="stable").reset_index(drop=True)


def with_families(table: pd.DataFrame) -> pd.DataFrame:
    """Measured rows with ``family`` and ``intensity``; the zero edit joins every family at intensity 0."""
    ok = table[table["status"] == OK].copy()
    pairs = [family_and_intensity(dict(parse_edit(e).values)) for e in ok["edit"]]
    ok["family"], ok["intensity"] = [p[0] for p in pairs], [p[1] for p in pairs]
    families = sorted(f for f in ok["family"].unique() if f)
    zero = ok[ok["family"] == ""]
    spread = [zero.assign(family=f) for f in families]
    return pd.concat([ok[ok["family"] != ""], *spread], ignore_index=True) if families else ok


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """group x family x intensity: n, and mean and 95% CI half-width of each metric (``summary.csv``)."""
    from scipy import stats

    data = with_families(table)
    columns = [*DELTA, *METRICS]
    out = []
    for (group, family, intensity), part in data.groupby(["group", "family", "intensity"]):
        row = {"group": group, "family": family, "intensity": intensity, "n": len(part)}
        for c in columns:
            values = part[c].dropna()
            row[f"{c}_mean"] = values.mean() if len(values) else np.nan
            half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.nan
            row[f"{c}_ci95"] = half
        out.append(row)
    return pd.DataFrame(out)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_write(path, "w") as handle:
        frame.to_csv(handle, index=False, float_format="%.5g")
    return path


def make_plots(table: pd.DataFrame, out_dir: Path) -> list[tuple[Path, str]]:
    """Response and drift curves per edit family, and leakage heatmaps; returns (path, caption)."""
    data = with_families(table)
    figures: list[tuple[Path, str]] = []
    if data.empty:
        return figures
    for family in sorted(f for f in data["family"].unique() if f):
        slug = family.replace("+", "_")
        figures.append((plots.response_curves(data, family, out_dir / f"response_{slug}.png"),
                        f"{family}: measured AU change vs requested intensity, per group (mean, 95% CI)"))
        figures.append((plots.drift_curves(data, family, out_dir / f"drift_{slug}.png"),
                        f"{family}: identity distance, nose-length drift and leakage vs intensity, per group"))
    figures.append((plots.leakage_heatmaps(data, out_dir / "leakage.png"),
                    "Leakage: measured change of every AU per unit of requested intensity, per group"))
    return figures


def _group_overview(summary: pd.DataFrame) -> pd.DataFrame:
    """Per group and family: mean on-target response per unit, leakage, identity, nose drift at |intensity| >= 3."""
    strong = summary[summary["intensity"].abs() >= 3]
    cols = {"on_target_mean": "on_target", "off_target_mean": "off_target", "id_dist_mean": "id_dist",
            "nose_len_change_mean": "nose_len_change", "bg_rmse_mean": "bg_rmse"}
    return (strong.assign(on_target_mean=strong["on_target_mean"] / strong["intensity"].abs())
            .groupby(["family", "group"])[list(cols)].mean().rename(columns=cols))


def write_evaluation(table: pd.DataFrame, out_dir: Path, run_dir: Path | None, tracker: Tracker,
                     title: str = "complexface evaluation") -> dict[str, Path]:
    """Write metrics.csv, summary.csv, plots/ and report.html into ``out_dir``; log to ``tracker``."""
    summary = summarize(table)
    paths = {"metrics": write_csv(table, out_dir / "metrics.csv"), "summary": write_csv(summary, out_dir / "summary.csv")}
    figures = make_plots(table, out_dir / "plots")
    counts = table["status"].value_counts().to_dict()
    overview = _group_overview(summary) if not summary.empty else pd.DataFrame()
    sections = [
        Section("Run", [f"{len(table)} face x edit items: " + ", ".join(f"{v} {k}" for k, v in counts.items()),
                        "on_target: measured change of the requested AUs per unit requested (1 = as asked); "
                        "off_target: mean |change| of the AUs not requested (leakage, AU units); id_dist: dlib "
                        "embedding distance to the source (same person below 0.6); nose_len_change: relative; "
                        "bg_rmse: [0,1] RMSE outside the face. Rows with |intensity| >= 3.",
                        "Groups are perceived-appearance annotations for bias evaluation, not self-identified "
                        "ethnicity."], tables=[overview] if not overview.empty else []),
        Section("Plots", images=figures),
    ]
    if run_dir is not None:
        grids = sorted((run_dir / "grids" / "groups").rglob("*.jpg"))
        sections.append(Section("Group grids", images=[(p, f"{p.parent.name}: {p.stem}") for p in grids]))
        faces = sorted((run_dir / "grids" / "faces").glob("*.jpg"))
        sections.append(Section("Face grids", images=[(p, p.stem) for p in faces]))
    failures = table[table["status"] != OK][["face", "edit", "status", "reason"]]
    if not failures.empty:
        sections.append(Section("Failures", tables=[failures]))
    paths["report"] = write_report(out_dir / "report.html", title, sections)
    _log(tracker, table, figures, run_dir)
    return paths


def log_group_grids(tracker: Tracker, run_dir: Path) -> None:
    """One image per group and edit: the group-split grids, under ``grids/<group>/``."""
    for group_dir in sorted((run_dir / "grids" / "groups").glob("*")):
        tracker.log_images(f"grids/{group_dir.name}", {p.stem: p for p in sorted(group_dir.glob("*.jpg"))})


def _log(tracker: Tracker, table: pd.DataFrame, figures: Sequence[tuple[Path, str]], run_dir: Path | None) -> None:
    if run_dir is not None:
        log_group_grids(tracker, run_dir)
        manifest = Manifest(run_dir)
        by_key = {(r.face_id, r.label): r for r in manifest}
        columns = ["face", "group", "edit", "source", "edited", *DELTA, *METRICS]
        rows = []
        for _, row in table[table["status"] == OK].iterrows():
            record = by_key.get((row["face"], row["edit"]))
            if record is not None:
                rows.append([row["face"], row["group"], row["edit"], str(run_dir / record.source_crop),
                             str(run_dir / record.crop), *[row[c] for c in [*DELTA, *METRICS]]])
        tracker.log_table("edits", columns, rows, image_columns=["source", "edited"])
    tracker.log_images("plots", {p.stem: p for p, _ in figures})
    means = {f"{c}/mean": float(table[c].mean()) for c in METRICS if table[c].notna().any()}
    for (group, family), part in with_families(table).groupby(["group", "family"]):
        for c in ("on_target", "off_target", "id_dist", "nose_len_change"):
            means[f"{family}/{group}/{c}"] = float(part[c].mean())
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
