"""The RBM cache: what its key holds, and the one fit of an RBM pipeline that the objective and the refit share."""

import numpy as np
import pytest
import torch

from rbmlib.models import make_model
from rbmlib.tuning.rbm_cache import (checkpointed_epochs, data_fingerprint, fit_feature_steps, fit_rbm, is_cached,
                                     rbm_key, rbm_step)


def _data():
    rng = np.random.RandomState(0)
    X = (rng.rand(120, 16) < 0.3).astype(np.float32)
    return X, rng.randint(0, 3, 120)


def test_the_key_changes_with_the_thread_count_and_nothing_else_of_the_machine():
    X, _ = _data()
    rbm = make_model("rbm-lr", random_state=0, rbm__device="cpu").named_steps["rbm"]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = rbm_key(rbm, data_fingerprint(X))
        torch.set_num_threads(2)
        two = rbm_key(rbm, data_fingerprint(X))
    finally:
        torch.set_num_threads(threads)
    assert one != two
    assert rbm_key(rbm.set_params(verbose=1), data_fingerprint(X)) == rbm_key(rbm, data_fingerprint(X))


def test_fit_feature_steps_fits_the_middle_steps_and_leaves_the_classifier(tmp_path):
    X, y = _data()
    params = dict(rbm__n_components=4, rbm__n_iter=1, rbm__device="cpu", clf__n_iter=1, clf__device="cpu")
    pipeline = make_model("rbm-fnn", random_state=0, **params)
    F, F_val = fit_feature_steps(pipeline, X, X_val=X[:10], cache_dir=tmp_path)
    rbm, scaler = pipeline.named_steps["rbm"], pipeline.named_steps["scale"]
    np.testing.assert_allclose(F, scaler.transform(rbm.transform(X)), rtol=1e-6)
    np.testing.assert_allclose(F.mean(axis=0), 0, atol=1e-5)  # the scaler was fitted on X's features
    np.testing.assert_allclose(F_val, F[:10], rtol=1e-6)
    assert not hasattr(pipeline.named_steps["clf"], "classes_")
    pipeline[-1].fit(F, y)
    assert pipeline.predict(X).shape == (len(X),)  # the pipeline predicts end to end
    # A second pipeline with the same RBM loads it from the cache: same features, no training.
    again = make_model("rbm-fnn", random_state=0, **params)
    F_again, none = fit_feature_steps(again, X, cache_dir=tmp_path)
    np.testing.assert_array_equal(F_again, F)
    assert none is None and again.named_steps["rbm"] is not rbm


def test_the_rbm_a_model_trains_first_is_found_and_known_cached_once_trained(tmp_path):
    X, _ = _data()
    models = ("rbm-lr", "rbm-fnn", "pre-fnn", "lr", "random-lr")
    assert [type(rbm_step(make_model(m))).__name__ for m in models] == ["BernoulliRBM"] * 3 + ["NoneType"] * 2
    rbm = rbm_step(make_model("pre-fnn", random_state=0, rbm__n_components=4, rbm__n_iter=1,
                              rbm__device="cpu"))
    key = rbm_key(rbm, data_fingerprint(X))
    assert not is_cached(key, tmp_path)
    fit_rbm(rbm, X, key=key, cache_dir=tmp_path)
    assert is_cached(key, tmp_path) and fit_rbm(rbm, X, key=key, cache_dir=tmp_path)[1]


class _Cut(Exception):
    """Stands for a session's end killing a fit."""


def test_a_fit_cut_short_goes_on_from_its_checkpoint_to_the_rbm_of_an_uncut_fit(tmp_path):
    X, _ = _data()
    rbm = lambda **kw: rbm_step(make_model("rbm-lr", random_state=0, rbm__n_components=6, rbm__n_iter=7,  # noqa: E731
                                           rbm__device="cpu", **kw))
    key = rbm_key(rbm(), data_fingerprint(X))
    uncut, _ = fit_rbm(rbm(), X, key=key, cache_dir=tmp_path / "uncut")

    def cut_at_4(est, record):
        if record["epoch"] == 4:
            raise _Cut
    with pytest.raises(_Cut):  # checkpoint_s=0: a checkpoint after every epoch
        fit_rbm(rbm(rbm__callback=cut_at_4), X, key=key, cache_dir=tmp_path, checkpoint_s=0)
    assert not is_cached(key, tmp_path) and checkpointed_epochs(key, tmp_path) == 4
    seen = []
    resumed, cached = fit_rbm(rbm(rbm__callback=lambda est, rec: seen.append(rec["epoch"])), X, key=key,
                              cache_dir=tmp_path, checkpoint_s=0)
    assert not cached and seen == [5, 6, 7]  # only the epochs left were trained
    np.testing.assert_array_equal(resumed.components_, uncut.components_)
    assert [r["epoch"] for r in resumed.history_] == list(range(1, 8))
    assert is_cached(key, tmp_path) and checkpointed_epochs(key, tmp_path) == 0  # the checkpoint is gone
    assert resumed.callback is not None and not list(tmp_path.glob(".*"))  # own callback back; no temporary file


def test_an_unreadable_checkpoint_is_named_and_the_fit_starts_over(tmp_path):
    X, _ = _data()
    rbm = rbm_step(make_model("rbm-lr", random_state=0, rbm__n_components=6, rbm__n_iter=3, rbm__device="cpu"))
    key = rbm_key(rbm, data_fingerprint(X))
    (tmp_path / f"{key}.partial.npz").write_bytes(b"half a file")
    assert checkpointed_epochs(key, tmp_path) == 0
    with pytest.warns(UserWarning, match="cannot be read.*training from the start"):
        fitted, _ = fit_rbm(rbm, X, key=key, cache_dir=tmp_path)
    assert len(fitted.history_) == 3 and not (tmp_path / f"{key}.partial.npz").exists()


def test_a_diverging_fit_leaves_no_checkpoint(tmp_path):
    X, _ = _data()
    rbm = rbm_step(make_model("rbm-lr", random_state=0, rbm__n_components=6, rbm__n_iter=3, rbm__device="cpu",
                              rbm__learning_rate=3e38))
    with pytest.raises(FloatingPointError):
        fit_rbm(rbm, X, cache_dir=tmp_path, checkpoint_s=0)
    assert not list(tmp_path.iterdir())
