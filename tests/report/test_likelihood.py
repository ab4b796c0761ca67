"""rbmlib.report.likelihood and the toy example's summary: AIS beside the exact value and the
monitors, on RBMs small enough to check by enumeration."""

import numpy as np
import pytest

from rbmlib.report import anatomy, likelihood, toy
from rbmlib.rbm import BernoulliRBM


@pytest.fixture(scope="module")
def binary_images():
    """Synthetic 'images': 3 prototypes of 36 pixels with 10% of the pixels flipped."""
    rng = np.random.default_rng(0)
    protos = rng.random((3, 36)) < 0.4
    rows = protos[rng.integers(0, 3, 400)] ^ (rng.random((400, 36)) < 0.1)
    return rows[:300].astype(float), rows[300:].astype(float)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("rbm-cache")


def _train(X, cache_dir):
    return likelihood.train_rbms(X, sizes=(4, 8), variants=anatomy.cd_variants(3), n_iter=15,
                                 batch_size=20, cache_dir=cache_dir)


@pytest.fixture(scope="module")
def trained(binary_images, cache_dir):
    return _train(binary_images[0], cache_dir)


def test_base_rate_log_likelihood_is_the_independent_pixel_model():
    X_train = np.array([[1, 0], [1, 1], [0, 0], [1, 0]], dtype=float)  # pixel means 0.75, 0.25
    X = np.array([[1, 0], [0, 1]], dtype=float)
    expected = np.mean([np.log(0.75) + np.log(0.75), np.log(0.25) + np.log(0.25)])
    assert likelihood.base_rate_log_likelihood(X_train, X) == pytest.approx(expected)


def test_one_rbm_per_sampler_and_size_and_the_cache_spares_retraining(binary_images, trained, cache_dir,
                                                                    monkeypatch):
    assert set(trained) == {(v, s) for v in ("CD-1", "CD-3", "PCD-1") for s in (4, 8)}
    assert {r.n_components for r in trained.values()} == {4, 8}
    assert trained[("CD-3", 4)].k == 3 and trained[("PCD-1", 8)].persistent
    fits = []
    monkeypatch.setattr(BernoulliRBM, "fit", lambda self, X, y=None: fits.append(self) or self)
    again = _train(binary_images[0], cache_dir)
    assert not fits, "a second run must load the trained RBMs from the cache"
    assert np.array_equal(again[("PCD-1", 8)].components_, trained[("PCD-1", 8)].components_)


def test_table_matches_exact_likelihood_and_ranks_better_than_the_base_rate(binary_images, trained):
    X, X_test = binary_images
    table = likelihood.likelihood_table(trained, X, X_test, n_runs=50, n_betas=2000, random_state=0)
    models = table.drop(index="base rate", level="variant")
    # Every model here is small enough to enumerate: AIS must agree with the exact value.
    assert np.allclose(models["test_log_likelihood"], models["test_log_likelihood_exact"], atol=0.1)
    assert (models["log_z_std"] < 0.1).all() and (models["effective_sample_size"] > 10).all()
    base = table.loc[("base rate", 0), "test_log_likelihood"]
    assert (models["test_log_likelihood"] > base).all(), "trained RBMs must beat independent pixels"
    assert models["reconstruction_error"].between(0, 1).all() and (models["pseudo_likelihood"] < 0).all()
    shown = likelihood.display_table(table)
    assert shown.loc[("base rate", 0), "test log-likelihood (AIS)"] == f"{base:.1f}"
    sentence = likelihood.likelihood_sentence(table)
    best = models["test_log_likelihood"].idxmax()
    assert f"best model is {best[0]} with {best[1]} hidden units" in sentence
    assert "differ by at most" in sentence
    setup = likelihood.describe_setup(table, len(X), len(X_test), n_iter=15, learning_rate=0.05, batch_size=20)
    assert "6 RBMs" in setup and "50 runs" in setup and "2,000 inverse temperatures" in setup


def test_estimates_resting_on_few_effective_runs_are_flagged(binary_images, trained):
    X, X_test = binary_images
    table = likelihood.likelihood_table(trained, X, X_test, n_runs=50, n_betas=2000, random_state=0)
    assert "dominated by a few runs" not in likelihood.likelihood_sentence(table)
    shaky = table.copy()
    shaky.loc[("CD-1", 8), "effective_sample_size"] = 2.0
    text = likelihood.likelihood_sentence(shaky)
    assert "The importance weights of CD-1 with 8 hidden units (2 of 50) are dominated by a few runs" in text
    assert likelihood.display_table(shaky).loc[("CD-1", 8), "AIS effective runs"] == 2.0


def test_sample_sentence_compares_the_share_of_pixels_on():
    samples = {("CD-1", 4): np.full((3, 36), 0.9), ("PCD-1", 4): np.full((3, 36), 0.3)}
    text = likelihood.sample_sentence(samples, np.full((5, 36), 0.25))
    assert "0.25 in the test images" in text and "CD-1 with 4 hidden units 0.90" in text


def test_the_same_seed_gives_the_same_table_and_samples(binary_images, trained):
    X, X_test = binary_images
    one = {k: trained[k] for k in [("CD-1", 4)]}
    a = likelihood.likelihood_table(one, X, X_test, n_runs=10, n_betas=200, random_state=3)
    b = likelihood.likelihood_table(one, X, X_test, n_runs=10, n_betas=200, random_state=3)
    cols = ["test_log_likelihood", "log_z_std", "reconstruction_error", "pseudo_likelihood"]
    assert a[cols].equals(b[cols])
    samples = likelihood.long_chain_samples(one, n_samples=3, n_steps=50)
    assert samples[("CD-1", 4)].shape == (3, 36)
    assert ((samples[("CD-1", 4)] >= 0) & (samples[("CD-1", 4)] <= 1)).all()


def test_toy_summary_reports_the_mass_moving_onto_the_observed_patterns():
    before, after = toy.train_toy_rbm(0, n_iter=0), toy.train_toy_rbm(0)
    text = toy.describe(before, after)
    assert "B (P = " in text and "AC (P = " in text
    mass_after = toy.visible_table(after).query("data_frequency > 0")["probability"].sum()
    assert f"after training they hold {mass_after:.2f}" in text and mass_after > 0.9


# ------------------------------------------------------------------ over training and across sizes

def test_an_rbm_fitted_for_fewer_epochs_is_the_same_rbm_seen_earlier(binary_images):
    X = binary_images[0]
    seen = {}
    BernoulliRBM(n_components=5, n_iter=4, batch_size=20, random_state=0, persistent=True,
                 callback=lambda rbm, record: seen.__setitem__(record["epoch"], rbm.components_.copy())).fit(X)
    early = BernoulliRBM(n_components=5, n_iter=2, batch_size=20, random_state=0, persistent=True).fit(X)
    np.testing.assert_array_equal(early.components_, seen[2])


def test_training_path_scores_earlier_epochs_like_the_final_rbms(binary_images, trained, cache_dir):
    X, X_test = binary_images
    kwargs = dict(sizes=(4, 8), variants=anatomy.cd_variants(3), batch_size=20, cache_dir=cache_dir)
    table = likelihood.likelihood_table(trained, X, X_test, n_runs=20, n_betas=500, random_state=0)
    path = likelihood.training_path(table, X, X_test, epochs=[1, 5, 15, 99], n_iter=15, n_runs=20, n_betas=500,
                                    **kwargs)
    assert path.index.names == ["variant", "hidden units", "epoch"]
    assert sorted(path.index.get_level_values("epoch").unique()) == [1, 5, 15]
    assert len(path) == 6 * 3 and "base rate" not in path.index.get_level_values("variant")
    last = path.xs(15, level="epoch")
    assert last["test_log_likelihood"].equals(table.drop(index="base rate", level="variant")["test_log_likelihood"])
    one = likelihood.train_rbms(X, n_iter=1, **kwargs)
    first = likelihood.likelihood_table(one, X, X_test, n_runs=20, n_betas=500, random_state=0)
    assert path.loc[("CD-1", 8, 1), "test_log_likelihood"] == first.loc[("CD-1", 8), "test_log_likelihood"]
    shown = likelihood.path_display(path)
    assert shown.loc[("CD-1", 8, 1), "test log-likelihood (AIS)"].startswith(
        f"{path.loc[('CD-1', 8, 1), 'test_log_likelihood']:.1f} ± ")


def _path(rows):
    """A training path from (variant, size, epoch, log-likelihood, reconstruction error, pseudo-likelihood)."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["variant", "hidden units", "epoch", "test_log_likelihood",
                                        "reconstruction_error", "pseudo_likelihood"]).assign(log_z_std=0.1)
    return frame.set_index(["variant", "hidden units", "epoch"])


def test_monitor_sentence_counts_agreement_and_names_a_fall_the_monitors_missed():
    path = _path([("CD-1", 20, 1, -300.0, 0.10, -250.0), ("CD-1", 20, 5, -320.0, 0.09, -240.0),
                  ("CD-1", 20, 20, -330.0, 0.08, -260.0),
                  ("PCD-1", 20, 1, -300.0, 0.10, -250.0), ("PCD-1", 20, 5, -280.0, 0.09, -240.0),
                  ("PCD-1", 20, 20, -280.1, 0.08, -230.0)])  # the last step is within the AIS noise
    text = likelihood.monitor_sentence(path)
    assert "(epochs 1, 5, 20)" in text and "beyond its uncertainty 3 times" in text
    # CD-1 fell twice while the error fell (disagree); PCD-1 rose while it fell (agree): 1 of 3.
    # Pseudo-likelihood: CD-1 1->5 rose (disagree), 5->20 fell (agree), PCD-1 rose (agree): 2 of 3.
    assert "reconstruction error moved the same way" in text and "1 of those times and the pseudo-likelihood 2" in text
    assert "CD-1 with 20 hidden units (epoch 1 to 5: -20.0 nats, while its reconstruction error and " \
           "pseudo-likelihood improved)" in text
    assert "CD-1 with 20 hidden units (epoch 5 to 20: -10.0 nats, while its reconstruction error improved)" in text
    flat = _path([("CD-1", 20, 1, -300.0, 0.1, -250.0), ("CD-1", 20, 5, -300.05, 0.09, -240.0)])
    assert "no RBM's held-out likelihood changed" in likelihood.monitor_sentence(flat)


def test_size_sentence_says_which_samplers_gain_from_more_units():
    import pandas as pd

    index = pd.MultiIndex.from_tuples([("CD-1", 20), ("PCD-1", 20), ("CD-1", 500), ("PCD-1", 500),
                                       ("base rate", 0)], names=["variant", "hidden units"])
    table = pd.DataFrame({"test_log_likelihood": [-350.0, -230.0, -170.0, -250.0, -380.0],
                          "log_z_std": [0.1, 0.1, 0.5, 0.2, np.nan]}, index=index)
    text = likelihood.size_sentence(table)
    assert text.startswith("Going from 20 to 500 hidden units, CD-1 gains 180.0 nats per image and PCD-1 loses 20.0")
    assert "So PCD-1 with 500 hidden units is a worse model of the test images than with 20" in text
    table.loc[("PCD-1", 500), "test_log_likelihood"] = -230.3
    assert "PCD-1 changes within the AIS uncertainty by 0.3" in likelihood.size_sentence(table)
