"""RandomSigmoidFeatures: the RBM's feature map with random, untrained weights (small data)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from rbmlib import BernoulliRBM, controls
from rbmlib.controls import RandomSigmoidFeatures


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).random((60, 30))  # (n, V) in [0, 1], float64


def test_features_are_the_sigmoid_of_the_stored_affine_map(X):
    rsf = RandomSigmoidFeatures(7, weight_scale=3.0, random_state=0).fit(X)
    Z = rsf.transform(X)
    assert Z.shape == (60, 7) and Z.dtype == np.float64
    np.testing.assert_allclose(Z, expit(X @ rsf.components_.T + rsf.intercept_hidden_), rtol=1e-12)
    assert 0 < Z.min() and Z.max() < 1


def test_row_chunks_do_not_change_the_result(X, monkeypatch):
    rsf = RandomSigmoidFeatures(7, random_state=0).fit(X)
    whole = rsf.transform(X)
    monkeypatch.setattr(controls, "_CHUNK_ROWS", 7)  # 60 rows: eight full blocks and a partial one
    np.testing.assert_allclose(rsf.transform(X), whole, rtol=1e-12)
    np.testing.assert_allclose(rsf.transform(np.asfortranarray(X)), whole, rtol=1e-12)


def test_weights_have_the_requested_scale():
    X = np.random.default_rng(1).random((10, 400))
    rsf = RandomSigmoidFeatures(500, weight_scale=5.0, random_state=0).fit(X)
    W = rsf.components_
    assert W.shape == (500, 400)
    # 200,000 draws: the sample SD is within 1% of 5 / sqrt(400) = 0.25 (its own SE is 0.16%).
    assert abs(W.std() / 0.25 - 1) < 0.01 and abs(W.mean()) < 0.005


def test_biases_centre_every_unit_on_the_training_data(X):
    rsf = RandomSigmoidFeatures(9, weight_scale=10.0, random_state=0).fit(X)
    pre = X @ rsf.components_.T + rsf.intercept_hidden_  # (n, H) the units' inputs
    np.testing.assert_allclose(pre.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(rsf.transform(X.mean(axis=0, keepdims=True)), 0.5, atol=1e-12)


def test_float32_stays_float32_and_matches_float64(X):
    X32 = X.astype(np.float32)
    rsf32 = RandomSigmoidFeatures(7, random_state=0).fit(X32)
    rsf64 = RandomSigmoidFeatures(7, random_state=0).fit(X32.astype(np.float64))
    assert rsf32.components_.dtype == rsf32.intercept_hidden_.dtype == np.float32
    assert rsf32.transform(X32).dtype == np.float32
    # The weights are drawn in float64 for both, so the float32 ones are their rounding.
    np.testing.assert_array_equal(rsf32.components_, rsf64.components_.astype(np.float32))
    np.testing.assert_allclose(rsf32.transform(X32), rsf64.transform(X32.astype(np.float64)), atol=1e-6)
    assert rsf64.transform(X32).dtype == np.float32  # the output follows X, not the fit


def test_same_seed_same_weights_different_seed_different(X):
    W = [RandomSigmoidFeatures(5, random_state=s).fit(X).components_ for s in (0, 0, 1)]
    np.testing.assert_array_equal(W[0], W[1])
    assert not np.allclose(W[0], W[2])


def test_inspected_like_the_rbm(X):
    """The same code reads both: components_ (H, V), intercept_hidden_ (H,), P(h=1|v) from them."""
    rbm = BernoulliRBM(n_components=5, n_iter=1, device="cpu", random_state=0).fit(X)
    rsf = RandomSigmoidFeatures(5, random_state=0).fit(X)
    for est in (rbm, rsf):
        assert est.components_.shape == (5, 30) and est.intercept_hidden_.shape == (5,)
        assert est.n_features_in_ == 30
        expected = expit(X @ est.components_.T + est.intercept_hidden_)
        np.testing.assert_allclose(est.transform(X), expected, rtol=1e-10)
    assert list(rsf.get_feature_names_out()[:2]) == ["randomsigmoidfeatures0", "randomsigmoidfeatures1"]


def test_bad_input_and_unfitted_use_fail(X):
    rsf = RandomSigmoidFeatures(5)
    with pytest.raises(NotFittedError):
        rsf.transform(X)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rsf.fit(X_nan)
    rsf.fit(X)
    with pytest.raises(ValueError, match="X has 4 features"):
        rsf.transform(X[:, :4])
    with pytest.raises(ValueError, match="weight_scale"):
        RandomSigmoidFeatures(weight_scale=0).fit(X)


def test_in_a_pipeline_before_logistic_regression():
    rng = np.random.default_rng(0)
    y = rng.integers(2, size=200)
    X = np.clip(0.5 + 0.3 * (2 * y[:, None] - 1) + 0.2 * rng.standard_normal((200, 10)), 0, 1)  # (200, 10)
    model = make_pipeline(RandomSigmoidFeatures(50, weight_scale=3.0, random_state=0), LogisticRegression())
    assert model.fit(X[:150], y[:150]).score(X[150:], y[150:]) > 0.9


@parametrize_with_checks([RandomSigmoidFeatures(n_components=5, random_state=0)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
