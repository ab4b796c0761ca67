"""The registry of the study's five models, built by name.

>>> model = make_model("rbm-lr", rbm__n_components=256, clf__C=0.5, random_state=0)

``lr`` and the ``clf`` step of ``rbm-lr`` use ``LogisticRegression(max_iter=1000)``
so that lbfgs converges; the original study stopped it after 5 iterations.

``rbm-fnn`` standardises the RBM's features before the network (a ``scale``
step). The hidden probabilities of a large RBM are mostly near 0 (84% below
0.1 for the 6,144-unit RBM of the paper preset), and Adam, trained on them as
they are, learns slowly: after 7 epochs at a learning rate of 1e-4 the network
scored 0.811 on validation without the scaler and 0.853 with it (measured,
``clf__hidden_units=400``). ``rbm-lr`` keeps the original study's two steps.
"""

from __future__ import annotations

from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from rbmlib.nets import CNNClassifier, FNNClassifier

MODEL_NAMES = ("lr", "fnn", "cnn", "rbm-lr", "rbm-fnn")


def _logistic_regression() -> LogisticRegression:
    return LogisticRegression(max_iter=1000, solver="lbfgs")


def _rbm_pipeline(clf: BaseEstimator, *, scale: bool = False) -> Pipeline:
    """``rbm -> [scale ->] clf``: the RBM always first, the classifier always last."""
    from rbmlib.rbm import BernoulliRBM

    middle = [("scale", StandardScaler())] if scale else []
    return Pipeline([("rbm", BernoulliRBM()), *middle, ("clf", clf)])


_BUILDERS = {
    "lr": _logistic_regression,
    "fnn": FNNClassifier,
    "cnn": CNNClassifier,
    "rbm-lr": lambda: _rbm_pipeline(_logistic_regression()),
    "rbm-fnn": lambda: _rbm_pipeline(FNNClassifier(), scale=True),
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
        ``Pipeline([("rbm", BernoulliRBM), ("clf", ...)])`` (``rbm-fnn`` with a
        ``("scale", StandardScaler())`` step between them).

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


def model_steps(name: str) -> list[str]:
    """``["rbm: BernoulliRBM", "scale: StandardScaler", "clf: FNNClassifier"]``: what ``name`` is built from.

    Stored with each study, so that a study tuned on one make-up of a model is
    not continued on another (see ``rbmlib.tuning.study.load_study``).
    """
    model = make_model(name)
    steps = model.steps if isinstance(model, Pipeline) else [(name, model)]
    return [f"{step}: {type(est).__name__}" for step, est in steps]

