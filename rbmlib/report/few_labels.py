"""The few-labels study: a table, a figure and a sentence from ``few_labels.csv``.

Everything here reads what :func:`rbmlib.tuning.few_labels.few_labels` wrote;
nothing is fitted. Differences between feature types are paired by seed: seed
s gives every feature type the same labelled and validation images, so the
spread of the per-seed differences is the right yardstick, not the spread of
each mean.

>>> results = rbmlib.tuning.few_labels.read_results("protocol2")
>>> few_labels_table(results), few_labels_figure(results), few_labels_sentence(results)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rbmlib.models import MODELS
from rbmlib.report.results import _effect, _mean_std
from rbmlib.tuning.few_labels import FEATURE_MODELS


def feature_name(model: str) -> str:
    """What the classifier reads, for a table or a legend: "RBM features", "pixels"."""
    features = MODELS[model].features
    return f"{features} features" if features else "pixels"


def _models(results) -> list[str]:
    return [m for m in FEATURE_MODELS if m in set(results["model"])]


def few_labels_table(results: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy (%) and macro F1 (mean ± sample std over seeds) per feature type and labels per class.

    Parameters
    ----------
    results : DataFrame
        ``few_labels.csv`` (``rbmlib.tuning.few_labels.COLUMNS``).

    Returns
    -------
    DataFrame
        One row per (labels per class, feature type), feature types in ``FEATURE_MODELS`` order;
        ``C`` is the median of the chosen values, ``Converged`` counts the lbfgs fits
        that stopped before ``max_iter``.
    """
    rows = []
    for n, group in results.groupby("labels_per_class", sort=True):
        for model in _models(group):
            r = group[group["model"] == model]
            acc, f1 = r["test_accuracy"], r["test_macro_f1"]
            rows.append({
                "Labels per class": int(n),
                "Features": feature_name(model),
                "Validation accuracy (%)": _mean_std(r["val_accuracy"].mean(), r["val_accuracy"].std(), 100),
                "Test accuracy (%)": _mean_std(acc.mean(), acc.std(ddof=1), 100),
                "Test macro F1": _mean_std(f1.mean(), f1.std(ddof=1), 1, 3),
                "C (median)": f"{r['C'].median():.3g}",
                "Converged": f"{int(r['converged'].astype(bool).sum())} of {len(r)}",
                "Seeds": len(r),
            })
    return pd.DataFrame(rows)


def few_labels_figure(results: pd.DataFrame) -> Figure:
    """Test accuracy against labels per class (log axis): one line per feature type, a dot per seed."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if results.empty:  # a preset without the study (protocol 1, smoke): say so rather than draw empty axes
        ax.text(0.5, 0.5, "no few-labels study in this preset", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    for i, model in enumerate(_models(results)):
        r = results[results["model"] == model]
        mean = r.groupby("labels_per_class")["test_accuracy"].mean() * 100
        color = f"C{i}"
        ax.plot(mean.index, mean.to_numpy(), marker="o", color=color, label=feature_name(model))
        # The seeds' spread: each seed's score, nudged sideways so that they do not cover each other.
        nudge = 1.0 + 0.04 * (i - (len(FEATURE_MODELS) - 1) / 2)
        ax.scatter(r["labels_per_class"] * nudge, r["test_accuracy"] * 100, s=12, alpha=0.5, color=color)
    ax.set_xscale("log")
    ticks = sorted(results["labels_per_class"].unique())
    ax.set_xticks(ticks, [f"{int(t):,}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labelled training images per class (as many for validation)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(title="logistic regression on", fontsize="small")
    fig.tight_layout()
    return fig


def paired_differences(results: pd.DataFrame, model: str, baseline: str) -> pd.DataFrame:
    """Per labels per class: mean test accuracy difference ``model - baseline`` (points) over shared seeds.

    Returns
    -------
    DataFrame
        Index ``labels_per_class``; columns ``difference``, ``standard_error``
        (sample std of the per-seed differences over the square root of their
        number; NaN for one seed) and ``n_seeds``.
    """
    wide = results.pivot_table(index=["labels_per_class", "seed"], columns="model", values="test_accuracy")
    diff = (wide[model] - wide[baseline]).dropna() * 100
    groups = diff.groupby(level="labels_per_class")
    return pd.DataFrame({"difference": groups.mean(),
                         "standard_error": groups.std(ddof=1) / np.sqrt(groups.count()),
                         "n_seeds": groups.count()})


def few_labels_sentence(results: pd.DataFrame) -> str:
    """Per labels per class: accuracy on each feature type; do RBM features beat pixels, random features?"""
    if results.empty or "rbm-lr" not in set(results["model"]):
        return "The few-labels study has not been run yet."
    means = results.groupby(["labels_per_class", "model"])["test_accuracy"].mean() * 100
    against = {b: paired_differences(results, "rbm-lr", b) for b in ("lr", "random-lr")
               if b in set(results["model"])}
    parts = []
    for n in sorted(results["labels_per_class"].unique()):
        scores = ", ".join(f"{means[(n, m)]:.1f}% on {feature_name(m)}" for m in _models(results)
                           if (n, m) in means.index)
        verdicts = []
        for baseline, d in against.items():
            if n not in d.index:
                continue
            diff, se = d.loc[n, "difference"], d.loc[n, "standard_error"]
            if pd.isna(se):  # one seed: no spread to judge the difference by
                verdicts.append(f"differ from {feature_name(baseline)} by {diff:+.1f} points (one seed)")
                continue
            verdict = {1: "beat", -1: "trail", 0: "do not clearly differ from"}[_effect(diff, se)]
            verdicts.append(f"{verdict} {feature_name(baseline)} "
                            f"({diff:+.1f} points, standard error {se:.1f})")
        parts.append(f"with {int(n):,} labels per class, logistic regression scores {scores}"
                     + (f", and RBM features {' and '.join(verdicts)}" if verdicts else ""))
    n_seeds = results.groupby(["labels_per_class", "model"]).size().min()
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + f" (test accuracy, mean of {n_seeds} seeds sharing their images)."
