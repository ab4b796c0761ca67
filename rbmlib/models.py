"""The registry of the study's models: one record per model, built by name.

>>> model = make_model("rbm-lr", rbm__n_components=256, clf__C=0.5, random_state=0)
>>> MODELS["rbm-fnn"].epochs_param, MODELS["rbm-fnn"].baseline
('clf__n_iter', 'fnn')

Everything that differs between models is a field of its :class:`Model`
record, so tuning, refitting and the report ask the record instead of
testing names. Building is lazy: importing this module (the command line does,
for its choices) imports neither torch nor scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def _logistic_regression():
    # max_iter=1000 so that lbfgs converges (the original study stopped it after 5 iterations).
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, solver="lbfgs")


def _fnn():
    from rbmlib.nets import FNNClassifier

    return FNNClassifier()


def _cnn():
    from rbmlib.nets import CNNClassifier

    return CNNClassifier()


def _pretrained_fnn():
    from rbmlib.nets import PretrainedFNNClassifier
    from rbmlib.rbm import BernoulliRBM

    return PretrainedFNNClassifier(BernoulliRBM())


def _random_pipeline(clf):
    """``random -> clf``: a control, the RBM's feature map with random, unlearned weights."""
    from sklearn.pipeline import Pipeline

    from rbmlib.controls import RandomSigmoidFeatures

    return Pipeline([("random", RandomSigmoidFeatures()), ("clf", clf)])


def _pca_pipeline(clf):
    """``pca -> clf``: a control, the linear features that explain most pixel variance."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline

    return Pipeline([("pca", PCA()), ("clf", clf)])


def _rbm_pipeline(clf, *, scale: bool = False):
    """``rbm -> [scale ->] clf``: the RBM always first, the classifier always last."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from rbmlib.rbm import BernoulliRBM

    middle = [("scale", StandardScaler())] if scale else []
    return Pipeline([("rbm", BernoulliRBM()), *middle, ("clf", clf)])


@dataclass(frozen=True)
class Model:
    """One model of the study.

    Attributes
    ----------
    name : str
        Its name in studies, file names, the command line and MLflow.
    classifier : str
        What classifies, as the paper names it ("Logistic regression").
    build : callable
        Returns a fresh, unfitted estimator with default parameters.
    features : str or None
        What the classifier reads instead of pixels ("RBM", "PCA"): the model is
        then a ``Pipeline`` whose last step, ``clf``, classifies.
    uses_rbm : bool
        It trains a :class:`rbmlib.BernoulliRBM` under the name ``rbm`` (the first
        step of its pipeline, or the RBM a pretrained network starts from),
        through the RBM cache.
    has_epochs : bool
        Its classifier trains in epochs (a torch network): tuning reports each
        epoch to the pruner and the refit trains for the best trial's best epoch.
    baseline : str or None
        The same classifier on pixels, for an RBM model: what its features are compared with.
    warm_start_from : str or None
        A model whose best RBMs this one's study starts from (they are already trained).
    control : bool
        A control of protocol 2 rather than one of the original study's five
        models: it separates what an RBM learns from what any fixed expansion of
        the pixels, or an RBM's weights as a start, give. The paper shows the
        controls' tuning figures apart from the models'.
    """

    name: str
    classifier: str
    build: Callable[[], object]
    features: str | None = None
    uses_rbm: bool = False
    has_epochs: bool = False
    baseline: str | None = None
    warm_start_from: str | None = None
    control: bool = False

    @property
    def label(self) -> str:
        """How the paper names it: "Logistic regression on RBM features", "CNN (pixels)"."""
        return f"{self.classifier} on {self.features} features" if self.features else f"{self.classifier} (pixels)"

    @property
    def classifier_prefix(self) -> str:
        """``"clf__"`` for a pipeline, ``""`` for a bare classifier: how its classifier's arguments are named."""
        return "clf__" if self.features else ""

    @property
    def precision_params(self) -> tuple[str, ...]:
        """Its torch estimators' ``precision`` arguments (the RBM's, the network's), by full name."""
        names = ("rbm__precision",) if self.uses_rbm else ()
        return names + ((f"{self.classifier_prefix}precision",) if self.has_epochs else ())

    @property
    def epochs_param(self) -> str | None:
        """The argument that sets its classifier's epochs (``n_iter``, ``clf__n_iter``), if it has epochs."""
        return f"{self.classifier_prefix}n_iter" if self.has_epochs else None


#: The study's models and controls, in the order of the paper's tables.
MODELS: dict[str, Model] = {m.name: m for m in (
    Model("lr", "Logistic regression", _logistic_regression),
    Model("fnn", "Feed-forward network", _fnn, has_epochs=True),
    Model("cnn", "CNN", _cnn, has_epochs=True),
    Model("rbm-lr", "Logistic regression", lambda: _rbm_pipeline(_logistic_regression()),
          features="RBM", uses_rbm=True, baseline="lr"),
    # Standardised RBM features: most hidden probabilities of a large RBM are near 0,
    # and Adam learns slowly on them as they are (measurements: index.qmd, model list).
    Model("rbm-fnn", "Feed-forward network", lambda: _rbm_pipeline(_fnn(), scale=True),
          features="RBM", uses_rbm=True, has_epochs=True, baseline="fnn", warm_start_from="rbm-lr"),
    # Controls (protocol 2): what a linear model gains from features that are not learned as an RBM's.
    Model("random-lr", "Logistic regression", lambda: _random_pipeline(_logistic_regression()),
          features="random", baseline="lr", control=True),
    Model("pca-lr", "Logistic regression", lambda: _pca_pipeline(_logistic_regression()),
          features="PCA", baseline="lr", control=True),
    # The classic use of an RBM: it starts the hidden layer, and back-propagation fine-tunes it.
    Model("pre-fnn", "RBM-initialised feed-forward network", _pretrained_fnn, uses_rbm=True,
          has_epochs=True, baseline="fnn", warm_start_from="rbm-lr", control=True),
)}
MODEL_NAMES = tuple(MODELS)


def get_model(name: str) -> Model:
    """The registry record of ``name``; a clear error for an unknown one."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; valid names are {', '.join(MODEL_NAMES)}.") from None


def make_model(name: str, *, random_state=None, **params):
    """A fresh, unfitted estimator for one of ``MODEL_NAMES``.

    Parameters
    ----------
    name : str
        One of ``MODEL_NAMES``.
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
    model = get_model(name).build()
    valid = sorted(model.get_params(deep=True))
    if random_state is not None:
        model.set_params(**{k: random_state for k in valid if k.split("__")[-1] == "random_state"})
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise ValueError(
            f"Unknown parameter(s) {', '.join(map(repr, unknown))} for model {name!r}; "
            f"valid parameters are: {', '.join(valid)}."
        )
    return model.set_params(**params)


def model_steps(name: str) -> list[str]:
    """``["rbm: BernoulliRBM", "scale: StandardScaler", "clf: FNNClassifier"]``: what ``name`` is built from.

    Stored with each study, so that a study tuned on one make-up of a model is
    not continued on another (see ``rbmlib.tuning.study.load_study``).
    """
    model = make_model(name)
    steps = model.steps if get_model(name).features else [(name, model)]
    return [f"{step}: {type(est).__name__}" for step, est in steps]
