"""The registry of the study's five models, built by name.

>>> model = make_model("rbm-lr", rbm__n_components=256, clf__C=0.5, random_state=0)

``lr`` and the ``clf`` step of ``rbm-lr`` use ``LogisticRegression(max_iter=1000)``
so that lbfgs converges; the original study stopped it after 5 iterations.
"""

from __future__ import annotations

from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from rbmlib.nets import CNNClassifier, FNNClassifier

MODEL_NAMES = ("lr", "fnn", "cnn", "rbm-lr", "rbm-fnn")


def _logistic_regression() -> LogisticRegression:
    return LogisticRegression(max_iter=1000, solver="lbfgs")


def _rbm_pipeline(clf: BaseEstimator) -> Pipeline:
    # Imported here so this module imports while rbm.py is still being written.
    from rbmlib.rbm import BernoulliRBM

    return Pipeline([("rbm", BernoulliRBM()), ("clf", clf)])


_BUILDERS = {
    "lr": _logistic_regression,
    "fnn": FNNClassifier,
    "cnn": CNNClassifier,
    "rbm-lr": lambda: _rbm_pipeline(_logistic_regression()),
    "rbm-fnn": lambda: _rbm_pipeline(FNNClassifier()),
}


def make_model(name: str, *, random_state=None, **params) -> BaseEstimator:
    """A fresh, unfitted estimator for one of ``MODEL_NAMES``.

    Parameters
    ----------
    name : {"lr", "fnn", "cnn", "rbm-lr", "rbm-fnn"}
    random_state : int, RandomState or None, default=None
        When not None, set on every ``*random_state`` parameter inside the model
        (the RBM and the classifier of a pipeline alike). Applied before
        ``params``, so an explicit ``rbm__random_state=...`` wins.
    **params
        Passed to ``set_params``: plain names for ``lr``/``fnn``/``cnn``
        (``hidden_units=128``), ``step__name`` for the pipelines
        (``rbm__n_components=256``, ``clf__C=0.5``).

    Returns
    -------
    estimator
        ``LogisticRegression``, ``FNNClassifier``, ``CNNClassifier`` or a
        ``Pipeline([("rbm", BernoulliRBM), ("clf", ...)])``.

    Raises
    ------
    ValueError
        For an unknown model name or parameter name; the message lists the valid ones.
    """
    if name not in _BUILDERS:
        raise ValueError(f"Unknown model {name!r}; valid names are {', '.join(MODEL_NAMES)}.")
    model = _BUILDERS[name]()
    valid = sorted(model.get_params(deep=True))
    if random_state is not None:
        model.set_params(**{k: random_state for k in valid if k.split("__")[-1] == "random_state"})
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise ValueError(
            f"Unknown parameter(s) {', '.join(map(repr, unknown))} for model {name!r}; "
            f"valid parameters are: {', '.join(valid)}."
        )
    try:
        model.set_params(**params)
    except ValueError as exc:  # e.g. a step replaced by something without that parameter
        raise ValueError(f"Could not set {params} on model {name!r}: {exc}") from exc
    return model
