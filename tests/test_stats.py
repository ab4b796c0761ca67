"""Paired statistics on synthetic predictions whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from rbmlib.stats import compare, mcnemar, paired_bootstrap


def predictions(outcomes, labels=(0, 1)):
    """y_true, pred_a, pred_b from a string of per-image outcomes.

    "B": both right, "a": only a right, "b": only b right, "-": both wrong.
    """
    right, wrong = labels
    y = np.full(len(outcomes), right)
    pred_a = np.array([right if o in "Ba" else wrong for o in outcomes])
    pred_b = np.array([right if o in "Bb" else wrong for o in outcomes])
    return y, pred_a, pred_b


def simulated(rng, n, p_both=0.75, p_a_only=0.10, p_b_only=0.05):
    """Independent images: a is right with 0.85, b with 0.80, right together on 0.75 (difference 0.05)."""
    p_none = 1 - p_both - p_a_only - p_b_only
    outcomes = rng.choice(list("Bab-"), size=n, p=[p_both, p_a_only, p_b_only, p_none])
    return predictions("".join(outcomes))


# ----------------------------------------------------------------------------- identical models


def test_identical_predictions_differ_by_nothing():
    y, pred, _ = predictions("BBa-aB-B")
    boot = paired_bootstrap(y, pred, pred, n_resamples=500)
    assert boot["difference"] == boot["ci_low"] == boot["ci_high"] == boot["se"] == 0.0
    assert boot["accuracy_a"] == boot["accuracy_b"] == 6 / 8  # a is right on "B" and "a"
    assert mcnemar(y, pred, pred) == {"a_only": 0, "b_only": 0, "statistic": 0, "p_value": 1.0}


# ----------------------------------------------------------------------------- McNemar


def test_mcnemar_exact_p_value_by_hand():
    y, a, b = predictions("a" * 7 + "b" * 2 + "B" * 30 + "-" * 11)
    result = mcnemar(y, a, b)
    assert (result["a_only"], result["b_only"], result["statistic"]) == (7, 2, 2)
    # 9 discordant images, 2 won by b: p = 2 P(X <= 2), X ~ Bin(9, 1/2) = 2 (1 + 9 + 36) / 512.
    assert result["p_value"] == pytest.approx(92 / 512, rel=1e-12)
    # Concordant images do not matter, and swapping the models swaps the counts only.
    assert mcnemar(*predictions("a" * 7 + "b" * 2))["p_value"] == result["p_value"]
    assert mcnemar(y, b, a) == {**result, "a_only": 2, "b_only": 7}


def test_mcnemar_balanced_discordance_gives_p_one():
    assert mcnemar(*predictions("aabbB-"))["p_value"] == 1.0


def test_mcnemar_holds_its_level_under_the_null():
    rng = np.random.default_rng(0)
    p = [mcnemar(*simulated(rng, 200, p_a_only=0.08, p_b_only=0.08))["p_value"] for _ in range(400)]
    # The exact test is conservative: at most 5% rejections (+ 2.5 Monte Carlo SEs).
    assert np.mean(np.array(p) < 0.05) <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / 400)


def test_labels_may_be_strings():
    y, a, b = predictions("aaB-b", labels=("Bag", "Coat"))
    assert (mcnemar(y, a, b)["a_only"], paired_bootstrap(y, a, b)["difference"]) == (2, pytest.approx(0.2))


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_scipys_paired_bootstrap_of_the_two_accuracies():
    y, a, b = simulated(np.random.default_rng(0), 300)
    boot = paired_bootstrap(y, a, b, n_resamples=2000, random_state=3)
    ca, cb = (a == y).astype(float), (b == y).astype(float)
    ref = sps.bootstrap((ca, cb), lambda u, v, axis: u.mean(axis) - v.mean(axis), paired=True,
                        n_resamples=2000, method="percentile", rng=3)
    np.testing.assert_allclose([boot["ci_low"], boot["ci_high"], boot["se"]],
                               [*ref.confidence_interval, ref.standard_error], atol=1e-12)
    assert boot["difference"] == pytest.approx(ca.mean() - cb.mean())


def test_bootstrap_se_is_the_standard_error_of_a_mean():
    y, a, b = simulated(np.random.default_rng(1), 2000)
    d = (a == y).astype(float) - (b == y)
    se = paired_bootstrap(y, a, b, n_resamples=10_000)["se"]
    # The bootstrap SE of a mean is SD(d) / sqrt(n) (population SD); 10,000 resamples: within ~1.5%.
    assert se == pytest.approx(d.std() / np.sqrt(len(d)), rel=0.05)


def test_bootstrap_is_repeatable_and_ci_widens_with_confidence():
    y, a, b = simulated(np.random.default_rng(2), 300)
    first, again = (paired_bootstrap(y, a, b, n_resamples=1000, random_state=5) for _ in range(2))
    assert first == again
    wide = paired_bootstrap(y, a, b, n_resamples=1000, random_state=5, confidence=0.99)
    assert wide["ci_low"] < first["ci_low"] <= first["difference"] <= first["ci_high"] < wide["ci_high"]


def test_bootstrap_interval_covers_the_true_difference():
    rng = np.random.default_rng(0)
    hits = []
    for seed in range(200):
        boot = paired_bootstrap(*simulated(rng, 400), n_resamples=999, random_state=seed)
        hits.append(boot["ci_low"] <= 0.05 <= boot["ci_high"])
    # 95% nominal; 200 test sets give a Monte Carlo SE of 1.5 points.
    assert 0.90 <= np.mean(hits) <= 0.99


def test_mismatched_lengths_fail():
    y, a, b = predictions("aB-b")
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        paired_bootstrap(y, a, b[:3])


# ----------------------------------------------------------------------------- several seeds


def test_compare_with_one_seed_is_the_single_comparison():
    y, a, b = simulated(np.random.default_rng(3), 300)
    row = compare(y, [a], [b], n_resamples=1000, random_state=7)
    boot = paired_bootstrap(y, a, b, n_resamples=1000, random_state=7)
    assert (row["difference"], row["ci_low"], row["ci_high"], row["se_images"]) == (
        boot["difference"], boot["ci_low"], boot["ci_high"], boot["se"])
    assert row["mcnemar_p_max"] == mcnemar(y, a, b)["p_value"]
    assert (row["n_test"], row["n_seeds"]) == (300, 1)
    assert np.isnan(row["se_seeds"]) and np.isnan(row["se_total"])


def test_compare_summarises_seed_pairs():
    y = np.zeros(10, dtype=int)
    a = [y.copy() for _ in range(3)]  # a: 10/10 right with every seed
    b = [np.r_[np.ones(k, dtype=int), np.zeros(10 - k, dtype=int)] for k in (1, 2, 6)]  # b wrong on 1, 2, 6
    row = compare(y, a, b, n_resamples=1000)
    pair_diff = np.array([0.1, 0.2, 0.6])
    assert row["difference"] == pytest.approx(pair_diff.mean())
    assert row["accuracy_a"] == 1.0 and row["accuracy_b"] == pytest.approx(1 - pair_diff.mean())
    assert (row["pair_min"], row["pair_max"]) == (pytest.approx(0.1), pytest.approx(0.6))
    assert row["pairs_a_better"] == 3
    assert row["se_seeds"] == pytest.approx(pair_diff.std(ddof=1) / np.sqrt(3))
    assert row["se_total"] == pytest.approx(np.hypot(row["se_images"], row["se_seeds"]))
    assert row["mcnemar_p_max"] == 1.0  # the first pair: one discordant image, p = 2 * 1/2
    assert row["ci_low"] <= row["difference"] <= row["ci_high"]


def test_compare_bootstraps_the_seed_averaged_difference():
    rng = np.random.default_rng(4)
    y, a0, b0 = simulated(rng, 300)
    _, a1, b1 = simulated(rng, 300)
    row = compare(y, [a0, a1], [b0, b1], n_resamples=1000, random_state=0)
    per_image = np.mean([a0 == y, a1 == y], axis=0) - np.mean([b0 == y, b1 == y], axis=0)
    ref = sps.bootstrap((per_image,), np.mean, n_resamples=1000, method="percentile", rng=0)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(ref.confidence_interval), abs=1e-12)


def test_compare_needs_paired_lists():
    y, a, b = predictions("aB-b")
    with pytest.raises(ValueError, match="same number of seeds"):
        compare(y, [a, a], [b])
    with pytest.raises(ValueError, match="list of arrays, one per seed"):
        compare(y, a, [b])
