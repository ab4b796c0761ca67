"""rbmlib.report.anatomy's tuned-RBM and Gibbs-drift helpers (notebook 02), on tiny data whose answers are known."""

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rbmlib import BernoulliRBM, data  # noqa: E402
from rbmlib.report import anatomy  # noqa: E402
from rbmlib.tuning import refit, study  # noqa: E402


class MeanClassifier:
    """Class 1 when an image's mean pixel exceeds 0.5, with probability equal to that mean."""

    classes_ = np.array([0, 1])

    def predict_proba(self, X):
        m = np.asarray(X).mean(axis=1)
        return np.column_stack([1 - m, m])


def _drift(checkpoints=(1, 10)):
    # Zero weights: P(v | h) = sigmoid(b_v) = 0.9 everywhere from the first step on, whatever the start.
    rbm = BernoulliRBM.from_params(np.zeros((2, 4)), np.zeros(2), np.full(4, np.log(9.0)))
    X = np.array([[0.0, 0, 0, 0], [0.2, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0.8]])  # means 0, .05, 1, .95
    y = np.array([0, 0, 1, 1])
    return anatomy.gibbs_drift(rbm, MeanClassifier(), X, y, checkpoints, random_state=0)


def test_gibbs_drift_classifies_the_image_then_every_checkpoint():
    drift = _drift()
    assert drift["step"].tolist() == [0, 1, 10]
    # Step 0: every image is classified as its own class; then every chain sits at 0.9 (class 1).
    np.testing.assert_allclose(drift["same_class"], [1.0, 0.5, 0.5])
    np.testing.assert_allclose(drift.loc[0, "start_probability"], np.mean([1.0, 0.95, 1.0, 0.95]))
    np.testing.assert_allclose(drift.loc[1:, "start_probability"], [np.mean([0.1, 0.1, 0.9, 0.9])] * 2, rtol=1e-6)
    np.testing.assert_allclose(drift.loc[1:, "confidence"], [0.9, 0.9], rtol=1e-6)
    assert drift.equals(_drift()), "the same seed must give the same drift"


def test_drift_sentence_and_figure():
    drift = _drift()
    text = anatomy.drift_sentence(drift, 0.873, 4)
    assert "87.3% on the validation split" in text and "Of the 4 chains, 100.0%" in text
    assert "50.0% are still assigned to that class after 10 Gibbs steps" in text
    assert "stayed above half" in text
    assert "fell below half of its starting value by step 1" in anatomy.drift_sentence(
        drift.assign(same_class=[1.0, 0.4, 0.2]), 0.9, 4)
    fig = anatomy.drift_figure(drift)
    assert isinstance(fig, Figure) and fig.axes[0].get_xscale() == "symlog"


def test_strongest_units_are_ordered_by_weight_norm():
    W = np.array([[0.1, 0.0], [3.0, 4.0], [0.0, -2.0], [1.0, 1.0]])  # norms 0.1, 5, 2, 1.41
    assert anatomy.strongest_units(W, 3).tolist() == [1, 2, 3]
    assert anatomy.strongest_units(W, 10).tolist() == [1, 2, 3, 0]


def test_tuned_rbm_is_the_final_refits_rbm_and_comes_from_the_cache(tmp_path, monkeypatch):
    rng = np.random.RandomState(0)
    X, y = (rng.rand(40, 784) < 0.3).astype(np.float32), np.arange(40) % 10
    trial = SimpleNamespace(number=3, user_attrs={}, params={"rbm__n_components": 6, "rbm__learning_rate": 0.05,
                                                            "rbm__batch_size": 10, "clf__C": 1.0})
    monkeypatch.setattr(study, "load_study", lambda model, preset, create=True: SimpleNamespace(best_trial=trial))
    monkeypatch.setattr(data, "load_split", lambda split, subset=None: (X, y))
    final = refit.fit_final("rbm-lr", refit.refit_params("rbm-lr", "smoke", trial), 0, X, y,
                            cache_dir=tmp_path / "refit")
    rbm, about = anatomy.tuned_rbm("smoke", "rbm-lr", seed=0, cache_dir=tmp_path / "refit")
    assert about == {"trial": 3, "n_images": 40, "seed": 0, "cached": True}
    np.testing.assert_array_equal(rbm.components_, final.named_steps["rbm"].components_)
    fresh, about = anatomy.tuned_rbm("smoke", "rbm-lr", seed=0, cache_dir=tmp_path / "empty")
    assert not about["cached"] and np.array_equal(fresh.components_, rbm.components_)
    assert len(rbm.history_) == 2, "the smoke preset fixes the RBM's epochs at 2"
    text = anatomy.describe_tuned_filters(rbm, about, anatomy.strongest_units(rbm.components_, 4), "smoke")
    assert "best trial (trial 3)" in text and "seed 0 on 40 training images" in text
    assert "the 4 of its 6 units with the largest weight norm" in text
    assert ("binarised afresh for every batch" in text) == rbm.sample_visible
    rbm.sample_visible = not rbm.sample_visible  # the original study's binarised batches, or not
    other = anatomy.describe_tuned_filters(rbm, about, anatomy.strongest_units(rbm.components_, 4), "smoke")
    assert ("binarised afresh for every batch" in other) == rbm.sample_visible


def test_drift_classifier_is_a_small_fixed_cnn():
    cnn = anatomy.drift_classifier(2, random_state=5)
    assert (cnn.n_iter, cnn.random_state, cnn.filters1, cnn.filters2) == (2, 5, 16, 32)
    with pytest.raises(Exception):
        cnn.predict_proba(np.zeros((1, 784)))  # unfitted
