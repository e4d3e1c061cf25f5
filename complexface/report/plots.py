"""Evaluation plots (AU response curves, leakage heatmaps, drift curves, each split by group) and training curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from complexface.atomic import atomic_write  # noqa: E402
from complexface.au import EDITABLE  # noqa: E402


def _ci(values: pd.Series) -> tuple[float, float]:
    from scipy import stats

    values = values.dropna()
    if len(values) < 2:
        return float(values.mean()) if len(values) else np.nan, 0.0
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _curve(ax: plt.Axes, df: pd.DataFrame, column: str, title: str, ylabel: str) -> None:
    for group, part in sorted(df.groupby("group")):
        stats = [(x, *_ci(p[column])) for x, p in sorted(part.groupby("intensity"))]
        if not stats:
            continue
        x, mean, half = map(np.array, zip(*stats, strict=True))
        faces = part["face"].nunique()
        ax.plot(x, mean, marker="o", ms=3, label=f"{group} (n={faces}{'' if faces >= 3 else ', no CI'})")
        if faces >= 3:  # a t-interval from two faces is too wide to read
            ax.fill_between(x, mean - half, mean + half, alpha=0.15)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("requested intensity")
    ax.set_ylabel(ylabel)


def response_curves(df: pd.DataFrame, family: str, path: Path) -> Path:
    """Measured change of each requested AU vs requested intensity, one line per group (95% CI)."""
    part = df[df["family"] == family]
    aus = family.split("+")
    fig, axes = plt.subplots(1, len(aus), figsize=(4.2 * len(aus), 3.4), squeeze=False)
    for ax, au in zip(axes[0], aus, strict=True):
        _curve(ax, part, f"d_{au}", f"{family}: measured {au}", f"measured change {au}")
        ax.plot(sorted(part["intensity"].unique()), sorted(part["intensity"].unique()), ls=":", color="black", lw=0.8,
                label="ideal")
    axes[0][-1].legend(fontsize=7)
    return _save(fig, path)


def drift_curves(df: pd.DataFrame, family: str, path: Path) -> Path:
    """Identity distance, nose-length drift and off-target change vs intensity, per group."""
    part = df[df["family"] == family]
    panels = [("id_dist", "identity distance"), ("nose_len_change", "nose length change (rel.)"),
              ("off_target", "off-target AU change (mean |d|)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (column, label) in zip(axes[0], panels, strict=True):
        _curve(ax, part, column, f"{family}: {label}", label)
    axes[0][-1].legend(fontsize=7)
    return _save(fig, path)


def leakage_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """Mean measured change per unit of requested intensity: rows = edit family, columns = AUs.

    The diagonal-like cells (requested AUs) show the response; every other cell is leakage.
    """
    moved = df[df["intensity"] != 0]
    rows = {}
    for family, part in moved.groupby("family"):
        rows[family] = {au: float((part[f"d_{au}"] / part["intensity"]).mean()) for au in EDITABLE}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(EDITABLE))


def leakage_heatmaps(df: pd.DataFrame, path: Path) -> Path:
    """One leakage heatmap per group (and all faces), shared colour scale."""
    groups = ["all", *sorted(df["group"].unique())]
    mats = {g: leakage_matrix(df if g == "all" else df[df["group"] == g]) for g in groups}
    vmax = max(0.1, max(float(np.nanmax(np.abs(m.to_numpy()))) for m in mats.values() if m.size))
    height = len(groups) * (1.0 + 0.32 * max(1, len(mats["all"])))
    fig, axes = plt.subplots(len(groups), 1, figsize=(8, height), squeeze=False, layout="constrained")
    for ax, group in zip(axes[:, 0], groups, strict=True):
        mat = mats[group]
        image = ax.imshow(mat.to_numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(EDITABLE)), EDITABLE, fontsize=7)
        ax.set_yticks(range(len(mat)), mat.index, fontsize=7)
        for (i, j), value in np.ndenumerate(mat.to_numpy()):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6)
        ax.set_title(f"measured change per unit requested — {group}", fontsize=9)
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
