"""Behaviour of the torch networks and their scikit-learn classifiers (CPU, small data)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.frozen import FrozenEstimator
from sklearn.preprocessing import minmax_scale
from sklearn.utils.estimator_checks import parametrize_with_checks

from rbmlib.nets import CNN, FNN, CNNClassifier, FNNClassifier
from rbmlib.nets import PretrainedFNNClassifier
from rbmlib.rbm import BernoulliRBM

# Small and quick settings; "cpu" so that runs are bitwise reproducible.
FAST_FNN = dict(hidden_units=32, learning_rate=1e-2, batch_size=32, n_iter=10, device="cpu")
FAST_CNN = dict(filters1=4, filters2=8, dense_units=32, learning_rate=1e-2, batch_size=32,
                n_iter=4, device="cpu")


def tabular(n=400, n_classes=3, seed=0):
    """A well-separated 20-feature problem scaled to [0, 1]; (X float64, y int)."""
    X, y = make_classification(n_samples=n, n_features=20, n_informative=8, n_redundant=0,
                               n_classes=n_classes, class_sep=2.0, random_state=seed)
    return np.clip(minmax_scale(X), 0.0, 1.0), y  # minmax_scale can overshoot 1 by an ulp


def blob_images(n=300, n_classes=3, seed=0):
    """28x28 noise images with a bright 8x8 square whose corner depends on the class."""
    rng = np.random.RandomState(seed)
    y = rng.randint(n_classes, size=n)
    X = rng.uniform(0.0, 0.3, size=(n, 28, 28))
    for c in range(n_classes):
        r = 2 + 9 * c  # classes 0, 1, 2 put their square at rows/cols 2, 11, 20
        X[y == c, r:r + 8, r:r + 8] = 1.0
    return X.reshape(n, 784), y


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices gain nothing from threads, and spinning OpenMP workers are slow
    when the 2 cores are shared with other test runs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    X, y = tabular()
    return X[:300], y[:300], X[300:], y[300:]


@pytest.fixture(scope="module")
def fitted(data):
    X, y, X_val, y_val = data
    return FNNClassifier(**FAST_FNN, random_state=0).fit(X, y, eval_set=(X_val, y_val))


# ----------------------------------------------------------------------------- modules


def test_fnn_module_shapes():
    net = FNN(n_features=20, hidden_units=7, n_classes=3, dropout=0.5)
    assert net(torch.zeros(5, 20)).shape == (5, 3)
    assert net.hidden.out_features == 7


def test_cnn_module_flattened_size_known_at_construction():
    net = CNN(32, 64, 3, 3, dense_units=600, dropout=0.25, n_classes=10)
    # 28 -(conv, pad 1)-> 28 -(pool)-> 14 -(conv 3)-> 12 -(pool)-> 6: 64 * 6 * 6 inputs.
    first_dense = [m for m in net.head if isinstance(m, torch.nn.Linear)][0]
    assert first_dense.in_features == 64 * 6 * 6
    assert [m.out_features for m in net.head if isinstance(m, torch.nn.Linear)] == [600, 120, 10]
    assert net.eval()(torch.zeros(2, 784)).shape == (2, 10)


def test_cnn_kernels_too_large_for_image():
    with pytest.raises(ValueError, match="kernel"):
        CNN(4, 4, 27, 9, dense_units=8, dropout=0.0, n_classes=2)


# ----------------------------------------------------------------------------- learning


def test_fnn_learns_separable_problem(fitted, data):
    _, _, X_val, y_val = data
    assert fitted.score(X_val, y_val) > 0.8  # chance is 1/3


def test_cnn_learns_blob_images():
    X, y = blob_images()
    clf = CNNClassifier(**FAST_CNN, random_state=0).fit(X[:200], y[:200])
    assert clf.score(X[200:], y[200:]) > 0.9


def test_cnn_rejects_inputs_that_are_not_28x28(data):
    X, y, _, _ = data
    with pytest.raises(ValueError, match="784 features; got X with 20"):
        CNNClassifier(**FAST_CNN).fit(X, y)


def test_predict_proba_is_a_distribution_consistent_with_predict(fitted, data):
    _, _, X_val, _ = data
    proba = fitted.predict_proba(X_val)
    assert proba.shape == (len(X_val), 3)
    # float32, the precision the network computes in, so that scikit-learn's checks
    # apply float32 tolerances to float32 rounding.
    assert proba.dtype == np.float32 and fitted.decision_function(X_val).dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(fitted.classes_[proba.argmax(axis=1)], fitted.predict(X_val))
    scores = fitted.decision_function(X_val)  # (n, 3) logits for 3 classes
    np.testing.assert_array_equal(scores.argmax(axis=1), proba.argmax(axis=1))


def test_module_is_kept_on_cpu(fitted):
    assert all(p.device.type == "cpu" for p in fitted.module_.parameters())


# ----------------------------------------------------------------------------- randomness


@pytest.mark.parametrize("make", [
    lambda seed: (FNNClassifier(**FAST_FNN, dropout=0.3, random_state=seed), tabular()),
    lambda seed: (CNNClassifier(**{**FAST_CNN, "n_iter": 2}, random_state=seed), blob_images(120)),
], ids=["fnn", "cnn"])
def test_same_seed_same_predictions_different_seed_different(make):
    probas = []
    for seed in (0, 0, 1):
        clf, (X, y) = make(seed)
        probas.append(clf.fit(X, y).predict_proba(X))
    np.testing.assert_array_equal(probas[0], probas[1])
    assert not np.allclose(probas[0], probas[2])


def test_fit_leaves_global_rngs_alone(data):
    X, y, _, _ = data
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    FNNClassifier(**FAST_FNN, dropout=0.2, random_state=0).fit(X, y)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()


# ----------------------------------------------------------------------------- inputs


def test_inputs_are_not_modified(data):
    X, y, X_val, y_val = data
    X_t = torch.from_numpy(X.copy())
    copies = [a.copy() for a in (X, y, X_val, y_val)]
    clf = FNNClassifier(**FAST_FNN, random_state=0).fit(X, y, eval_set=(X_val, y_val))
    clf.predict_proba(X_val)
    clf.fit(X_t, y)
    for a, b in zip((X, y, X_val, y_val), copies):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(X_t.numpy(), X)


def test_float32_and_float64_and_torch_inputs_agree(data):
    X, y, X_val, _ = data
    X32 = X.astype(np.float32)
    X64 = X32.astype(np.float64)  # same values, so the float32 computation is the same
    params = dict(FAST_FNN, n_iter=3, random_state=0)
    p32 = FNNClassifier(**params).fit(X32, y).predict_proba(X_val.astype(np.float32))
    X_val64 = X_val.astype(np.float32).astype(np.float64)
    p64 = FNNClassifier(**params).fit(X64, y).predict_proba(X_val64)
    clf_t = FNNClassifier(**params).fit(torch.from_numpy(X32), torch.from_numpy(y))
    p_t = clf_t.predict_proba(torch.from_numpy(X_val.astype(np.float32)))
    np.testing.assert_array_equal(p32, p64)
    np.testing.assert_array_equal(p32, p_t)
    assert clf_t.n_features_in_ == 20 and isinstance(clf_t.classes_, np.ndarray)


def test_string_labels_round_trip(data):
    X, y, X_val, y_val = data
    names = np.array(["T-shirt", "Trouser", "Bag"])
    clf = FNNClassifier(**FAST_FNN, random_state=0).fit(X, names[y], eval_set=(X_val, names[y_val]))
    assert list(clf.classes_) == ["Bag", "T-shirt", "Trouser"]
    assert set(clf.predict(X_val)) <= set(names)
    assert clf.score(X_val, names[y_val]) > 0.8
    assert clf.history_[-1]["val_accuracy"] > 0.8  # eval_set labels compared as strings too


def test_nan_input_is_rejected(data, fitted):
    X, y, _, _ = data
    X_nan = X.copy()
    X_nan[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        FNNClassifier(**FAST_FNN).fit(X_nan, y)
    with pytest.raises(ValueError, match="NaN"):
        fitted.predict(X_nan)


def test_wrong_feature_count_at_predict(fitted, data):
    _, _, X_val, y_val = data
    with pytest.raises(ValueError, match="X has 5 features.*expecting 20 features"):
        fitted.predict(X_val[:, :5])
    with pytest.raises(ValueError, match="X has 5 features"):
        FNNClassifier(**FAST_FNN).fit(data[0], data[1], eval_set=(X_val[:, :5], y_val))


@pytest.mark.parametrize("bad", [dict(learning_rate=0), dict(n_iter=0), dict(dropout=1.0),
                                 dict(validation_fraction=1.0)])
def test_bad_hyperparameters_fail_in_fit_not_init(bad, data):
    clf = FNNClassifier(**bad)  # __init__ only stores
    with pytest.raises(ValueError, match=next(iter(bad))):
        clf.fit(data[0], data[1])


# ----------------------------------------------------------------------------- training loop


def test_history_has_one_record_per_epoch(fitted):
    assert [r["epoch"] for r in fitted.history_] == list(range(1, 11))
    assert fitted.n_iter_ == 10
    for r in fitted.history_:
        assert set(r) == {"epoch", "train_loss", "val_accuracy", "val_macro_f1", "seconds"}
        assert 0.0 <= r["val_accuracy"] <= 1.0 and 0.0 <= r["val_macro_f1"] <= 1.0
    assert fitted.history_[-1]["train_loss"] < fitted.history_[0]["train_loss"]


def test_history_without_validation_has_no_val_scores(data):
    clf = FNNClassifier(**{**FAST_FNN, "n_iter": 2}).fit(data[0], data[1])
    assert set(clf.history_[0]) == {"epoch", "train_loss", "seconds"}
    assert clf.best_epoch_ is None


def test_callback_returning_true_stops_after_that_epoch(data):
    seen = []

    def callback(estimator, record):
        seen.append((estimator, record["epoch"], record["val_accuracy"]))
        return record["epoch"] == 2

    X, y, X_val, y_val = data
    clf = FNNClassifier(**FAST_FNN, callback=callback).fit(X, y, eval_set=(X_val, y_val))
    assert [epoch for _, epoch, _ in seen] == [1, 2]
    assert seen[0][0] is clf
    assert clf.n_iter_ == 2 and len(clf.history_) == 2


def test_callback_may_predict_mid_fit(data, capsys):
    X, y, X_val, _ = data
    probas = []
    clf = FNNClassifier(**{**FAST_FNN, "n_iter": 3}, verbose=1,
                        callback=lambda est, rec: probas.append(est.predict_proba(X_val)))
    clf.fit(X, y)
    assert clf.n_iter_ == 3 and len(probas) == 3  # a None return does not stop training
    np.testing.assert_array_equal(probas[-1], clf.predict_proba(X_val))
    assert capsys.readouterr().out.count("[FNNClassifier] epoch=") == 3


def test_early_stopping_restores_best_epoch():
    # Half the training labels are noise: validation accuracy climbs, then swings
    # down as the network fits the noise, so patience runs out past the best epoch.
    X, y = tabular(n=400)
    rng = np.random.RandomState(1)
    y_train = y[:300].copy()
    noisy = rng.rand(300) < 0.5
    y_train[noisy] = rng.randint(3, size=noisy.sum())
    params = dict(hidden_units=64, learning_rate=1e-2, batch_size=32, device="cpu", random_state=0)
    clf = FNNClassifier(**params, n_iter=200, early_stopping=True, n_iter_no_change=5)
    clf.fit(X[:300], y_train, eval_set=(X[300:], y[300:]))
    val = [r["val_accuracy"] for r in clf.history_]
    assert clf.n_iter_ < 200
    assert clf.best_epoch_ == int(np.argmax(val)) + 1  # first epoch reaching the maximum
    assert clf.n_iter_ == clf.best_epoch_ + 5
    assert clf.best_val_accuracy_ == max(val) > val[-1]
    assert clf.score(X[300:], y[300:]) == clf.best_val_accuracy_  # best weights are back
    # The same run without early stopping ends on the last epoch's (worse) weights.
    last = FNNClassifier(**params, n_iter=clf.n_iter_).fit(X[:300], y_train)
    assert last.score(X[300:], y[300:]) == val[-1]


def test_early_stopping_holds_out_a_stratified_split(data):
    X, y, _, _ = data
    clf = FNNClassifier(**FAST_FNN, early_stopping=True, validation_fraction=0.2,
                        random_state=0).fit(X, y)
    assert "val_accuracy" in clf.history_[0]
    assert clf.best_epoch_ is not None and clf.best_val_accuracy_ > 0.7


def test_diverging_loss_raises_floating_point_error(data):
    X, y, _, _ = data
    # Adam moves every weight by about learning_rate per step: with 1e30 the logits
    # overflow to inf after the first update and the loss becomes NaN.
    clf = FNNClassifier(hidden_units=64, learning_rate=1e30, n_iter=3, device="cpu", random_state=0)
    with pytest.raises(FloatingPointError, match="epoch 1; try a smaller learning_rate"):
        clf.fit(X, y)


def test_non_finite_loss_is_reported_with_its_epoch(data, monkeypatch):
    run_epoch = FNNClassifier._run_epoch
    losses = iter([None, float("inf")])  # epoch 1 trains for real, epoch 2 "diverges"

    def fake(self, *args):
        real = run_epoch(self, *args)
        fixed = next(losses)
        return real if fixed is None else fixed

    monkeypatch.setattr(FNNClassifier, "_run_epoch", fake)
    with pytest.raises(FloatingPointError, match="inf at epoch 2"):
        FNNClassifier(**FAST_FNN).fit(data[0], data[1])


# ----------------------------------------------------------------------------- persistence


def test_clone_and_pickle_reproduce_predictions(fitted, data):
    X, y, X_val, y_val = data
    twin = clone(fitted)
    assert not hasattr(twin, "module_") and twin.get_params() == fitted.get_params()
    twin.fit(X, y, eval_set=(X_val, y_val))
    np.testing.assert_array_equal(twin.predict_proba(X_val), fitted.predict_proba(X_val))
    loaded = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(loaded.predict_proba(X_val), fitted.predict_proba(X_val))
    assert loaded.history_ == fitted.history_


# ----------------------------------------------------------------------------- scikit-learn API


@parametrize_with_checks(
    [FNNClassifier(hidden_units=16, learning_rate=1e-2, batch_size=32, n_iter=20, device="cpu")]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ----------------------------------------------------------------------------- activation


def _forward_before_the_activation_option(self, x):
    """FNN.forward as it was before ``activation`` existed, verbatim."""
    h = self.dropout(torch.nn.functional.relu(self.hidden(x)))
    return self.out(h)


def test_default_fnn_is_unchanged_by_the_activation_option(data, monkeypatch):
    X, y, X_val, y_val = data
    params = dict(FAST_FNN, dropout=0.3, random_state=0)
    default = FNNClassifier(**params).fit(X, y, eval_set=(X_val, y_val)).predict_proba(X_val)
    explicit = FNNClassifier(**params, activation="relu").fit(X, y, eval_set=(X_val, y_val))
    np.testing.assert_array_equal(explicit.predict_proba(X_val), default)
    monkeypatch.setattr(FNN, "forward", _forward_before_the_activation_option)
    before = FNNClassifier(**params).fit(X, y, eval_set=(X_val, y_val)).predict_proba(X_val)
    np.testing.assert_array_equal(before, default)


def test_modules_pickled_before_the_option_are_relu_networks():
    net = FNN(n_features=4, hidden_units=3, n_classes=2)
    x = torch.randn(5, 4)
    expected = net(x)
    del net.activation  # as unpickled from before the option: only the class default is left
    assert net.activation == "relu"
    torch.testing.assert_close(net(x), expected, rtol=0, atol=0)


def test_sigmoid_activation_is_used(data):
    X, y, X_val, _ = data
    clf = FNNClassifier(**{**FAST_FNN, "n_iter": 2}, activation="sigmoid", random_state=0).fit(X, y)
    net = clf.module_
    with torch.no_grad():
        x = torch.tensor(X_val, dtype=torch.float32)
        by_hand = net.out(torch.sigmoid(net.hidden(x)))
    torch.testing.assert_close(torch.from_numpy(clf.decision_function(X_val)), by_hand)
    assert net.activation == "sigmoid"


def test_unknown_activation_fails_in_fit(data):
    clf = FNNClassifier(activation="tanh")
    with pytest.raises(ValueError, match="activation"):
        clf.fit(data[0], data[1])


# ----------------------------------------------------------------------------- RBM-initialised FNN

TINY_RBM = dict(n_components=8, n_iter=2, batch_size=20, device="cpu", random_state=0)
FAST_PRETRAINED = dict(learning_rate=3e-2, batch_size=32, n_iter=10, device="cpu")


@pytest.fixture(scope="module")
def rbm(data):
    return BernoulliRBM(**TINY_RBM).fit(data[0])


@pytest.fixture(scope="module")
def pretrained(data):
    X, y, X_val, y_val = data
    clf = PretrainedFNNClassifier(BernoulliRBM(**TINY_RBM), **FAST_PRETRAINED, random_state=0)
    return clf.fit(X, y, eval_set=(X_val, y_val))


def test_hidden_layer_starts_at_the_rbm_and_output_layer_as_the_plain_fnn(rbm):
    clf = PretrainedFNNClassifier(rbm)
    clf.rbm_ = rbm  # what fit sets before it builds the network
    torch.manual_seed(0)
    net = clf._build_module(20, 3)
    torch.manual_seed(0)
    twin = FNNClassifier(hidden_units=8, activation="sigmoid")._build_module(20, 3)
    np.testing.assert_array_equal(net.hidden.weight.detach().numpy(), rbm.components_.astype(np.float32))
    np.testing.assert_array_equal(net.hidden.bias.detach().numpy(), rbm.intercept_hidden_.astype(np.float32))
    for name in ("out.weight", "out.bias"):
        torch.testing.assert_close(net.state_dict()[name], twin.state_dict()[name], rtol=0, atol=0)
    assert net.activation == "sigmoid"


def test_training_with_a_tiny_step_stays_at_the_rbm(data, rbm):
    X, y, _, _ = data
    # Adam moves each weight by at most about learning_rate per step: 10 steps of 1e-9.
    clf = PretrainedFNNClassifier(rbm, learning_rate=1e-9, n_iter=1, device="cpu", random_state=0).fit(X, y)
    np.testing.assert_allclose(clf.module_.hidden.weight.detach().numpy(), rbm.components_, atol=1e-6)
    np.testing.assert_allclose(clf.module_.hidden.bias.detach().numpy(), rbm.intercept_hidden_, atol=1e-6)


def test_an_unfitted_rbm_is_cloned_and_fitted_on_x(pretrained, data, rbm):
    assert not hasattr(pretrained.rbm, "components_")  # the parameter is left unfitted
    assert pretrained.rbm_ is not pretrained.rbm
    # The clone's own random_state: the same RBM as one fitted alone on the same X.
    np.testing.assert_array_equal(pretrained.rbm_.components_, rbm.components_)
    assert pretrained.module_.hidden.out_features == 8


def test_pretrained_fnn_learns(pretrained, data):
    _, _, X_val, y_val = data
    assert pretrained.score(X_val, y_val) > 0.7  # chance is 1/3; 8 sigmoid units, 10 epochs
    assert pretrained.n_iter_ == 10 and "val_accuracy" in pretrained.history_[0]


def test_a_fitted_rbm_is_used_as_it_is(data, rbm):
    X, y, _, _ = data
    W = rbm.components_.copy()
    clf = PretrainedFNNClassifier(rbm, **{**FAST_PRETRAINED, "n_iter": 1}).fit(X, y)
    assert clf.rbm_ is rbm
    np.testing.assert_array_equal(rbm.components_, W)  # not refitted, not trained further


def test_a_frozen_rbm_stays_fitted_through_clone(data, rbm):
    X, y, _, _ = data
    frozen = FrozenEstimator(rbm)
    twin = clone(PretrainedFNNClassifier(frozen, **{**FAST_PRETRAINED, "n_iter": 1}))
    assert twin.rbm is frozen
    twin.fit(X, y)
    np.testing.assert_array_equal(twin.module_.hidden.weight.shape, rbm.components_.shape)


def test_rbm_with_other_visible_units_is_rejected(data):
    X, y, _, _ = data
    rbm5 = BernoulliRBM(**TINY_RBM).fit(X[:, :5])
    with pytest.raises(ValueError, match="rbm has 5 visible units but X has 20 features"):
        PretrainedFNNClassifier(rbm5, **FAST_PRETRAINED).fit(X, y)


def test_default_init_rbm_uses_the_classifiers_seed(data):
    X, y, _, _ = data
    clf = PretrainedFNNClassifier(**{**FAST_PRETRAINED, "n_iter": 1}, random_state=3).fit(X[:60], y[:60])
    assert isinstance(clf.rbm_, BernoulliRBM) and clf.rbm is None
    assert clf.rbm_.get_params() == BernoulliRBM(random_state=3).get_params()
    assert clf.module_.hidden.out_features == 256


def test_nested_rbm_parameters_clone_and_set(data):
    X, y, _, _ = data
    clf = PretrainedFNNClassifier(BernoulliRBM(**TINY_RBM), **{**FAST_PRETRAINED, "n_iter": 1})
    params = clf.get_params()
    assert params["rbm__n_components"] == 8 and "hidden_units" not in params
    twin = clone(clf).set_params(rbm__n_components=4, rbm__learning_rate=0.05)
    assert clf.rbm.n_components == 8  # the clone has its own RBM
    twin.fit(X, y)
    assert twin.rbm_.n_components == 4 and twin.module_.hidden.out_features == 4
    assert twin.rbm_.learning_rate == 0.05


def test_nested_rbm_parameters_are_validated(data):
    clf = PretrainedFNNClassifier(BernoulliRBM(n_components=0), **FAST_PRETRAINED)
    with pytest.raises(ValueError, match="n_components"):
        clf.fit(data[0], data[1])


def test_pretrained_clone_and_pickle_reproduce_predictions(pretrained, data):
    X, y, X_val, y_val = data
    twin = clone(pretrained).fit(X, y, eval_set=(X_val, y_val))  # RBM and network refitted
    np.testing.assert_array_equal(twin.predict_proba(X_val), pretrained.predict_proba(X_val))
    loaded = pickle.loads(pickle.dumps(pretrained))
    np.testing.assert_array_equal(loaded.predict_proba(X_val), pretrained.predict_proba(X_val))
    np.testing.assert_array_equal(loaded.rbm_.components_, pretrained.rbm_.components_)


def test_fit_rbm_is_the_one_hook_for_the_rbm(data, rbm):
    X, y, _, _ = data
    seen = []

    class FromCache(PretrainedFNNClassifier):
        def _fit_rbm(self, X):
            seen.append(X.shape)
            return rbm  # e.g. loaded from the RBM cache

    clf = FromCache(BernoulliRBM(n_components=99), **{**FAST_PRETRAINED, "n_iter": 1}).fit(X, y)
    assert seen == [X.shape] and clf.rbm_ is rbm and clf.module_.hidden.out_features == 8


class _AnyRangeRBM(BernoulliRBM):
    """BernoulliRBM without its [0, 1] input rule: the generic checks feed values up to 9 or so."""

    @staticmethod
    def _check_unit_range(values):
        pass


@parametrize_with_checks([PretrainedFNNClassifier(
    _AnyRangeRBM(n_components=16, n_iter=1, device="cpu", random_state=0),
    learning_rate=1e-2, batch_size=32, n_iter=20, device="cpu", random_state=0)])
def test_pretrained_sklearn_estimator_checks(estimator, check):
    check(estimator)
