"""Brute-force RBM quantities by enumerating every joint state: the ground truth for tests."""

import itertools

import numpy as np
from scipy.special import logsumexp


def states(n):
    """All of {0, 1}^n, shape (2**n, n)."""
    return np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.float64)


def energy(v, h, W, b_h, b_v):
    """E(v, h) for every pair of rows: v (a, V), h (b, H) -> (a, b)."""
    return -(v @ b_v)[:, None] - (h @ b_h)[None, :] - v @ W.T @ h.T


def log_z(W, b_h, b_v):
    H, V = W.shape
    return logsumexp(-energy(states(V), states(H), W, b_h, b_v))


def free_energy(v, W, b_h, b_v):
    return -logsumexp(-energy(v, states(W.shape[0]), W, b_h, b_v), axis=1)


def visible_marginal(W, b_h, b_v):
    """P(v) for every visible state, in the order of ``states(V)``."""
    v = states(W.shape[1])
    return np.exp(-free_energy(v, W, b_h, b_v) - log_z(W, b_h, b_v))


def loglik_gradient(data, W, b_h, b_v):
    """Exact gradient of the mean log-likelihood of ``data`` w.r.t. (W, b_h, b_v)."""
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    ph_data = sig(data @ W.T + b_h)  # (n, H)
    v = states(W.shape[1])
    p_v = visible_marginal(W, b_h, b_v)  # (2^V,)
    ph_model = sig(v @ W.T + b_h)  # (2^V, H)
    dW = ph_data.T @ data / len(data) - (ph_model * p_v[:, None]).T @ v
    db_h = ph_data.mean(0) - p_v @ ph_model
    db_v = data.mean(0) - p_v @ v
    return dW, db_h, db_v


def random_params(H, V, seed, scale=1.0):
    rng = np.random.RandomState(seed)
    return rng.normal(0, scale, (H, V)), rng.normal(0, scale, H), rng.normal(0, scale, V)
