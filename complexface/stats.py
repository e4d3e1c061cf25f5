"""The one 95% confidence interval used by summaries, plots and calibration."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def mean_ci95(values: Iterable[float]) -> tuple[float, float]:
    """(mean, half-width of the two-sided 95% Student-t interval of the mean), NaNs ignored.

    The half-width is NaN with fewer than 2 values (no spread to estimate); the mean is NaN with none.
    """
    from scipy import stats

    data = np.asarray(list(values), dtype=float)
    data = data[~np.isnan(data)]
    if len(data) == 0:
        return float("nan"), float("nan")
    if len(data) == 1:
        return float(data[0]), float("nan")
    half = stats.t.ppf(0.975, len(data) - 1) * data.std(ddof=1) / np.sqrt(len(data))
    return float(data.mean()), float(half)
