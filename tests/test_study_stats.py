"""Statistics of recognition studies against published values, hand-worked examples and scipy/statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from complexface.study import stats

NA = np.nan
# Krippendorff (2011), Computing Krippendorff's alpha-reliability, example C: 4 observers x 12 units, values 1-5,
# missing values; published alpha: nominal 0.743, ordinal 0.815, interval 0.849.
KRIPPENDORFF_C = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NA, NA, NA],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NA, 3],
    [NA, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NA],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NA],
]


@pytest.mark.parametrize(("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_alpha_matches_krippendorffs_example_c(level, published):
    assert stats.krippendorff_alpha(KRIPPENDORFF_C, level) == pytest.approx(published, abs=5e-4)


def test_reliability_data_builds_the_matrix_from_long_answers_and_alpha_handles_edge_cases():
    long = [(f"obs{r}", f"unit{u:02d}", v) for r, row in enumerate(KRIPPENDORFF_C) for u, v in enumerate(row)]
    shuffled = [long[i] for i in np.random.default_rng(0).permutation(len(long))]
    matrix = stats.reliability_data(*zip(*shuffled, strict=True))
    assert matrix.shape == (4, 12)
    assert stats.krippendorff_alpha(matrix, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert math.isnan(stats.krippendorff_alpha([[1, NA], [NA, 2]]))  # no unit has two values
    assert math.isnan(stats.krippendorff_alpha([[1, 1], [1, 1]]))  # no variation: undefined
    assert stats.krippendorff_alpha([[1, 2, 3], [1, 2, 3]]) == 1.0


def test_unbiased_hit_rate_on_a_hand_worked_confusion_matrix():
    # 30 stimuli, 10 per emotion; rows: shown, columns: answered
    confusion = pd.DataFrame([[8, 2, 0], [4, 5, 1], [0, 0, 10]], index=["anger", "disgust", "fear"],
                             columns=["anger", "disgust", "fear"])
    hu = stats.unbiased_hit_rates(confusion)
    # Wagner: Hu = hits^2 / (stimuli of the category x uses of the answer); pc = stimuli x uses / N^2
    assert hu["hu"].tolist() == pytest.approx([8**2 / (10 * 12), 5**2 / (10 * 7), 10**2 / (10 * 11)])
    assert hu["hu"].tolist() == pytest.approx([0.533333, 0.357143, 0.909091], abs=1e-6)
    assert hu["chance_hu"].tolist() == pytest.approx([10 * 12 / 900, 10 * 7 / 900, 10 * 11 / 900])
    assert hu["hit_rate"].tolist() == [0.8, 0.5, 1.0] and hu.loc["fear", "precision"] == pytest.approx(10 / 11)
    # an answer bias: answering "anger" to everything gives a perfect anger hit rate and an Hu at chance
    biased = stats.unbiased_hit_rates(pd.DataFrame([[10, 0], [10, 0]], index=["anger", "fear"],
                                                   columns=["anger", "fear"]))
    assert biased.loc["anger", "hit_rate"] == 1 and biased.loc["anger", "hu"] == pytest.approx(0.5)
    assert biased.loc["anger", "chance_hu"] == pytest.approx(10 * 20 / 400)  # Hu at its chance value
    assert biased.loc["fear", "hu"] == 0


def test_unbiased_hit_rate_of_recipes_sharing_a_target_and_of_blends():
    # two recipes shown as "joy" (10 stimuli each), one blend joy+sadness (10), answers over joy/sadness/other
    confusion = pd.DataFrame([[9, 0, 1], [6, 2, 2], [4, 5, 1]], index=["felt_smile", "masking", "bittersweet"],
                             columns=["joy", "sadness", "other"])
    targets = {"felt_smile": "joy", "masking": "joy", "bittersweet": "joy+sadness"}
    hu = stats.unbiased_hit_rates(confusion, targets)
    # "joy" used 19 times, all correct (every joy answer went to a row whose target holds joy): precision 1
    assert hu.loc["felt_smile", "precision"] == 1 and hu.loc["felt_smile", "hu"] == pytest.approx(0.9)
    assert hu.loc["masking", "hu"] == pytest.approx(0.6)
    # the blend: 9 hits of 10; its answers joy+sadness were used 26 times, 19 + 5 correctly
    assert hu.loc["bittersweet", "hu"] == pytest.approx(0.9 * 24 / 26)
    # chance: joy is a target of 30 stimuli and used 19 times, sadness of 10 and used 7 times (N = 30)
    assert hu.loc["masking", "chance_hu"] == pytest.approx(19 * 30 / 900)
    assert hu.loc["bittersweet", "chance_hu"] == pytest.approx((19 * 30 + 7 * 10) / 900)
    batched = stats.hu_arrays(np.stack([confusion.to_numpy()] * 2), stats.target_mask(list(targets.values()),
                                                                                        list(confusion.columns)))
    assert batched["hu"].shape == (2, 3) and batched["hu"][1] == pytest.approx(hu["hu"].to_numpy())


def test_arcsine_transform_and_the_paired_test_against_chance():
    assert stats.arcsine_sqrt([0, 0.5, 1]) == pytest.approx([0, math.pi / 4, math.pi / 2])
    hu, chance = np.array([0.5, 0.6, 0.7, 0.65, NA]), np.array([0.1, 0.12, 0.1, 0.11, 0.1])
    t, p, n = stats.paired_greater(stats.arcsine_sqrt(hu), stats.arcsine_sqrt(chance))
    expected = sps.ttest_rel(stats.arcsine_sqrt(hu[:4]), stats.arcsine_sqrt(chance[:4]), alternative="greater")
    assert (t, p, n) == pytest.approx((expected.statistic, expected.pvalue, 4))
    assert math.isnan(stats.paired_greater([0.5], [0.1])[1])


@pytest.mark.parametrize(("hits", "n"), [(0, 10), (3, 10), (10, 10), (17, 40), (251, 300)])
def test_wilson_interval_matches_statsmodels_and_the_formula(hits, n):
    from statsmodels.stats.proportion import proportion_confint

    low, high = stats.wilson_ci(hits, n)
    assert (low, high) == pytest.approx(proportion_confint(hits, n, alpha=0.05, method="wilson"))
    z, p = sps.norm.ppf(0.975), hits / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert 0 <= low <= p <= high <= 1


def test_binomial_test_against_chance_matches_scipy_and_the_tail_sum():
    p = stats.binomial_greater(7, 20, 1 / 9)
    assert p == pytest.approx(sps.binomtest(7, 20, 1 / 9, alternative="greater").pvalue)
    assert p == pytest.approx(sum(sps.binom.pmf(k, 20, 1 / 9) for k in range(7, 21)))
    assert math.isnan(stats.binomial_greater(3, 10, 0.0)) and math.isnan(stats.binomial_greater(0, 0, 0.2))
    result = stats.recognition(7, 20, 1 / 9)
    assert result["rate"] == 0.35 and result["p"] == pytest.approx(p) and result["ci_low"] < 0.35 < result["ci_high"]


def test_holm_adjustment_by_hand_and_against_statsmodels():
    from statsmodels.stats.multitest import multipletests

    # sorted 0.01, 0.03, 0.04 (m = 3): 3 x 0.01, 2 x 0.03, max(0.06, 1 x 0.04) -> 0.03, 0.06, 0.06
    assert stats.holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    pvalues = [0.2, 0.001, NA, 0.04, 0.5]
    adjusted = stats.holm(pvalues)
    assert math.isnan(adjusted[2])
    assert adjusted[[0, 1, 3, 4]] == pytest.approx(multipletests([0.2, 0.001, 0.04, 0.5], method="holm")[1])


def test_targets_blends_chance_confusion_and_skew():
    options = ["joy", "sadness", "anger", "other"]
    assert stats.target_set("joy+sadness") == {"joy", "sadness"} and stats.target_set("") == frozenset()
    assert stats.chance_of_hit("joy+sadness", options) == 0.5 and stats.chance_of_hit("mixed", options) == 0
    confusion = stats.confusion_matrix(["a", "a", "b"], ["joy", "other", "joy"], rows=["b", "a"], columns=options)
    assert confusion.loc["a"].tolist() == [1, 0, 0, 1] and confusion.loc["b", "joy"] == 1
    skew = stats.category_skew(["joy"] * 8 + ["anger"] * 2)
    assert skew["top_category"] == "joy" and skew["top_share"] == 0.8 and skew["categories_used"] == 2
    assert skew["evenness"] == pytest.approx(-(0.8 * math.log(0.8) + 0.2 * math.log(0.2)) / math.log(2))
    assert stats.category_skew(["a", "b"])["evenness"] == pytest.approx(1.0)
