"""Evaluation plots (AU response curves, gain heatmaps, drift curves, each split by group) and training curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from complexface.atomic import atomic_write  # noqa: E402
from complexface.au import EDITABLE  # noqa: E402
from complexface.calibration import ALL, Calibration  # noqa: E402
from complexface.stats import mean_ci95  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _line(ax: plt.Axes, label: str, x: Sequence[float], mean: Sequence[float], half: Sequence[float],
          n: Sequence[int]) -> None:
    """One mean curve, with its 95% CI band where at least 3 faces back a point (two give too wide a band)."""
    (line,) = ax.plot(x, mean, marker="o", ms=3, label=f"{label} (n={max(n)}{'' if max(n) >= 3 else ', no CI'})")
    mean, half = np.asarray(mean, float), np.asarray(half, float)
    ax.fill_between(x, mean - half, mean + half, where=np.asarray(n) >= 3, alpha=0.15, color=line.get_color())


def _axes(ax: plt.Axes, title: str, ylabel: str) -> None:
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("requested intensity")
    ax.set_ylabel(ylabel)


def _curve(ax: plt.Axes, df: pd.DataFrame, column: str, title: str, ylabel: str) -> None:
    for group, part in sorted(df.groupby("group")):
        steps = sorted(part.groupby("intensity"))
        stats = [mean_ci95(p[column]) for _, p in steps]
        _line(ax, str(group), [x for x, _ in steps], [m for m, _ in stats], [h for _, h in stats],
              [int(p[column].notna().sum()) for _, p in steps])
    _axes(ax, title, ylabel)


def response_curves(calibration: Calibration, family: str, path: Path) -> Path:
    """Measured change of each requested AU of ``family`` vs requested intensity: one row of panels per editor,
    one line per group (95% CI), the request as a dotted line."""
    editors = [e for e, groups in calibration.editors.items() if family in groups[ALL].curves]
    aus = family.split("+")
    fig, axes = plt.subplots(len(editors), len(aus), figsize=(4.2 * len(aus), 3.4 * len(editors)), squeeze=False,
                             layout="constrained")
    for row, editor in zip(axes, editors, strict=True):
        groups = calibration.editors[editor]
        for ax, au in zip(row, aus, strict=True):
            for group, cal in sorted(groups.items()):
                if group != ALL and family in cal.curves:
                    curve = cal.curves[family]
                    _line(ax, group, curve.intensity, curve.mean[au], curve.ci95[au], curve.n)
            curve = groups[ALL].curves[family]
            ax.plot(curve.intensity, np.multiply(curve.intensity, curve.request[au]), ls=":", color="black", lw=0.8,
                    label="as requested")
            _axes(ax, f"{editor} — {family}: measured {au}", f"measured change {au}")
        row[-1].legend(fontsize=7)
    return _save(fig, path)


def drift_curves(df: pd.DataFrame, family: str, path: Path) -> Path:
    """Identity distance, nose-length drift and off-target change vs intensity, per group."""
    part = df[df["family"] == family]
    panels = [("id_dist", "identity distance"), ("nose_len_change", "nose length change (rel.)"),
              ("off_target", "leakage (mean |d| of independent AUs)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.4), squeeze=False, layout="constrained")
    for ax, (column, label) in zip(axes[0], panels, strict=True):
        _curve(ax, part, column, f"{family}: {label}", label)
    axes[0][-1].legend(fontsize=7)
    return _save(fig, path)


def gain_heatmaps(calibration: Calibration, path: Path) -> Path:
    """One heatmap per editor and group (all faces first): rows = edit families, columns = measured AUs, cells = the
    calibrated change per unit requested along the family (G r); the requested AUs' cells are boxed."""
    families = {e: sorted(groups[ALL].curves) for e, groups in calibration.editors.items() if groups[ALL].curves}
    panels = [(editor, group, calibration.editors[editor][group]) for editor in families
              for group in [ALL, *sorted(g for g in calibration.editors[editor] if g != ALL)]]
    mats = [np.array([cal.per_unit(f) if f in cal.curves else np.full(len(EDITABLE), np.nan) for f in families[e]])
            for e, _, cal in panels]
    vmax = max([0.1, *(float(np.nanmax(np.abs(m))) for m in mats if np.isfinite(m).any())])
    height = sum(1.0 + 0.32 * len(families[e]) for e, _, _ in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, height), squeeze=False, layout="constrained")
    for ax, (editor, group, cal), mat in zip(axes[:, 0], panels, mats, strict=True):
        image = ax.imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(EDITABLE)), EDITABLE, fontsize=7)
        ax.set_yticks(range(len(mat)), families[editor], fontsize=7)
        for (i, j), value in np.ndenumerate(mat):
            ax.text(j, i, "" if np.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=6)
            if EDITABLE[j] in families[editor][i].split("+"):
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.2, color="black"))
        ax.set_title(f"{editor} — {group}: measured change per unit requested ({cal.n_edits} edits)", fontsize=9)
    fig.colorbar(image, ax=axes[:, 0].tolist(), shrink=0.5, label="AU units per unit requested")
    return _save(fig, path)


CURVE_PANELS = {  # panel title -> (metric suffixes drawn, chance metric suffix or None)
    "loss": (("loss",), None),
    "recall@1 (held-out faces)": (("i2t_R@1", "t2i_R@1"), "chance_R@1"),
    "recall@5": (("i2t_R@5", "t2i_R@5"), None),
    "zero-shot recipe accuracy": (("zeroshot_acc_en", "zeroshot_acc_ja"), "zeroshot_chance"),
}


def training_curves(history: list[dict[str, float]], path: Path) -> Path:
    """One panel per metric family present in ``history`` (rows of ``epoch`` and ``train/...``, ``val/...``
    values), validation metrics against the epoch, chance as a dashed line."""
    df = pd.DataFrame(history).sort_values("step")
    panels = [(title, [c for c in df.columns if c.split("/")[-1] in names], chance)
              for title, (names, chance) in CURVE_PANELS.items()]
    panels = [p for p in panels if p[1]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (title, columns, chance) in zip(axes[0], panels, strict=True):
        for column in columns:
            ax.plot(df["epoch"], df[column], marker="o", ms=2.5, label=column)
        if chance and f"val/{chance}" in df:
            ax.plot(df["epoch"], df[f"val/{chance}"], ls="--", color="grey", label="chance")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    return _save(fig, Path(path))
