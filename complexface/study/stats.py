"""Statistics of human recognition studies (pure functions, no I/O).

Recognition rate with a Wilson 95% interval and a one-sided binomial test against chance, Holm
correction (scipy, statsmodels); Wagner's (1993) unbiased hit rate and its chance value with the
arcsine-square-root transform (no package has them); confusion matrices; Krippendorff's alpha
(the ``krippendorff`` package) and the category skew to read it by.

A target may name several emotions (``joy+sadness`` for a blend): an answer naming any of them is a
hit, and the chance of a hit is the share of the answer options that are targets.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

TARGET_SEPARATOR = "+"


def target_set(target: str) -> frozenset[str]:
    """``"joy+sadness"`` -> {joy, sadness}; ``""`` -> {} (no target)."""
    return frozenset(t.strip() for t in str(target).split(TARGET_SEPARATOR) if t.strip())


def chance_of_hit(target: str, options: Sequence[str]) -> float:
    """Probability that a uniformly random answer among ``options`` hits ``target`` (0: not an option)."""
    return len(target_set(target) & set(options)) / len(options)


def wilson_ci(hits: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of the proportion ``hits / n`` (NaN, NaN for n = 0)."""
    from statsmodels.stats.proportion import proportion_confint

    if n <= 0:
        return float("nan"), float("nan")
    low, high = proportion_confint(hits, n, alpha=alpha, method="wilson")
    return float(low), float(high)


def binomial_greater(hits: int, n: int, chance: float) -> float:
    """One-sided exact binomial p-value of ``hits`` of ``n`` against the chance rate (H1: rate > chance).
    NaN when untestable (n = 0, or chance 0 or 1: the target is not an option, or every option is)."""
    from scipy.stats import binomtest

    if n <= 0 or not 0 < chance < 1:
        return float("nan")
    return float(binomtest(int(hits), int(n), chance, alternative="greater").pvalue)


def holm(pvalues: Iterable[float]) -> np.ndarray:
    """Holm-adjusted p-values (``statsmodels`` ``multipletests(method="holm")``) over the non-NaN entries;
    NaN stays NaN. Reject a hypothesis where its adjusted p < alpha."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(list(pvalues), dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def recognition(hits: int, n: int, chance: float, alpha: float = 0.05) -> dict[str, float]:
    """Rate, its Wilson (1 - alpha) interval, the chance rate and the one-sided binomial p against it."""
    low, high = wilson_ci(hits, n, alpha)
    return {"n": int(n), "hits": int(hits), "rate": hits / n if n else float("nan"), "ci_low": low,
            "ci_high": high, "chance": chance, "p": binomial_greater(hits, n, chance)}


def confusion_matrix(stimuli: Iterable[Hashable], answers: Iterable[Hashable], rows: Sequence[Hashable] | None = None,
                     columns: Sequence[Hashable] | None = None) -> pd.DataFrame:
    """Counts: one row per stimulus type, one column per answer (``rows``/``columns`` fix and order them;
    types or answers outside them are left out)."""
    frame = pd.DataFrame({"stimulus": list(stimuli), "answer": list(answers)})
    counts = frame.groupby(["stimulus", "answer"]).size().unstack(fill_value=0)
    rows = list(rows) if rows is not None else sorted(counts.index, key=str)
    columns = list(columns) if columns is not None else sorted(counts.columns, key=str)
    return counts.reindex(index=rows, columns=columns, fill_value=0).astype(int).rename_axis(
        index="stimulus", columns="answer")


def hu_arrays(counts: np.ndarray, is_target: np.ndarray) -> dict[str, np.ndarray]:
    """Wagner's unbiased hit rate from count arrays: ``counts`` (..., rows, answers), leading axes batched (e.g.
    one matrix per rater), and ``is_target`` (rows, answers), True where an answer names the row's target.

    Per row: hits, n, uses (of its target answers), hit_rate, precision (correct uses of the target answers /
    all their uses), hu = hit_rate x precision, chance_hu (the Hu expected if answers were independent of the
    stimuli: sum over target answers of uses x stimuli owning that answer / N^2). NaN for a row without stimuli.
    """
    m = np.asarray(counts, dtype=float)
    t = np.asarray(is_target, dtype=float)
    n_row, uses, total = m.sum(-1), m.sum(-2), m.sum((-2, -1))
    hits = (m * t).sum(-1)
    correct = (m * t).sum(-2)  # per answer: the uses that went to a stimulus it is a target of
    owners = (n_row[..., :, None] * t).sum(-2)  # per answer: stimuli it is a target of
    used = (uses[..., None, :] * t).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        hit_rate = np.where(n_row > 0, hits / n_row, np.nan)
        precision = np.where(used > 0, (correct[..., None, :] * t).sum(-1) / used, np.where(n_row > 0, 0.0, np.nan))
        chance = ((uses * owners)[..., None, :] * t).sum(-1) / np.asarray(total, float)[..., None] ** 2
    return {"n": n_row, "hits": hits, "uses": used, "hit_rate": hit_rate, "precision": precision,
            "hu": hit_rate * precision, "chance_hu": np.where(n_row > 0, chance, np.nan)}


def target_mask(targets: Sequence[str], answers: Sequence[str]) -> np.ndarray:
    """(rows, answers) booleans: where an answer names the row's target."""
    return np.array([[a in target_set(t) for a in answers] for t in targets], dtype=bool).reshape(
        len(targets), len(answers))


def unbiased_hit_rates(confusion: pd.DataFrame, targets: Mapping[Hashable, str] | None = None) -> pd.DataFrame:
    """Wagner's (1993) unbiased hit rate of each row of a confusion matrix (rows: stimulus types, columns:
    answers), and its chance value.

    Hu = hit rate x precision: the share of the row's stimuli answered with its target, times the share of
    all uses of that answer that were correct. With one row per category this is Wagner's
    ``Hu = hits^2 / (row total x column total)``, and the chance value ``pc = row total x column total / N^2``
    (the joint probability of stimulus and answer if answers ignored the stimuli). ``targets`` maps a row to its
    target answer(s) (default: the row label itself), so rows may be finer than categories (recipes sharing
    a target emotion, or recipe x intensity); an answer counts as correct for every row whose target holds it.
    """
    labels = [str(targets[row]) if targets is not None else str(row) for row in confusion.index]
    result = hu_arrays(confusion.to_numpy(), target_mask(labels, [str(c) for c in confusion.columns]))
    frame = pd.DataFrame(result, index=confusion.index)
    frame.insert(0, "target", labels)
    return frame.astype({"n": int, "hits": int, "uses": int}).rename_axis("stimulus")


def arcsine_sqrt(p: float | Iterable[float]) -> np.ndarray:
    """The variance-stabilising transform of a proportion, arcsin(sqrt(p)), in radians (0 .. pi/2)."""
    return np.arcsin(np.sqrt(np.clip(np.asarray(p, dtype=float), 0.0, 1.0)))


def paired_greater(values: Iterable[float], baseline: Iterable[float]) -> tuple[float, float, int]:
    """(t, one-sided p, n) of the paired t-test ``values > baseline`` over the pairs with both present;
    NaN p with fewer than 2 pairs or no spread of the differences."""
    from scipy.stats import ttest_rel

    a, b = np.asarray(list(values), float), np.asarray(list(baseline), float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if len(a) < 2 or np.allclose(a - b, (a - b)[0]):
        return float("nan"), float("nan"), len(a)
    result = ttest_rel(a, b, alternative="greater")
    return float(result.statistic), float(result.pvalue), len(a)


def reliability_data(raters: Iterable[Hashable], units: Iterable[Hashable], values: Iterable[float]) -> np.ndarray:
    """Raters x units matrix of coded values from long (rater, unit, value) triples, NaN where a rater did not
    rate a unit (a counterbalanced design leaves most cells empty). A repeated (rater, unit) keeps the first."""
    frame = pd.DataFrame({"rater": list(raters), "unit": list(units), "value": list(values)})
    frame = frame.dropna(subset=["value"]).drop_duplicates(["rater", "unit"])
    return frame.pivot(index="rater", columns="unit", values="value").to_numpy(dtype=float)


def krippendorff_alpha(data: np.ndarray | Sequence[Sequence[float]], level: str = "nominal") -> float:
    """Krippendorff's alpha of a raters x units matrix (NaN = missing) at ``level`` (nominal, ordinal, interval,
    ratio), by the ``krippendorff`` package. NaN when fewer than two values fall in one unit (nothing pairable)
    or every pairable value is the same (no variation: alpha is undefined)."""
    import krippendorff

    matrix = np.asarray(data, dtype=float)
    if matrix.ndim != 2 or not (np.sum(~np.isnan(matrix), axis=0) >= 2).any():
        return float("nan")
    pairable = matrix[:, np.sum(~np.isnan(matrix), axis=0) >= 2]
    if len(np.unique(pairable[~np.isnan(pairable)])) < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level))


def category_skew(values: Iterable[Hashable]) -> dict[str, float | str | int]:
    """How unevenly the answers spread over categories: the most used one and its share, the number used and the
    Shannon entropy over the categories used divided by its maximum (1 = even, 0 = one category). Skewed
    categories lower alpha and kappa at a given raw agreement (the kappa paradox)."""
    counts = pd.Series(list(values)).dropna().value_counts()
    if counts.empty:
        return {"n_values": 0, "categories_used": 0, "top_category": "", "top_share": np.nan, "evenness": np.nan}
    share = counts / counts.sum()
    evenness = float(-(share * np.log(share)).sum() / np.log(len(share))) if len(share) > 1 else 0.0
    return {"n_values": int(counts.sum()), "categories_used": len(counts), "top_category": str(counts.index[0]),
            "top_share": float(share.iloc[0]), "evenness": evenness}
