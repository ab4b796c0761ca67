"""Hyperparameter tuning of the five models with Optuna, logged to MLflow.

>>> from rbmlib import tuning
>>> tuning.tune("rbm-lr", "smoke")          # resumable: reruns continue the study
>>> tuning.evaluate(preset="smoke")         # best params, refit on trainval, scored on test
>>> tuning.summarize("smoke")               # results/smoke/summary.csv

Modules: ``spaces`` (search spaces), ``objective`` (train on "train", score on
"val"), ``presets`` (smoke and paper), ``study`` (storage, resuming, running),
``tracking`` (the MLflow callback), ``rbm_cache`` (trained RBMs reused across
trials), ``evaluate`` (the test split, once). The command line is ``rbmlib
tune | evaluate | summary`` (``rbmlib.cli``).
"""

from rbmlib.tuning.refit import evaluate, summarize
from rbmlib.tuning.presets import PRESETS, Preset, get_preset
from rbmlib.tuning.study import load_study, tune

__all__ = ["PRESETS", "Preset", "evaluate", "get_preset", "load_study", "summarize", "tune"]
