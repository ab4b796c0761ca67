"""The study's scores, as thin wrappers over ``sklearn.metrics``.

Every score is a fraction in [0, 1] (not a percentage). Where precision or
recall of a class is 0/0 (never predicted, or absent) it counts as 0 instead of
warning, so small or early-epoch runs stay quiet.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def accuracy(y_true, y_pred) -> float:
    """Share of rows where ``y_pred == y_true``.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
    """
    return float(skm.accuracy_score(y_true, y_pred))


def macro_f1(y_true, y_pred, labels=None) -> float:
    """Unweighted mean of the per-class F1 scores (see ``per_class_f1``)."""
    return float(skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0.0))


def per_class_f1(y_true, y_pred, labels=None) -> np.ndarray:
    """F1 of each class.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
    labels : array-like of shape (n_classes,), optional
        Classes and their order; default: the sorted labels found in either input.
        Pass ``range(10)`` to always get the ten Fashion-MNIST classes.

    Returns
    -------
    ndarray of shape (n_classes,), in ``labels`` order
    """
    return skm.f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0.0)


def evaluate(y_true, y_pred) -> dict:
    """The two headline scores: ``{"accuracy": float, "macro_f1": float}``."""
    return {"accuracy": accuracy(y_true, y_pred), "macro_f1": macro_f1(y_true, y_pred)}
