"""Annealed importance sampling of log Z against exact enumeration, and its options.

Tolerance. AIS gives an unbiased estimate of Z, so log Z is off by its
standard error (and a small downward bias of order std^2 / 2). We accept
|AIS - exact| < 3 * log_z_std + 0.1 nats: three reported standard errors,
which a correct estimator exceeds rarely, plus 0.1 nats because the standard
error is itself estimated from the weights and is optimistic when the
effective sample size is small. A wrong base partition function (e.g. a
missing H log 2), a wrong intermediate distribution or an unstable weight
update would be off by far more. Every run is seeded, so the tests are
deterministic; the seeds were not chosen to pass.
"""

import dataclasses

import numpy as np
import pytest
import torch

import rbm_reference as ref
from rbmlib import BernoulliRBM
from rbmlib.ais import AISResult, ais_log_partition, base_rate_biases, default_betas
from rbmlib.partition import log_likelihood, log_partition


def bars_images(n, seed, side=28, width=4, p_on=0.25, noise=0.02):
    """Binary side x side images of horizontal or vertical bars, shape (n, side * side).

    Each image picks an orientation, lights each of its side / width bars with
    probability ``p_on`` and flips a few pixels: a many-mode distribution on
    784 pixels, standing in for real images so the tests need no data files.
    """
    rng = np.random.RandomState(seed)
    lines = np.repeat(rng.rand(n, side // width) < p_on, width, axis=1).astype(float)  # (n, side)
    horizontal = (rng.rand(n) < 0.5)[:, None, None]
    img = np.where(horizontal, lines[:, :, None], lines[:, None, :]) * np.ones((1, side, side))
    return np.abs(img - (rng.rand(n, side, side) < noise)).reshape(n, -1)


def random_rbm(H, V, seed, scale, dtype=np.float64):
    W, b_h, b_v = ref.random_params(H, V, seed, scale)
    return BernoulliRBM.from_params(W.astype(dtype), b_h, b_v, device="cpu")


def assert_close_to_exact(result, exact):
    assert abs(result.log_z - exact) < 3 * result.log_z_std + 0.1, (result, exact)


@pytest.fixture(scope="module")
def bars():
    return bars_images(1000, seed=0)


@pytest.fixture(scope="module")
def bars_rbm(bars):
    """784 visible x 15 hidden, CD-1 on the bars: weights up to ~1.5, a multimodal model."""
    rbm = BernoulliRBM(n_components=15, learning_rate=0.05, batch_size=20, n_iter=10, device="cpu",
                       random_state=0)
    return rbm.fit(bars)


@pytest.fixture(scope="module")
def bars_ais(bars_rbm, bars):
    return log_partition(bars_rbm, "ais", n_betas=2000, data=bars, random_state=0)


def test_ais_matches_exact_on_a_trained_784x15_rbm(bars_rbm, bars_ais):
    assert isinstance(bars_ais, AISResult)
    assert_close_to_exact(bars_ais, bars_rbm.log_partition())


def test_ais_matches_exact_on_a_random_784x12_rbm_in_float32():
    """Random weights of trained-model scale (W v + b_h has a spread of ~3); sampled in float32."""
    rbm = random_rbm(12, 784, seed=3, scale=0.1, dtype=np.float32)
    assert rbm.components_.dtype == np.float32
    result = rbm.log_partition("ais", n_betas=1000, random_state=0)
    assert_close_to_exact(result, rbm.log_partition())
    assert result.log_z_std < 0.05  # an easy, nearly unimodal model: AIS is sharp here


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_ais_matches_exact_when_the_visible_layer_is_small(scale):
    """10 visible x 25 hidden: exact log Z enumerates the visible side; the base model is uniform."""
    rbm = random_rbm(25, 10, seed=1, scale=scale)
    result = rbm.log_partition("ais", n_betas=3000, random_state=0)
    assert_close_to_exact(result, rbm.log_partition())


def test_more_temperatures_give_a_tighter_and_more_accurate_estimate():
    """100 vs 10,000 temperatures on a rugged small model, over three seeds each."""
    rbm = random_rbm(25, 10, seed=1, scale=2.0)
    exact = rbm.log_partition()
    coarse = [rbm.log_partition("ais", n_betas=100, random_state=s) for s in range(3)]
    fine = [rbm.log_partition("ais", n_betas=10_000, random_state=s) for s in range(3)]
    error = lambda rs: np.mean([abs(r.log_z - exact) for r in rs])  # noqa: E731
    std = lambda rs: np.mean([r.log_z_std for r in rs])  # noqa: E731
    assert std(fine) < std(coarse) / 3
    assert error(fine) < error(coarse) / 3
    assert all(r.effective_sample_size > 50 for r in fine)


def test_log_likelihood_with_ais_matches_exact(bars_rbm, bars, bars_ais):
    exact = log_likelihood(bars_rbm, bars)
    reused = log_likelihood(bars_rbm, bars, log_z=bars_ais)
    assert reused == pytest.approx(-np.mean(bars_rbm.free_energy(bars)) - bars_ais.log_z, rel=1e-12)
    assert abs(reused - exact) < 3 * bars_ais.log_z_std + 0.1
    assert exact == pytest.approx(bars_rbm.log_likelihood(bars), rel=1e-12)


def test_log_likelihood_runs_ais_itself_through_the_estimator():
    rbm = random_rbm(25, 10, seed=2, scale=1.0)
    X = ref.states(10)[::5]
    via_rbm = rbm.log_likelihood(X, method="ais", n_betas=500, random_state=0)
    result = rbm.log_partition("ais", n_betas=500, random_state=0)
    assert via_rbm == pytest.approx(log_likelihood(rbm, X, log_z=result), rel=1e-12)
    assert abs(via_rbm - rbm.log_likelihood(X)) < 3 * result.log_z_std + 0.1


def test_result_object():
    rbm = random_rbm(6, 8, seed=0, scale=1.0)
    result = rbm.log_partition("ais", n_runs=50, n_betas=300, random_state=0)
    assert float(result) == result.log_z
    assert result.log_z_low < result.log_z < result.log_z_high
    # The bounds are mean weight -/+ 3 standard errors, on the log scale.
    assert result.log_z_high == pytest.approx(result.log_z + np.log1p(3 * result.log_z_std))
    assert (result.n_runs, result.n_betas) == (50, 300)
    assert result.log_weights.shape == (50,) and result.seconds > 0
    lw = result.log_weights
    # Kish's effective sample size of the importance weights, at most n_runs.
    w = np.exp(lw - lw.max())
    assert result.effective_sample_size == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-9)
    assert result.effective_sample_size <= 50
    assert result.log_z == pytest.approx(result.log_z_base + np.log(np.mean(np.exp(lw))), rel=1e-12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.log_z = 0.0


def test_same_seed_same_estimate_other_seed_differs():
    rbm = random_rbm(6, 30, seed=0, scale=0.5)
    a, b, c = (rbm.log_partition("ais", n_betas=200, random_state=s) for s in (7, 7, 8))
    np.testing.assert_array_equal(a.log_weights, b.log_weights)
    assert a.log_z == b.log_z
    assert not np.allclose(a.log_weights, c.log_weights)


def test_default_schedule_is_salakhutdinov_and_murrays():
    betas = default_betas()
    assert len(betas) == 14_501 and betas[0] == 0 and betas[-1] == 1
    steps = np.diff(betas)
    np.testing.assert_allclose(steps[:500], 1e-3, rtol=1e-6)
    np.testing.assert_allclose(steps[500:4500], 1e-4, rtol=1e-6)
    np.testing.assert_allclose(steps[4500:], 1e-5, rtol=1e-5)
    small = default_betas(100)
    assert len(small) == 100 and small[0] == 0 and small[-1] == 1 and np.all(np.diff(small) > 0)


def test_explicit_betas_equal_the_same_default_schedule():
    rbm = random_rbm(5, 12, seed=0, scale=1.0)
    a = rbm.log_partition("ais", n_betas=300, random_state=0)
    b = rbm.log_partition("ais", betas=default_betas(300), random_state=0)
    np.testing.assert_array_equal(a.log_weights, b.log_weights)


def test_base_rate_from_data_or_given():
    X = np.array([[1, 0, 1], [1, 0, 0], [1, 0, 1], [1, 0, 0]], dtype=float)
    b = base_rate_biases(X)
    # Pixels always on / always off are clipped to 1 -/+ 1e-3; the third is at 1/2.
    np.testing.assert_allclose(b, [np.log(999), -np.log(999), 0.0], rtol=1e-12, atol=1e-12)
    rbm = random_rbm(4, 3, seed=0, scale=1.0)
    from_data = rbm.log_partition("ais", data=X, n_betas=100, random_state=0)
    given = rbm.log_partition("ais", base_rate=b, n_betas=100, random_state=0)
    np.testing.assert_array_equal(from_data.log_weights, given.log_weights)
    # log Z_A: independent visible units plus 2 states per (unconnected) hidden unit.
    assert from_data.log_z_base == pytest.approx(np.logaddexp(0, b).sum() + 4 * np.log(2))


def test_errors_name_the_problem():
    rbm = random_rbm(4, 6, seed=0, scale=1.0)
    with pytest.raises(ValueError, match="'exact' or 'ais'"):
        rbm.log_partition("annealed")
    with pytest.raises(TypeError, match="unknown options \\['n_temps'\\]"):
        rbm.log_partition("ais", n_temps=100)
    with pytest.raises(TypeError, match="takes no options"):
        rbm.log_partition("exact", n_runs=10)
    with pytest.raises(TypeError, match="log_z was given"):
        log_likelihood(rbm, ref.states(6), log_z=1.0, n_runs=10)
    bad = [
        (dict(n_runs=1), "n_runs"), (dict(n_runs=2.5), "n_runs"), (dict(n_runs=True), "n_runs"),
        (dict(n_betas=1), "n_betas"),
        (dict(betas=[0.1, 0.5, 1.0]), "from exactly 0"), (dict(betas=[0, 0.6, 0.5, 1]), "increasing"),
        (dict(betas=[0, 0.5, 0.9]), "to exactly 1"),
        (dict(betas=[0, 0.5, 1], n_betas=3), "not both"),
        (dict(base_rate=np.zeros(5)), "6 finite visible biases"),
        (dict(base_rate=np.full(6, np.inf)), "finite"),
        (dict(data=np.zeros((3, 6)), base_rate=np.zeros(6)), "not both"),
        (dict(data=np.full((3, 6), 2.0)), "\\[0, 1\\]"),
        (dict(data=np.zeros((3, 5))), "6 finite visible biases"),
    ]
    for options, message in bad:
        with pytest.raises(ValueError, match=message):
            rbm.log_partition("ais", **options)


def test_exact_on_a_large_model_points_to_ais():
    rbm = random_rbm(21, 30, seed=0, scale=0.1)
    with pytest.raises(ValueError, match="method='ais'"):
        rbm.log_partition("exact")
    assert np.isfinite(float(rbm.log_partition("ais", n_betas=50, n_runs=10, random_state=0)))


def test_ais_log_partition_takes_plain_arrays():
    W, b_h, b_v = ref.random_params(3, 5, seed=0)
    result = ais_log_partition(W, b_h, b_v, n_betas=2000, random_state=0)
    assert_close_to_exact(result, ref.log_z(W, b_h, b_v))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_ais_on_the_gpu_matches_exact():
    W, b_h, b_v = ref.random_params(12, 784, seed=3, scale=0.1)
    rbm = BernoulliRBM.from_params(W, b_h, b_v, device="cuda")
    result = rbm.log_partition("ais", n_betas=1000, random_state=0)
    assert_close_to_exact(result, rbm.log_partition())
