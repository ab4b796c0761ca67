"""BernoulliRBM as an estimator: determinism, input handling, errors, training behaviour."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from rbmlib import BernoulliRBM


@pytest.fixture(scope="module")
def bars():
    """Binary 4x4 'bars' images: a row or a column lit, plus a little pixel noise."""
    rng = np.random.RandomState(0)
    X, y = [], []
    for _ in range(400):
        img = np.zeros((4, 4))
        idx, horizontal = rng.randint(4), rng.rand() < 0.5
        if horizontal:
            img[idx] = 1
        else:
            img[:, idx] = 1
        flip = rng.rand(4, 4) < 0.03
        X.append(np.abs(img - flip).ravel())
        y.append(int(horizontal))
    return np.array(X), np.array(y)


def small(**params):
    base = dict(n_components=8, learning_rate=0.1, batch_size=20, n_iter=5, device="cpu", random_state=0)
    return BernoulliRBM(**{**base, **params})


def test_same_seed_same_parameters_and_other_seed_differs(bars):
    X, _ = bars
    a, b, c = small().fit(X), small().fit(X), small(random_state=1).fit(X)
    np.testing.assert_array_equal(a.components_, b.components_)
    np.testing.assert_array_equal(a.intercept_hidden_, b.intercept_hidden_)
    assert not np.allclose(a.components_, c.components_)


def test_attributes_and_shapes(bars):
    X, _ = bars
    rbm = small().fit(X)
    assert rbm.components_.shape == (8, 16)
    assert rbm.intercept_hidden_.shape == (8,)
    assert rbm.intercept_visible_.shape == (16,)
    assert rbm.h_samples_.shape == (20, 8)
    assert rbm.n_features_in_ == 16
    assert rbm.transform(X).shape == (400, 8)
    assert rbm.free_energy(X).shape == (400,)
    assert rbm.score_samples(X).shape == (400,)
    assert rbm.sample(5, n_steps=3).shape == (5, 16)
    assert list(rbm.get_feature_names_out())[:2] == ["bernoullirbm0", "bernoullirbm1"]


def test_input_is_never_modified(bars):
    X, _ = bars
    X32 = X.astype(np.float32)
    before = X32.copy()
    rbm = small().fit(X32)
    for method in (rbm.transform, rbm.reconstruct, rbm.score_samples, rbm.free_energy, rbm.gibbs):
        method(X32)
    rbm.partial_fit(X32)
    np.testing.assert_array_equal(X32, before)


def test_float32_and_float64_agree_and_dtype_is_preserved(bars):
    X, _ = bars
    r32, r64 = small().fit(X.astype(np.float32)), small().fit(X.astype(np.float64))
    assert r32.components_.dtype == np.float32 and r64.components_.dtype == np.float64
    assert r32.transform(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(r32.components_, r64.components_, atol=1e-4)


def test_accepts_torch_tensors(bars):
    X, _ = bars
    from_numpy = small().fit(X)
    from_torch = small().fit(torch.from_numpy(X))
    np.testing.assert_array_equal(from_numpy.components_, from_torch.components_)
    np.testing.assert_allclose(from_torch.transform(torch.from_numpy(X)), from_numpy.transform(X))


def test_two_partial_fits_equal_fit_with_two_epochs(bars):
    X, _ = bars
    fitted = small(n_iter=2).fit(X)
    partial = small()
    partial.partial_fit(X).partial_fit(X)
    np.testing.assert_array_equal(fitted.components_, partial.components_)
    assert len(partial.history_) == 2


@pytest.mark.parametrize("options", [dict(), dict(persistent=False, sample_visible=True),
                                     dict(momentum=0.5, weight_decay=1e-4, precision="bfloat16")])
def test_a_fit_stopped_between_epochs_and_resumed_from_its_state_ends_as_one_never_stopped(bars, options):
    """What the RBM cache's checkpoints rely on: chains, momentum and generator all carry over."""
    X, _ = bars
    whole = small(n_iter=6, **options).fit(X)
    states = []
    stopped = small(n_iter=6, **options, callback=lambda est, rec: rec["epoch"] == 2
                    and not states.append(est._training_state()))
    stopped.fit(X)
    assert len(stopped.history_) == 2
    resumed = small(n_iter=6, **options)._resume(X, states[0])
    for name in ("components_", "intercept_hidden_", "intercept_visible_", "h_samples_"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(whole, name))
    assert ([{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history_]
            == [{k: v for k, v in r.items() if k != "seconds"} for r in whole.history_])
    with pytest.raises(ValueError, match="another RBM or other data"):
        small(n_components=5)._resume(X, states[0])


def test_training_improves_the_model(bars):
    """Pseudo-likelihood rises and reconstruction error falls over training."""
    X, _ = bars
    rbm = small(n_components=16, n_iter=30, learning_rate=0.5, persistent=False).fit(X)
    first, last = rbm.history_[0], rbm.history_[-1]
    assert last["reconstruction_error"] < 0.5 * first["reconstruction_error"]
    assert last["pseudo_likelihood"] > first["pseudo_likelihood"]
    assert [r["epoch"] for r in rbm.history_] == list(range(1, 31))


@pytest.mark.parametrize("options", [dict(k=3), dict(persistent=False), dict(momentum=0.5, weight_decay=1e-4)])
def test_variants_learn_features_that_separate_classes(bars, options):
    X, y = bars
    pipe = Pipeline([("rbm", small(n_components=16, n_iter=30, learning_rate=0.5, **options)), ("clf", LogisticRegression())])
    assert pipe.fit(X[:300], y[:300]).score(X[300:], y[300:]) > 0.9


def test_callback_sees_every_epoch_and_can_stop(bars):
    X, _ = bars
    seen = []
    rbm = small(n_iter=10, callback=lambda est, rec: seen.append(rec["epoch"]) or rec["epoch"] == 3).fit(X)
    assert seen == [1, 2, 3]
    assert len(rbm.history_) == 3


def test_divergence_raises_floating_point_error(bars):
    X, _ = bars
    with pytest.raises(FloatingPointError, match="learning_rate"):
        # The gradient is bounded, so only a step near float32's limit overflows to inf.
        small(learning_rate=3e38, n_iter=3).fit(X.astype(np.float32))


def test_clone_and_pickle(bars):
    X, _ = bars
    rbm = small().fit(X)
    assert clone(rbm).get_params() == rbm.get_params()
    restored = pickle.loads(pickle.dumps(rbm))
    np.testing.assert_array_equal(restored.transform(X), rbm.transform(X))
    # The generator state travels too: the next Gibbs step is the same.
    np.testing.assert_array_equal(restored.gibbs(X[:50]), rbm.gibbs(X[:50]))


def test_manual_edits_to_components_are_seen(bars):
    X, _ = bars
    rbm = small().fit(X)
    rbm.components_ = np.zeros_like(rbm.components_)
    rbm.intercept_hidden_ = np.zeros_like(rbm.intercept_hidden_)
    np.testing.assert_allclose(rbm.transform(X), 0.5)


def test_score_samples_is_repeatable(bars):
    X, _ = bars
    rbm = small().fit(X)
    np.testing.assert_array_equal(rbm.score_samples(X), rbm.score_samples(X))


@pytest.mark.parametrize(
    "X, message",
    [
        (np.full((5, 16), np.nan), "NaN"),
        (np.full((5, 16), 2.0), "Values above 1"),
        (np.full((5, 16), -0.5), "Negative values"),
        (np.zeros((5, 4, 4)), "dim 3"),
        (np.zeros((0, 16)), "0 sample"),
    ],
)
def test_bad_training_input_is_rejected_clearly(X, message):
    with pytest.raises(ValueError, match=message):
        small().fit(X)


def test_wrong_feature_count_after_fit(bars):
    X, _ = bars
    rbm = small().fit(X)
    with pytest.raises(ValueError, match="16 features"):
        rbm.transform(np.zeros((3, 15)))


def test_unfitted_model_says_so():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        small().transform(np.zeros((2, 16)))


@pytest.mark.parametrize(
    "param, value",
    [
        ("n_components", 0),
        ("learning_rate", -1.0),
        ("learning_rate", float("nan")),
        ("batch_size", 2.5),
        ("k", 0),
        ("momentum", 1.0),
        ("weight_decay", -0.1),
        ("persistent", "yes"),
        ("device", "tpu"),
    ],
)
def test_bad_parameters_are_named_in_the_error(bars, param, value):
    X, _ = bars
    with pytest.raises(ValueError, match=param if param != "device" else "device"):
        small(**{param: value}).fit(X)


def test_unknown_parameter_is_rejected():
    with pytest.raises(ValueError, match="Invalid parameter"):
        small().set_params(n_hidden=3)


def test_device_auto_resolves_to_an_available_device(bars):
    X, _ = bars
    rbm = small(device="auto").fit(X)
    assert rbm.transform(X).shape == (400, 8)


# ----------------------------------------------------------------------------- drop-in inputs


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "lil", "dok", "bsr"])
def test_sparse_input_gives_what_dense_input_gives(bars, fmt):
    import scipy.sparse as sp

    X, _ = bars
    X_sparse = sp.csr_matrix(X).asformat(fmt)
    dense, sparse = small().fit(X), small().fit(X_sparse)
    np.testing.assert_allclose(sparse.components_, dense.components_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(sparse.transform(X_sparse), dense.transform(X), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(sparse.score_samples(X_sparse), dense.score_samples(X), rtol=1e-5)
    assert sparse.gibbs(sp.csr_matrix(X[:5]).asformat(fmt)).shape == (5, X.shape[1])


def test_sparse_input_keeps_the_unit_range_rule():
    import scipy.sparse as sp

    with pytest.raises(ValueError, match="Values above 1"):
        small().fit(sp.csr_matrix(np.full((5, 16), 2.0)))


def test_a_dataframe_fits_and_transforms_without_warnings(bars):
    import warnings

    import pandas as pd

    X, _ = bars
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(X.shape[1])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn's own BernoulliRBM warns 0 times here
        rbm = small().fit(frame)
        rbm.transform(frame)
        rbm.score_samples(frame)
    assert list(rbm.feature_names_in_) == list(frame.columns)


def test_seeded_samples_do_not_depend_on_the_models_history(bars):
    X, _ = bars
    trained = small().fit(X)
    loaded = BernoulliRBM.from_params(trained.components_, trained.intercept_hidden_,
                                      trained.intercept_visible_, device="cpu", random_state=0)
    np.testing.assert_array_equal(trained.sample(3, 20, random_state=5), loaded.sample(3, 20, random_state=5))
    assert not np.array_equal(trained.sample(3, 20, random_state=5), trained.sample(3, 20, random_state=6))
