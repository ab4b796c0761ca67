"""Paired comparisons of two classifiers on the same test images, from stored predictions.

Two models scored on one test set are not independent samples: most images
are easy for both, so their accuracies move together from one test set to the
next, and an unpaired comparison (two separate confidence intervals) wastes
that. Everything here pairs by image.

* :func:`paired_bootstrap`: the accuracy difference a - b with a percentile
  bootstrap interval, resampling test images with replacement, the same
  images for both models (the mean of the per-image difference
  ``correct_a - correct_b``, bootstrapped; the same as ``scipy.stats.bootstrap``
  with ``paired=True`` on the two correctness vectors).
* :func:`mcnemar`: the exact McNemar test. Only the images where exactly one
  model is right carry information; under "equally accurate" each of them is
  a fair coin, so the count won by a is Binomial(discordant, 1/2).

Several refit seeds per model (:func:`compare`)
-----------------------------------------------
A model refitted with S seeds gives S prediction vectors. Two sources of
noise then stand between the measured and the true difference: which test
images were drawn, and which training seeds. :func:`compare` reports

* ``difference``: the mean over seeds of a's accuracy minus the mean over
  seeds of b's (the same as the mean of the per-seed-pair differences);
* ``ci_low``, ``ci_high``, ``se_images``: the paired bootstrap over images of
  the seed-averaged per-image difference ``mean_s correct_a[s] - mean_s
  correct_b[s]``. This interval is *conditional on the trained models*: it
  says how far the mean difference of these S trained models per side could
  move on another test set of the same size. Training-seed noise is not in it, hence:
* ``se_seeds``: the standard error of the mean of the S per-pair differences
  (their standard deviation over sqrt(S)), the training-seed noise, and
  ``se_total = sqrt(se_images**2 + se_seeds**2)``, which counts both. It is
  conservative: the per-pair spread also holds image-level noise that the
  bootstrap already counts;
* the per-pair differences' range, how many pairs a wins, and the largest
  exact McNemar p-value over the pairs (each pair is a valid test of its own;
  the pairs are not independent, so their p-values are not combined).

A claim "a beats b" then needs the bootstrap interval to exclude 0, a
difference that is large beside ``se_total``, and agreement in sign across
seed pairs. Pairs are formed by position (seed i of a with seed i of b). The
difference, the interval and ``se_images`` do not depend on the pairing; the
per-pair figures do, and with seeds drawn independently for the two models
one fixed pairing is as good as another.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.utils import check_consistent_length, column_or_1d

_BOOTSTRAP_CELLS = 10_000_000  # resampled values per batch: about 80 MB of float64


def paired_bootstrap(y_true, pred_a, pred_b, *, n_resamples=10_000, confidence=0.95, random_state=0) -> dict:
    """Accuracy difference of a over b with a paired percentile bootstrap interval.

    Parameters
    ----------
    y_true, pred_a, pred_b : array-like of shape (n_samples,)
        True labels and the two models' predictions for the same images.
    n_resamples : int, default=10_000
        Bootstrap resamples of the test images.
    confidence : float, default=0.95
        Confidence level of the interval.
    random_state : int, numpy.random.Generator or None, default=0
        Seeds the resampling (passed to ``scipy.stats.bootstrap`` as ``rng``).

    Returns
    -------
    dict
        ``accuracy_a``, ``accuracy_b``, ``difference`` (accuracy_a - accuracy_b),
        ``ci_low``, ``ci_high`` (percentile interval of the difference) and ``se``
        (standard deviation of the bootstrap distribution).
    """
    correct_a, correct_b = _correct(y_true, [pred_a]), _correct(y_true, [pred_b])
    return {
        "accuracy_a": float(correct_a.mean()),
        "accuracy_b": float(correct_b.mean()),
        **_bootstrap_mean(correct_a[0].astype(float) - correct_b[0], n_resamples, confidence, random_state),
    }


def mcnemar(y_true, pred_a, pred_b) -> dict:
    """Exact McNemar test of "a and b are equally accurate" on paired predictions.

    The p-value is the two-sided binomial test of the discordant images (one
    model right, the other wrong) against 1/2. The chi-square version (with
    continuity correction) only approximates it (0.0367 against 0.0366 for 300
    against 250 discordant images) and is not given. The mid-p is not given
    either: it is smaller (0.0331 there) because it no longer holds the
    test's size at its level, and the exact p-value is the one that needs no
    argument.

    Parameters
    ----------
    y_true, pred_a, pred_b : array-like of shape (n_samples,)

    Returns
    -------
    dict
        ``a_only`` (images a gets right and b wrong), ``b_only`` (the reverse),
        ``statistic`` (``min(a_only, b_only)``, as statsmodels reports it) and
        ``p_value`` (1.0 when there are no discordant images).
    """
    correct_a, correct_b = _correct(y_true, [pred_a])[0], _correct(y_true, [pred_b])[0]
    a_only = int(np.sum(correct_a & ~correct_b))
    b_only = int(np.sum(~correct_a & correct_b))
    n = a_only + b_only
    p_value = stats.binomtest(a_only, n, 0.5).pvalue if n else 1.0  # binomtest needs n >= 1
    return {"a_only": a_only, "b_only": b_only, "statistic": min(a_only, b_only), "p_value": float(p_value)}


def compare(y_true, preds_a, preds_b, *, n_resamples=10_000, confidence=0.95, random_state=0) -> dict:
    """Compare two models refitted with several seeds each; see the module docstring.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
    preds_a, preds_b : sequence of array-like of shape (n_samples,)
        One prediction vector per refit seed, the same number for both models;
        seed i of a is paired with seed i of b.
    n_resamples, confidence, random_state
        As in :func:`paired_bootstrap`.

    Returns
    -------
    dict
        A flat record (a row of a ``pandas.DataFrame``): ``n_test``, ``n_seeds``,
        ``accuracy_a``, ``accuracy_b`` (means over seeds), ``difference``,
        ``ci_low``, ``ci_high``, ``se_images``, ``se_seeds`` (NaN for one seed),
        ``se_total``, ``pair_min``, ``pair_max``, ``pairs_a_better`` and
        ``mcnemar_p_max``.

    Examples
    --------
    >>> y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    >>> row = compare(y, [y, y], [y, y])
    >>> row["difference"], (row["ci_low"], row["ci_high"]), row["mcnemar_p_max"]
    (0.0, (0.0, 0.0), 1.0)
    """
    correct_a, correct_b = _correct(y_true, preds_a), _correct(y_true, preds_b)  # (S, n) each
    if correct_a.shape != correct_b.shape:
        raise ValueError(
            f"preds_a and preds_b need the same number of seeds to be paired; got "
            f"{correct_a.shape[0]} and {correct_b.shape[0]}."
        )
    n_seeds = correct_a.shape[0]
    pair_diff = correct_a.mean(axis=1) - correct_b.mean(axis=1)  # (S,)
    per_image = correct_a.mean(axis=0) - correct_b.mean(axis=0)  # (n,) the seed-averaged difference
    boot = _bootstrap_mean(per_image, n_resamples, confidence, random_state)
    se_seeds = float(np.std(pair_diff, ddof=1) / np.sqrt(n_seeds)) if n_seeds > 1 else float("nan")
    p_values = [mcnemar(y_true, a, b)["p_value"] for a, b in zip(preds_a, preds_b)]
    return {
        "n_test": correct_a.shape[1],
        "n_seeds": n_seeds,
        "accuracy_a": float(correct_a.mean()),
        "accuracy_b": float(correct_b.mean()),
        "difference": boot["difference"],
        "ci_low": boot["ci_low"],
        "ci_high": boot["ci_high"],
        "se_images": boot["se"],
        "se_seeds": se_seeds,
        "se_total": float(np.hypot(boot["se"], se_seeds)),
        "pair_min": float(pair_diff.min()),
        "pair_max": float(pair_diff.max()),
        "pairs_a_better": int(np.sum(pair_diff > 0)),
        "mcnemar_p_max": max(p_values),
    }


def _correct(y_true, preds) -> np.ndarray:
    """Boolean matrix (n_seeds, n_samples): which images each prediction vector gets right."""
    y_true = column_or_1d(y_true)
    if (isinstance(preds, np.ndarray) and preds.ndim == 1) or not len(preds):
        raise ValueError("Give the predictions as a list of arrays, one per seed.")
    preds = [column_or_1d(p) for p in preds]
    check_consistent_length(y_true, *preds)
    return np.stack([p == y_true for p in preds])


def _bootstrap_mean(diff, n_resamples, confidence, random_state) -> dict:
    """Mean of the per-image differences ``diff`` with its percentile bootstrap interval and SE."""
    res = stats.bootstrap(
        (np.asarray(diff, dtype=np.float64),), np.mean, n_resamples=n_resamples,
        confidence_level=confidence, method="percentile", rng=random_state,
        batch=max(1, _BOOTSTRAP_CELLS // len(diff)),  # scipy's default holds all resamples at once
    )
    return {
        "difference": float(np.mean(diff)),
        "ci_low": float(res.confidence_interval.low),
        "ci_high": float(res.confidence_interval.high),
        "se": float(res.standard_error),
    }
