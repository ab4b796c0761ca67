"""The RBM's math against brute-force enumeration on tiny models."""

import numpy as np
import pytest
import torch

import rbm_reference as ref
from rbmlib import BernoulliRBM
from rbmlib._cd import ContrastiveDivergence
from rbmlib.partition import MAX_EXACT_UNITS


def tiny_rbm(H, V, seed=0, **params):
    W, b_h, b_v = ref.random_params(H, V, seed)
    return BernoulliRBM.from_params(W, b_h, b_v, device="cpu", random_state=seed, **params), (W, b_h, b_v)


@pytest.mark.parametrize("H,V", [(3, 5), (5, 3), (4, 4)])
def test_free_energy_matches_enumeration(H, V):
    rbm, params = tiny_rbm(H, V)
    v = ref.states(V)
    np.testing.assert_allclose(rbm.free_energy(v), ref.free_energy(v, *params), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("H,V", [(3, 6), (6, 3), (5, 5), (1, 7)])
def test_exact_log_partition_matches_enumeration(H, V):
    """Both branches: enumerating the hidden layer (H <= V) and the visible one (V < H)."""
    rbm, params = tiny_rbm(H, V, seed=H + V)
    assert rbm.log_partition() == pytest.approx(ref.log_z(*params), rel=1e-12, abs=1e-10)


def test_probabilities_sum_to_one():
    rbm, params = tiny_rbm(3, 6)
    log_p = -rbm.free_energy(ref.states(6)) - rbm.log_partition()
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-12)


def test_exact_log_partition_refuses_large_models():
    n = MAX_EXACT_UNITS + 1
    rbm = BernoulliRBM.from_params(np.zeros((n, n)), np.zeros(n), np.zeros(n))
    with pytest.raises(ValueError, match="ais"):
        rbm.log_partition()


def test_exact_log_partition_of_784_visible_and_few_hidden():
    """The realistic shape: enumerate 12 hidden units of an RBM on 28x28 images."""
    W, b_h, b_v = ref.random_params(12, 784, seed=3, scale=0.05)
    rbm = BernoulliRBM.from_params(W, b_h, b_v)
    # Closed form sum over v for each h: log Z = logsumexp_h [h.b_h + sum_i softplus(b_v + W^T h)].
    h = ref.states(12)
    expected = np.logaddexp.reduce(h @ b_h + np.logaddexp(0, h @ W + b_v).sum(1))
    assert rbm.log_partition() == pytest.approx(expected, rel=1e-12)


def test_transform_and_reconstruct_are_the_conditionals():
    rbm, (W, b_h, b_v) = tiny_rbm(4, 6)
    v = ref.states(6)[::7]
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    np.testing.assert_allclose(rbm.transform(v), sig(v @ W.T + b_h), rtol=1e-12)
    np.testing.assert_allclose(rbm.reconstruct(v), sig(sig(v @ W.T + b_h) @ W + b_v), rtol=1e-12)


@pytest.mark.parametrize("k", [1, 25])
def test_cd_gradient_estimate(k):
    """CD-k's data term is exact; with large k its model term converges to the exact one.

    For k=1 the model term is biased, so only the data part is checked against
    a CD-1-specific expectation; for k=25 the whole gradient must match the exact
    log-likelihood gradient within Monte Carlo error.
    """
    rbm, params = tiny_rbm(3, 5, seed=1, k=k, persistent=False)
    data = ref.states(5)[[1, 6, 11, 19, 30]]
    batch = np.tile(data, (4000, 1))  # 20,000 chains in one update
    # One update of the real training step with learning_rate=1 moves the
    # parameters by exactly the gradient estimate.
    rbm._bind()
    before = {name: t.clone() for name, t in rbm._params.items()}
    trainer = ContrastiveDivergence(rbm._params, learning_rate=1.0, k=k, persistent=False,
                                    momentum=0.0, weight_decay=0.0, generator=rbm._rng)
    trainer.update(torch.from_numpy(batch), torch.arange(len(batch)))
    grad = {name: rbm._params[name] - before[name] for name in ("W", "b_h", "b_v")}
    exact = ref.loglik_gradient(data, *params)
    if k == 1:
        # CD-1 model term: E over h~P(h|v), v'~P(v|h) of P(h|v') v'^T, computed by enumeration.
        sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
        W, b_h, b_v = params
        hs = ref.states(3)
        vs = ref.states(5)
        ph = sig(data @ W.T + b_h)  # (n, H)
        p_h = np.prod(np.where(hs[None] == 1, ph[:, None], 1 - ph[:, None]), axis=2)  # (n, 2^H)
        pv = sig(hs @ W + b_v)  # (2^H, V)
        p_v_given_h = np.prod(np.where(vs[None] == 1, pv[:, None], 1 - pv[:, None]), axis=2)  # (2^H, 2^V)
        p_v1 = (p_h @ p_v_given_h).mean(0)  # (2^V,) distribution of the negative sample
        model_W = (sig(vs @ W.T + b_h) * p_v1[:, None]).T @ vs
        expected_W = ph.T @ data / len(data) - model_W
    else:
        expected_W = exact[0]
    np.testing.assert_allclose(grad["W"].numpy(), expected_W, atol=0.02)
    if k > 1:
        np.testing.assert_allclose(grad["b_h"].numpy(), exact[1], atol=0.02)
        np.testing.assert_allclose(grad["b_v"].numpy(), exact[2], atol=0.02)


def test_gibbs_step_mean_matches_enumeration():
    rbm, (W, b_h, b_v) = tiny_rbm(3, 4, seed=2)
    v0 = np.array([[1.0, 0.0, 1.0, 1.0]])
    samples = rbm.gibbs(np.repeat(v0, 40000, axis=0))
    assert set(np.unique(samples)) <= {0.0, 1.0}
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    hs = ref.states(3)
    ph = sig(v0 @ W.T + b_h)[0]
    p_h = np.prod(np.where(hs == 1, ph, 1 - ph), axis=1)  # (2^H,)
    expected = p_h @ sig(hs @ W + b_v)  # E[v'] = sum_h P(h|v0) P(v=1|h)
    np.testing.assert_allclose(samples.mean(0), expected, atol=0.012)


def test_long_chains_sample_the_model_distribution():
    rbm, params = tiny_rbm(3, 4, seed=4)
    samples = rbm.sample(20000, n_steps=60)
    codes = samples @ (2 ** np.arange(3, -1, -1))
    empirical = np.bincount(codes.astype(int), minlength=16) / len(codes)
    total_variation = 0.5 * np.abs(empirical - ref.visible_marginal(*params)).sum()
    assert total_variation < 0.03


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.1), (0.5, 0.1)])
def test_update_rule_with_momentum_and_weight_decay(momentum, weight_decay):
    """Two updates follow v <- m v + lr (g - wd W); W <- W + v, with g from the same draws."""
    rbm, _ = tiny_rbm(3, 5, seed=2, persistent=False)
    data = torch.from_numpy(ref.states(5)[[1, 6, 11]])
    rows = torch.arange(3)

    def run(momentum, weight_decay, learning_rate):
        rbm._bind()
        start = {name: t.clone() for name, t in rbm._params.items()}
        rbm._rng.manual_seed(7)
        trainer = ContrastiveDivergence(rbm._params, learning_rate=learning_rate, k=1, persistent=False,
                                        momentum=momentum, weight_decay=weight_decay, generator=rbm._rng)
        trajectory = []
        for _ in range(2):
            trainer.update(data, rows)
            trajectory.append(rbm._params["W"].clone())
        for name, t in start.items():  # restore for the next run
            rbm._params[name].copy_(t)
        return start["W"], trajectory

    W0, (W1, W2) = run(momentum, weight_decay, learning_rate=0.1)
    # Reconstruct the plain gradients from a run without momentum or decay, same draws.
    _, (G1_step, _) = run(0.0, 0.0, learning_rate=0.1)
    g1 = (G1_step - W0) / 0.1
    v1 = 0.1 * (g1 - weight_decay * W0)
    torch.testing.assert_close(W1, W0 + v1)
    assert not torch.allclose(W2, W1)
