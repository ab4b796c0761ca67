"""The partition function Z = sum_{v,h} exp(-E(v, h)) of a Bernoulli RBM.

Summing out one layer analytically leaves a sum over the 2^n states of the
other layer. With n up to ~20 that sum is exact and cheap, which is what the
tests and the toy example use; larger models need an estimate, by annealed
importance sampling (``method="ais"``, in :mod:`rbmlib.ais`).
"""

from __future__ import annotations

import numpy as np
import torch

from rbmlib import ais

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


def log_partition(rbm, method="exact", **options):
    """log Z of a fitted :class:`rbmlib.BernoulliRBM`.

    Parameters
    ----------
    rbm : BernoulliRBM
    method : {"exact", "ais"}
        "exact" enumerates the smaller layer (at most ``MAX_EXACT_UNITS`` units)
        and takes no options. "ais" estimates log Z by annealed importance
        sampling on the RBM's device; see :func:`rbmlib.ais.ais_log_partition`.
    **options
        For "ais": ``n_runs`` (100), ``betas`` or ``n_betas`` (default: the
        14,501 temperatures of Salakhutdinov & Murray), ``base_rate`` or ``data``
        (the base model's visible biases, or the training data to compute them
        from), ``random_state``.

    Returns
    -------
    float or AISResult
        A float for "exact"; an :class:`rbmlib.ais.AISResult` for "ais", whose
        ``float()`` is the estimate and which carries its standard error and bounds.

    Raises
    ------
    ValueError
        For an unknown method, or "exact" on a model too large to enumerate.
    TypeError
        For options the method does not take.
    """
    if method == "exact":
        if options:
            raise TypeError(f"method='exact' takes no options; got {sorted(options)}.")
        return exact_log_partition(rbm.components_, rbm.intercept_hidden_, rbm.intercept_visible_)
    if method == "ais":
        unknown = sorted(set(options) - set(ais.AIS_OPTIONS))
        if unknown:
            raise TypeError(f"method='ais' got unknown options {unknown}; it takes {list(ais.AIS_OPTIONS)}.")
        return ais.ais_log_partition(rbm.components_, rbm.intercept_hidden_, rbm.intercept_visible_,
                                     device=rbm.device, **options)
    raise ValueError(f"Unknown method={method!r} for log_partition; use 'exact' or 'ais'.")


def log_likelihood(rbm, X, method="exact", *, log_z=None, **options):
    """Mean log P(v) over the rows of X, in nats: mean(-F(v)) - log Z.

    Parameters
    ----------
    rbm : BernoulliRBM
    X : array-like of shape (n_samples, n_visible), values in [0, 1]
    method : {"exact", "ais"}
        How to get log Z, with ``**options``; see :func:`log_partition`.
    log_z : float or AISResult, optional
        A log Z computed before, used as is (no ``method`` or ``options`` then).
        This is how to get error bars for an AIS log-likelihood without a second
        run: ``res = log_partition(rbm, "ais", ...)``, then
        ``log_likelihood(rbm, X, log_z=res)``; since mean(-F(v)) is exact, its
        standard error is ``res.log_z_std`` and its bounds are
        ``mean(-F) - res.log_z_high`` and ``mean(-F) - res.log_z_low``.

    Returns
    -------
    float
        The mean log-likelihood per row. With AIS it inherits the estimate's
        downward bias in log Z, so it tends to be optimistic.
    """
    if log_z is None:
        log_z = log_partition(rbm, method=method, **options)
    elif options:
        raise TypeError(f"log_z was given, so there is nothing to estimate; "
                        f"unexpected options {sorted(options)}.")
    return float(-np.mean(rbm.free_energy(X), dtype=np.float64) - float(log_z))
