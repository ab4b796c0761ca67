"""rbmlib.report.few_labels: the few-labels table, figure and sentence, from hand-made rows whose
answers are known (nothing is fitted)."""

import numpy as np
import pandas as pd

from rbmlib.report import few_labels as report
from rbmlib.tuning.few_labels import COLUMNS

# Test accuracy per (model, labels per class), one value per seed (seeds 0, 1, 2).
ACCURACY = {
    ("lr", 10): [0.60, 0.62, 0.64], ("rbm-lr", 10): [0.70, 0.71, 0.72],
    ("random-lr", 10): [0.61, 0.62, 0.66],
    ("lr", 100): [0.75, 0.76, 0.77], ("rbm-lr", 100): [0.75, 0.77, 0.76],
    ("random-lr", 100): [0.70, 0.70, 0.70],
}


def _results(accuracy=ACCURACY):
    rows = []
    for (model, n), values in accuracy.items():
        for seed, acc in enumerate(values):
            rows.append({"model": model, "labels_per_class": n, "seed": seed,
                         "trial_number": None if model == "lr" else 3, "C": [0.1, 1.0, 10.0][seed],
                         "converged": seed != 2 or model != "rbm-lr", "val_accuracy": acc + 0.01,
                         "test_accuracy": acc, "test_macro_f1": acc - 0.01, "seconds": 1.0})
    return pd.DataFrame(rows, columns=COLUMNS).sample(frac=1, random_state=0)  # the order must not matter


def test_the_table_has_mean_and_spread_per_features_and_labels():
    table = report.few_labels_table(_results())
    assert table["Labels per class"].tolist() == [10, 10, 10, 100, 100, 100]
    assert table["Features"].tolist()[:3] == ["pixels", "RBM features", "random features"]
    rbm = table.iloc[1]
    assert rbm["Test accuracy (%)"] == "71.00 ± 1.00" and rbm["Test macro F1"] == "0.700 ± 0.010"
    assert rbm["Validation accuracy (%)"] == "72.00 ± 1.00"
    assert rbm["C (median)"] == "1" and rbm["Converged"] == "2 of 3" and rbm["Seeds"] == 3
    assert table.iloc[5]["Test accuracy (%)"] == "70.00 ± 0.00"


def test_differences_are_paired_by_seed():
    d = report.paired_differences(_results(), "rbm-lr", "random-lr")
    # Per seed at 10 labels: +9, +9, +6 points; their mean and its standard error.
    assert np.isclose(d.loc[10, "difference"], 8.0)
    assert np.isclose(d.loc[10, "standard_error"], np.std([9, 9, 6], ddof=1) / np.sqrt(3))
    assert d.loc[10, "n_seeds"] == 3
    # Per seed at 100 labels: 0, +1, -1 points.
    d = report.paired_differences(_results(), "rbm-lr", "lr")
    assert np.isclose(d.loc[100, "difference"], 0.0)
    assert np.isclose(d.loc[100, "standard_error"], 1 / np.sqrt(3))


def test_the_sentence_says_where_rbm_features_help():
    sentence = report.few_labels_sentence(_results())
    assert sentence.startswith("With 10 labels per class, logistic regression scores 62.0% on pixels, "
                               "71.0% on RBM features, 63.0% on random features, and RBM features "
                               "beat pixels (+9.0 points, standard error 0.6) and beat random features "
                               "(+8.0 points, standard error 1.0); with 100 labels per class, ")
    assert ("76.0% on pixels, 76.0% on RBM features, 70.0% on random features, and RBM features "
            "do not clearly differ from pixels (+0.0 points, standard error 0.6) and beat random "
            "features (+6.0 points" in sentence)
    assert sentence.endswith("(test accuracy, mean of 3 seeds sharing their images).")


def test_one_seed_gives_a_difference_without_a_verdict():
    one = {key: values[:1] for key, values in ACCURACY.items()}
    sentence = report.few_labels_sentence(_results(one))
    assert "differ from pixels by +10.0 points (one seed)" in sentence and "beat" not in sentence


def test_nothing_run_yet_says_so():
    empty = pd.DataFrame(columns=COLUMNS)
    assert report.few_labels_sentence(empty) == "The few-labels study has not been run yet."
    fig = report.few_labels_figure(empty)  # protocol 1 and smoke: a note in place of empty axes
    assert [t.get_text() for t in fig.axes[0].texts] == ["no few-labels study in this preset"]
    assert not fig.axes[0].axison


def test_the_figure_has_a_line_per_feature_type_on_a_log_axis_and_every_seed():
    fig = report.few_labels_figure(_results())
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"pixels", "RBM features", "random features"}
    np.testing.assert_allclose(lines["RBM features"].get_ydata(), [71.0, 76.0])
    np.testing.assert_allclose(lines["pixels"].get_xdata(), [10, 100])
    assert sum(len(c.get_offsets()) for c in ax.collections) == 18  # a dot per seed and row
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "100"]
