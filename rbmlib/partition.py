"""The partition function Z = sum_{v,h} exp(-E(v, h)) of a Bernoulli RBM.

Summing out one layer analytically leaves a sum over the 2^n states of the
other layer. With n up to ~20 that sum is exact and cheap, which is what the
tests and the toy example use; larger models need an estimate (AIS).
"""

from __future__ import annotations

import numpy as np
import torch

MAX_EXACT_UNITS = 20  # 2^20 ~ 1e6 states: about a second on a CPU
_STATES_PER_BLOCK = 1 << 14


def all_binary_states(n_units: int, *, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """Every vector of {0, 1}^n_units, shape (2**n_units, n_units), in counting order."""
    codes = torch.arange(2**n_units, device=device)
    bits = 2 ** torch.arange(n_units - 1, -1, -1, device=device)
    return ((codes[:, None] & bits) > 0).to(dtype)


def _log_unnormalised_marginal(states, W, b_states, b_other, states_are_hidden):
    """log sum_{other layer} exp(-E) for each row of ``states`` -> (n_states,).

    For hidden states h: h @ b_h + sum_i softplus((W^T h + b_v)_i); the visible
    case is the same with W transposed.
    """
    pre = states @ W + b_other if states_are_hidden else states @ W.T + b_other
    return states @ b_states + torch.nn.functional.softplus(pre).sum(1)


def exact_log_partition(W, b_h, b_v) -> float:
    """log Z by enumerating the smaller layer, in float64.

    Parameters
    ----------
    W : array-like of shape (n_hidden, n_visible)
    b_h : array-like of shape (n_hidden,)
    b_v : array-like of shape (n_visible,)

    Raises
    ------
    ValueError
        If both layers have more than ``MAX_EXACT_UNITS`` units.
    """
    W, b_h, b_v = (torch.as_tensor(np.asarray(a), dtype=torch.float64) for a in (W, b_h, b_v))
    n_hidden, n_visible = W.shape
    enumerate_hidden = n_hidden <= n_visible
    n_units = min(n_hidden, n_visible)
    if n_units > MAX_EXACT_UNITS:
        raise ValueError(
            f"Exact log Z enumerates 2^{n_units} states of the smaller layer; that is only "
            f"feasible up to {MAX_EXACT_UNITS} units. Use method='ais' for this model."
        )
    b_states, b_other = (b_h, b_v) if enumerate_hidden else (b_v, b_h)
    states = all_binary_states(n_units)
    blocks = [
        _log_unnormalised_marginal(block, W, b_states, b_other, enumerate_hidden)
        for block in torch.split(states, _STATES_PER_BLOCK)
    ]
    return float(torch.logsumexp(torch.cat(blocks), dim=0))


def log_partition(rbm, method="exact", **kwargs):
    """log Z of a fitted :class:`rbmlib.BernoulliRBM`.

    Parameters
    ----------
    rbm : BernoulliRBM
    method : {"exact"}
        "exact" enumerates the smaller layer (at most ``MAX_EXACT_UNITS`` units).
    """
    if method == "exact":
        if kwargs:
            raise TypeError(f"method='exact' takes no options; got {sorted(kwargs)}.")
        return exact_log_partition(rbm.components_, rbm.intercept_hidden_, rbm.intercept_visible_)
    raise ValueError(f"Unknown method={method!r} for log_partition; use 'exact'.")


def log_likelihood(rbm, X, method="exact", **kwargs):
    """Mean log P(v) over the rows of X, in nats: mean(-F(v)) - log Z."""
    return float(-np.mean(rbm.free_energy(X)) - log_partition(rbm, method=method, **kwargs))
