"""Hyperparameter tuning of the models of rbmlib.models with Optuna, logged to MLflow.

>>> from rbmlib import tuning
>>> tuning.tune("rbm-lr", "smoke")          # resumable: reruns continue the study
>>> tuning.evaluate(preset="smoke")         # best params, refit on trainval, scored on test
>>> tuning.summarize("smoke")               # results/smoke/summary.csv

Modules: ``presets`` (smoke and paper), ``spaces`` (search spaces),
``objective`` (train on "train", score on "val"), ``study`` (storage,
resuming, running), ``deadline`` (stopping at a trial's end before a set
time), ``progress`` (where the studies stand), ``tracking`` (the MLflow
callback), ``rbm_cache`` (trained RBMs reused across trials and refits),
``protocol`` (the digest and the locks), ``ledger`` (every test look),
``refit`` (the test split, once), ``few_labels``. The command line is
``rbmlib tune | status | evaluate | summary | few-labels`` (``rbmlib.cli``).

Only ``presets`` is imported eagerly: it needs neither torch nor Optuna, so
the command line can list presets quickly.
"""

from rbmlib.tuning.presets import PRESETS, Preset, get_preset

__all__ = ["PRESETS", "Preset", "evaluate", "get_preset", "load_study", "summarize", "tune"]

_LAZY = {"evaluate": "refit", "summarize": "refit", "load_study": "study", "tune": "study"}


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"rbmlib.tuning.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'rbmlib.tuning' has no attribute {name!r}")
