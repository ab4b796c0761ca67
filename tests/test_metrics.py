"""The metric wrappers against a 3-class example worked out by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rbmlib.metrics import accuracy, evaluate, macro_f1, per_class_f1

#                 0  1  2  3  4  5  6  7  8
Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
Y_PRED = np.array([0, 1, 0, 1, 2, 2, 2, 0, 2])

# Counted by hand from the rows above (TP, FP, FN) for classes 0, 1, 2:
#   class 0: TP rows 0, 2          FP row 7 (true 2)   FN row 1 (pred 1)
#   class 1: TP row 3              FP row 1 (true 0)   FN row 4 (pred 2)
#   class 2: TP rows 5, 6, 8       FP row 4 (true 1)   FN row 7 (pred 0)
COUNTS = {0: (2, 1, 1), 1: (1, 1, 1), 2: (3, 1, 1)}
F1 = np.array([2 * tp / (2 * tp + fp + fn) for tp, fp, fn in COUNTS.values()])  # 2/3, 1/2, 3/4


def test_hand_counts_match_the_rows():
    for c, (tp, fp, fn) in COUNTS.items():
        assert tp == np.sum((Y_TRUE == c) & (Y_PRED == c))
        assert fp == np.sum((Y_TRUE != c) & (Y_PRED == c))
        assert fn == np.sum((Y_TRUE == c) & (Y_PRED != c))


def test_accuracy():
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(6 / 9)
    assert accuracy(Y_TRUE, Y_TRUE) == 1.0


def test_per_class_f1_in_label_order():
    np.testing.assert_allclose(per_class_f1(Y_TRUE, Y_PRED), [2 / 3, 1 / 2, 3 / 4])
    np.testing.assert_allclose(per_class_f1(Y_TRUE, Y_PRED), F1)
    np.testing.assert_allclose(per_class_f1(Y_TRUE, Y_PRED, labels=[2, 0, 1]), F1[[2, 0, 1]])


def test_macro_f1_is_the_unweighted_mean():
    assert macro_f1(Y_TRUE, Y_PRED) == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)


def test_absent_class_scores_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f1 = per_class_f1(Y_TRUE, Y_PRED, labels=range(10))  # all Fashion-MNIST classes
        assert macro_f1(np.array([0, 0, 1]), np.array([0, 0, 0])) == pytest.approx((0.8 + 0.0) / 2)
    assert f1.shape == (10,)
    np.testing.assert_allclose(f1[:3], F1)
    assert np.all(f1[3:] == 0.0)


def test_string_labels():
    names = np.array(["bag", "coat", "shirt"])
    np.testing.assert_allclose(per_class_f1(names[Y_TRUE], names[Y_PRED]), F1)


def test_evaluate_returns_plain_fractions():
    scores = evaluate(Y_TRUE, Y_PRED)
    assert scores == pytest.approx({"accuracy": 6 / 9, "macro_f1": F1.mean()})
    assert all(type(v) is float and 0.0 <= v <= 1.0 for v in scores.values())
