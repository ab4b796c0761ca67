"""The model registry: names, parameter routing, errors, and a tiny fit of each kind."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import minmax_scale

from rbmlib.models import MODEL_NAMES, make_model
from rbmlib.nets import CNNClassifier, FNNClassifier


@pytest.fixture
def rbm():
    """The RBM module, or a skip while rbm.py is still being written."""
    return pytest.importorskip("rbmlib.rbm")


@pytest.fixture(scope="module")
def toy():
    X, y = make_classification(n_samples=200, n_features=12, n_informative=6, n_redundant=0,
                               n_classes=3, class_sep=2.0, random_state=0)
    # minmax_scale can overshoot 1 by one ulp; the Bernoulli RBM rejects that.
    return np.clip(minmax_scale(X), 0.0, 1.0), y


def test_names():
    assert MODEL_NAMES[:5] == ("lr", "fnn", "cnn", "rbm-lr", "rbm-fnn")  # protocol 1's, in its order
    assert set(MODEL_NAMES[5:]) == {"random-lr", "pca-lr", "pre-fnn"}  # protocol 2's controls


@pytest.mark.parametrize("name, kind", [("lr", LogisticRegression), ("fnn", FNNClassifier),
                                        ("cnn", CNNClassifier)])
def test_plain_models_build(name, kind):
    model = make_model(name)
    assert type(model) is kind
    assert make_model(name) is not model  # a fresh estimator every call


def test_lr_converges_unlike_the_original():
    model = make_model("lr")
    assert model.max_iter == 1000 and model.solver == "lbfgs"


@pytest.mark.parametrize("name, clf, steps", [("rbm-lr", LogisticRegression, ["rbm", "clf"]),
                                              ("rbm-fnn", FNNClassifier, ["rbm", "scale", "clf"])])
def test_rbm_pipelines_build(rbm, name, clf, steps):
    model = make_model(name)
    assert isinstance(model, Pipeline)
    assert list(model.named_steps) == steps
    assert isinstance(model.named_steps["rbm"], rbm.BernoulliRBM)
    assert type(model.named_steps["clf"]) is clf


def test_pipeline_params_route_to_their_step(rbm):
    model = make_model("rbm-lr", rbm__n_components=16, clf__C=0.5)
    assert model.named_steps["rbm"].n_components == 16
    assert model.named_steps["clf"].C == 0.5
    assert model.get_params()["clf__max_iter"] == 1000


def test_plain_params_are_set():
    model = make_model("fnn", hidden_units=8, dropout=0.5)
    assert (model.hidden_units, model.dropout) == (8, 0.5)
    assert make_model("lr", C=0.1).C == 0.1


def test_random_state_reaches_every_step(rbm):
    model = make_model("rbm-fnn", random_state=3)
    assert model.get_params()["rbm__random_state"] == 3
    assert model.get_params()["clf__random_state"] == 3
    # An explicit per-step value wins over the convenience argument.
    model = make_model("rbm-fnn", random_state=3, rbm__random_state=7)
    assert model.get_params()["rbm__random_state"] == 7
    assert make_model("lr", random_state=5).random_state == 5
    assert make_model("cnn", random_state=5).random_state == 5


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="'svm'.*lr, fnn, cnn, rbm-lr, rbm-fnn"):
        make_model("svm")


def test_unknown_param_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match="'hidden_unit'.*'fnn'.*hidden_units"):
        make_model("fnn", hidden_unit=8)


def test_unprefixed_pipeline_param_is_rejected(rbm):
    with pytest.raises(ValueError, match="'n_components'.*rbm__n_components"):
        make_model("rbm-lr", n_components=16)


def test_lr_fits_a_tiny_problem(toy):
    X, y = toy
    model = make_model("lr", random_state=0).fit(X[:150], y[:150])
    assert model.score(X[150:], y[150:]) > 0.8  # chance is 1/3


@pytest.mark.parametrize("name, clf_params", [
    ("rbm-lr", {}),
    ("rbm-fnn", {"clf__hidden_units": 8, "clf__n_iter": 3, "clf__device": "cpu"}),
])
def test_rbm_pipelines_fit_and_predict(rbm, toy, name, clf_params):
    X, y = toy
    model = make_model(name, rbm__n_components=8, rbm__n_iter=2, rbm__device="cpu",
                       random_state=0, **clf_params)
    model.fit(X, y)
    assert model.predict(X).shape == (len(X),)
    assert model.named_steps["rbm"].transform(X).shape == (len(X), 8)
