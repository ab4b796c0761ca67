"""The objective: train on the training split, score on the validation split.

The test split is never loaded here; :mod:`rbmlib.tuning.refit` touches it
once, after tuning. The objective returns validation accuracy and keeps the
rest as trial user attributes, which the MLflow callback then logs:

``val_macro_f1``
    macro F1 on the validation split, at the returned accuracy's epoch;
``best_epoch``
    (networks) the epoch whose weights were kept; the final refit trains that long;
``history``, ``rbm_history``
    per-epoch records of the classifier and of the RBM (curves for MLflow);
``converged``
    (logistic regression) whether lbfgs stopped before ``max_iter``;
``rbm_cached``
    whether the RBM came from the cache instead of being trained;
``rbm_resumed_epochs``
    (where there were any) the epochs of its RBM that an earlier, cut run of
    the trial had trained: the training went on from their checkpoint
    (:mod:`rbmlib.tuning.rbm_cache`), so the trial's duration is not its cost;
    0 where a retry inherited the attribute from such a run but had no checkpoint;
``prune_reason``
    why a trial was pruned: the pruner's verdict at an epoch, or a divergence;
``worker``
    ``host:pid`` of the process that ran it (several workers may share a study);
``deferred``
    why a trial was put off before any work, as failed: with a deadline
    (``until``), one that would not end in time (:mod:`rbmlib.tuning.deadline`);
    its parameters run again as a later trial, which has ``deferred_from``.

A diverging run (non-finite loss or RBM parameters, i.e. ``FloatingPointError``)
ends as PRUNED, not FAIL: TPE learns from pruned trials (it ranks them below
every complete one) but ignores failed ones, so it would keep proposing the
step sizes that blow up.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

import numpy as np
import optuna
from sklearn.pipeline import Pipeline
from tqdm.auto import tqdm

from rbmlib import data, metrics
from rbmlib._device import bfloat16_kind, machine_description
from rbmlib.models import get_model, make_model
from rbmlib.tuning import deadline
from rbmlib.tuning.rbm_cache import (FeatureCache, attach_rbm, checkpointed_epochs, data_fingerprint,
                                     fit_feature_steps, fit_rbm, is_cached, rbm_key, rbm_step)

_CURVE_KEYS = ("epoch", "train_loss", "val_accuracy", "val_macro_f1")
_RBM_CURVE_KEYS = ("epoch", "reconstruction_error", "pseudo_likelihood")


@dataclass
class Splits:
    """Training and validation data of a study (never the test split)."""

    X: np.ndarray
    y: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray

    @classmethod
    def load(cls, preset) -> "Splits":
        """The preset's ``"train"`` and ``"val"`` splits (subsets for small presets)."""
        X, y = data.load_split("train", subset=preset.train_subset)
        X_val, y_val = data.load_split("val", subset=preset.val_subset)
        return cls(X, y, X_val, y_val)


def _records(history, keys) -> list[dict]:
    """JSON-friendly per-epoch records (plain floats, 6 significant digits)."""
    return [{k: (int(r[k]) if k == "epoch" else float(f"{r[k]:.6g}")) for k in keys if k in r}
            for r in history]


def _tick(bar) -> bool:
    """RBM callback: advance the progress bar; False means "go on"."""
    bar.update()
    return False


class _EpochReporter:
    """Estimator callback: report validation accuracy per epoch and ask the pruner.

    Returning True stops the estimator after the epoch; the objective then raises
    ``TrialPruned`` (an exception raised inside ``fit`` would lose the history).
    """

    def __init__(self, trial: optuna.Trial, bar):
        self.trial, self.bar, self.pruned_at = trial, bar, None

    def __call__(self, estimator, record) -> bool:
        self.bar.update()
        self.trial.report(record["val_accuracy"], record["epoch"])
        if self.trial.should_prune():
            self.pruned_at = record["epoch"]
            return True
        return False


_BFLOAT16 = bfloat16_kind()  # how this machine multiplies in bf16, recorded with each trial


class Objective:
    """Optuna objective for one model: ``study.optimize(Objective("fnn", preset))``.

    Parameters
    ----------
    model : str
        One of ``rbmlib.models.MODEL_NAMES``.
    preset : Preset
        Fixes epochs, early stopping and the training seed (see ``presets``).
    splits : Splits, optional
        Training and validation data; default ``Splits.load(preset)``.
    cache_dir : path-like, optional
        Where trained RBMs are kept (default ``paths.CACHE_DIR / "rbm"``).
    until : datetime.datetime, optional
        Put off a trial that, once drawn, is not expected to end before this
        (:func:`rbmlib.tuning.deadline.defer_if_late`).
    """

    def __init__(self, model: str, preset, splits: Splits | None = None, cache_dir=None, until=None):
        get_model(model)  # a clear error for an unknown name
        self.model, self.preset, self.until = model, preset, until
        self.splits = splits if splits is not None else Splits.load(preset)
        self.cache_dir = cache_dir
        self._X_fingerprint = None  # computed on first use: only the RBM models need it
        self._features = FeatureCache()

    def __call__(self, trial: optuna.Trial) -> float:
        params = self.preset.spaces[self.model](trial, self.preset)
        fixed = self.preset.fixed_params(self.model)
        estimator = make_model(self.model, random_state=self.preset.random_state, **fixed, **params)
        if self.until is not None:  # before any work: a trial put off costs nothing
            deadline.defer_if_late(trial, self.until, self._rbm_work(estimator, {**fixed, **params}), fixed)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("bfloat16", _BFLOAT16)
        trial.set_user_attr("machine", machine_description())  # what a rerun must match (processor, threads, ...)
        start = time.perf_counter()
        try:
            scores = self._fit_and_score(trial, estimator)
        except FloatingPointError as exc:
            trial.set_user_attr("prune_reason", f"diverged: {exc}")
            raise optuna.TrialPruned(f"diverged: {exc}") from exc
        finally:
            trial.set_user_attr("fit_seconds", round(time.perf_counter() - start, 2))
        trial.set_user_attr("val_macro_f1", scores["macro_f1"])
        return scores["accuracy"]

    # ------------------------------------------------------------------ fitting
    def _fit_and_score(self, trial, estimator) -> dict:
        spec = get_model(self.model)
        X, X_val, clf = self.splits.X, self.splits.X_val, estimator
        if spec.uses_rbm and spec.features:  # rbm -> ... -> clf: the classifier reads the features
            X, X_val = fit_feature_steps(estimator, X, X_val=X_val,
                                         features=lambda rbm, *_: self._rbm_features(trial, rbm))
            clf = estimator[-1]
        elif spec.uses_rbm:  # a network that starts from the RBM and reads pixels
            attach_rbm(estimator, X, fit=lambda rbm: self._fitted_rbm(trial, rbm))
        fit = self._fit_net if spec.has_epochs else self._fit_lr
        return fit(trial, clf, X, X_val)

    def _fit_lr(self, trial, clf, X, X_val) -> dict:
        clf.fit(X, self.splits.y)
        lr = clf[-1] if isinstance(clf, Pipeline) else clf  # e.g. pca -> clf
        # lbfgs stops at max_iter with a warning; record it so a table can show it.
        trial.set_user_attr("converged", bool(np.all(lr.n_iter_ < lr.max_iter)))
        return metrics.evaluate(self.splits.y_val, clf.predict(X_val))

    def _fit_net(self, trial, net, X, X_val) -> dict:
        with tqdm(total=net.n_iter, desc=f"trial {trial.number}", unit="epoch",
                  leave=False, disable=None) as bar:
            reporter = _EpochReporter(trial, bar)
            net.set_params(callback=reporter)
            try:
                net.fit(X, self.splits.y, eval_set=(X_val, self.splits.y_val))
            finally:
                if getattr(net, "history_", None):
                    trial.set_user_attr("history", _records(net.history_, _CURVE_KEYS))
        if reporter.pruned_at is not None:
            reason = f"{type(trial.study.pruner).__name__} at epoch {reporter.pruned_at}"
            trial.set_user_attr("prune_reason", reason)
            raise optuna.TrialPruned(reason)
        # Early stopping kept the best epoch's weights: report that epoch's scores.
        best = net.history_[net.best_epoch_ - 1]
        trial.set_user_attr("best_epoch", int(net.best_epoch_))
        return {"accuracy": best["val_accuracy"], "macro_f1": best["val_macro_f1"]}

    def _rbm_features(self, trial, rbm):
        """(fitted RBM, features of X, features of X_val), from memory, the disk cache or training."""
        key = self._rbm_key(rbm)
        entry = self._features.get(key)
        if entry is None:
            self._features.clear()
            fitted = self._fitted_rbm(trial, rbm, key=key)
            entry = (fitted, fitted.transform(self.splits.X), fitted.transform(self.splits.X_val))
            self._features.put(key, entry)
        else:
            self._record_rbm(trial, entry[0], cached=True)
        return entry

    def _fitted_rbm(self, trial, rbm, key=None):
        """The RBM trained on the training split, from the disk cache or training.

        A network that starts from the RBM (pre-fnn) needs only this, not the features.
        """
        key = key or self._rbm_key(rbm)
        done = checkpointed_epochs(key, self.cache_dir)
        if done or "rbm_resumed_epochs" in trial.user_attrs:  # a retry inherits the cut run's attributes
            trial.set_user_attr("rbm_resumed_epochs", done)
        with tqdm(total=rbm.n_iter, initial=done, desc=f"trial {trial.number} RBM", unit="epoch",
                  leave=False, disable=None) as bar:
            rbm.set_params(callback=lambda _rbm, _record: _tick(bar))
            fitted, cached = fit_rbm(rbm, self.splits.X, key=key, cache_dir=self.cache_dir)
        self._record_rbm(trial, fitted, cached=cached)
        return fitted

    def _rbm_work(self, estimator, params) -> int | None:
        """Hidden units times epochs left to train of the trial's RBM; None if it has none or it is cached."""
        rbm = rbm_step(estimator)
        if rbm is None or is_cached(key := self._rbm_key(rbm), self.cache_dir):
            return None
        return deadline.rbm_work(params, done_epochs=checkpointed_epochs(key, self.cache_dir))

    def _rbm_key(self, rbm) -> str:
        if self._X_fingerprint is None:
            self._X_fingerprint = data_fingerprint(self.splits.X)
        return rbm_key(rbm, self._X_fingerprint)

    @staticmethod
    def _record_rbm(trial, fitted, *, cached: bool) -> None:
        trial.set_user_attr("rbm_cached", cached)
        trial.set_user_attr("rbm_history", _records(fitted.history_, _RBM_CURVE_KEYS))
