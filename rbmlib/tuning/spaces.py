"""Search spaces: one small function of ``trial`` per model.

Every parameter is suggested under the name the estimator takes, so a trial's
``params`` go straight into :func:`rbmlib.models.make_model` and show up in
Optuna and MLflow under the same name (``C``, ``hidden_units``,
``rbm__n_components``, ``clf__C``, ...).

The original study's ranges are the starting point; where a range is wider,
the comment beside it says why. What a preset changes (how big an RBM may get,
so that the smoke preset stays tiny) comes in through ``preset``; everything
that is not tuned (epochs, early stopping) is in :meth:`Preset.fixed_params`.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

# Coarse grids for the RBM, on purpose: trials that draw the same RBM reuse its
# cached weights and refit only the classifier.
_RBM_LEARNING_RATE = {"low": 0.01, "high": 0.1, "step": 0.01}  # the original's 0.05-0.1, and smaller steps
_RBM_BATCH_SIZES = (64, 128, 256, 512, 1024)  # the original's 192-1024, and more updates per epoch

# The original's 0.01-10 on pixels, widened down: converged fits peaked near C = 0.1 on validation.
_C_RANGE = (1e-3, 10.0)
# Wider up on RBM features: validation accuracy still rose at the original's cap of 10 (measured on validation).
_C_RANGE_RBM_FEATURES = (1e-3, 100.0)


def lr(trial: optuna.Trial, preset) -> dict:
    """Logistic regression on pixels: the inverse regularisation strength ``C``."""
    return {"C": trial.suggest_float("C", *_C_RANGE, log=True)}


def fnn(trial: optuna.Trial, preset, prefix: str = "") -> dict:
    """One-hidden-layer network; ``prefix="clf__"`` when it sits after the RBM."""
    p = prefix
    return {
        # The original's 192-384, widened: is plain width, rather than RBM features, what helps?
        f"{p}hidden_units": trial.suggest_int(f"{p}hidden_units", 128, 1024, log=True),
        f"{p}learning_rate": trial.suggest_float(f"{p}learning_rate", 1e-4, 2.5e-3, log=True),
        f"{p}batch_size": trial.suggest_int(f"{p}batch_size", 64, 256, log=True),
        # Not in the study: over tens of epochs a wide layer overfits without it.
        f"{p}dropout": trial.suggest_float(f"{p}dropout", 0.0, 0.5),
    }


def cnn(trial: optuna.Trial, preset) -> dict:
    """The two-block CNN: filters, kernels, step size, dropout of the dense layer."""
    return {
        "filters1": trial.suggest_int("filters1", 16, 64, log=True),
        "filters2": trial.suggest_int("filters2", 32, 128, log=True),
        "kernel1": trial.suggest_int("kernel1", 3, 5),
        "kernel2": trial.suggest_int("kernel2", 3, 5),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 2.5e-3, log=True),
        # The study fixed 0.25; tuning it costs one dimension and guards the dense head.
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
    }


def _rbm(trial: optuna.Trial, preset) -> dict:
    """The RBM's parameters, under the pipeline step name ``rbm__``."""
    # The range of sizes is the preset's: the study's 384-8192, cut to what its budget allows.
    low, high, step = preset.rbm__n_components
    return {
        "rbm__n_components": trial.suggest_int("rbm__n_components", low, high, step=step),
        "rbm__learning_rate": trial.suggest_float("rbm__learning_rate", **_RBM_LEARNING_RATE),
        "rbm__batch_size": trial.suggest_categorical("rbm__batch_size", _RBM_BATCH_SIZES),
    }


def rbm_lr(trial: optuna.Trial, preset) -> dict:
    """RBM features, then logistic regression (its ``C`` as ``clf__C``)."""
    C = trial.suggest_float("clf__C", *_C_RANGE_RBM_FEATURES, log=True)
    return {**_rbm(trial, preset), "clf__C": C}


def rbm_fnn(trial: optuna.Trial, preset) -> dict:
    """RBM features, then the one-hidden-layer network (``clf__`` parameters)."""
    return {**_rbm(trial, preset), **fnn(trial, preset, prefix="clf__")}


#: model name -> space(trial, preset) -> params for make_model
SPACES: dict[str, Callable[..., dict]] = {
    "lr": lr,
    "fnn": fnn,
    "cnn": cnn,
    "rbm-lr": rbm_lr,
    "rbm-fnn": rbm_fnn,
}
