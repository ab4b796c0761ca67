"""Annealed importance sampling (AIS) estimates of an RBM's log partition function.

AIS (Neal 2001), as applied to RBMs by Salakhutdinov & Murray (2008), walks a
batch of samples from a tractable base model to the target RBM through a
sequence of intermediate distributions indexed by inverse temperatures
0 = beta_0 < beta_1 < ... < beta_K = 1. With b_A the visible biases of the base
model (a "base rate" model: no weights, no hidden interactions), the
intermediate unnormalised marginals over v are

    log p*_beta(v) = (1 - beta) v.b_A + beta v.b_v + sum_j softplus(beta (W v + b_h)_j),

so that p*_0 is the base model (times the constant 2^H) and p*_1 = exp(-F(v))
is the RBM. Each run draws v_1 from the base model, then alternates a weight
update, log w += log p*_{beta_k}(v_k) - log p*_{beta_{k-1}}(v_k), with one
block-Gibbs step that leaves p_{beta_k} invariant. The mean of the importance
weights w is an unbiased estimate of Z_B / Z_A, and log Z_A is known in closed form.

Because log is concave, log of an unbiased estimate of Z is biased *down* on
average: with too few runs or temperatures AIS tends to underestimate log Z,
and so to overestimate a log-likelihood.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, validate_params

from rbmlib._device import make_generator, resolve_device, torch_dtype_for
from rbmlib.conditionals import bernoulli, hidden_input, mean_visibles

# Salakhutdinov & Murray's schedule: steps of 1e-3 on [0, 0.5], 1e-4 on [0.5, 0.9]
# and 1e-5 on [0.9, 1], i.e. 500 + 4000 + 10000 intervals. The distributions change
# fastest near beta = 1, where the weights become large and sharp, so that is where
# the temperatures are packed. We keep the shape and let n_betas scale it: beta is a
# piecewise-linear function of a uniform grid u in [0, 1] with these knots, which
# for n_betas = 14,501 reproduces the paper's step sizes exactly.
DEFAULT_N_BETAS = 14_501
_KNOTS_U = (0.0, 500 / 14_500, 4_500 / 14_500, 1.0)
_KNOTS_BETA = (0.0, 0.5, 0.9, 1.0)
# A pixel that is always off (or on) in the data would get an infinite base-rate
# bias; clipping its mean to [1e-3, 1 - 1e-3] keeps the base model a proper
# distribution whose samples are still mostly data-like.
BASE_RATE_CLIP = 1e-3
AIS_OPTIONS = ("n_runs", "betas", "n_betas", "base_rate", "data", "random_state")


@dataclass(frozen=True)
class AISResult:
    """An AIS estimate of log Z, with its uncertainty.

    ``float(result)`` is ``result.log_z``.

    Attributes
    ----------
    log_z : float
        log Z_A + log(mean importance weight): the estimate of log Z.
    log_z_std : float
        Standard error of ``log_z`` by the delta method: the standard deviation
        of the weights divided by (their mean times sqrt(n_runs)). It only sees
        the spread of the weights that were drawn, so it too is an estimate and
        tends to be optimistic when a few rare, huge weights were missed.
    log_z_low, log_z_high : float
        log(mean weight -/+ 3 standard errors of the mean weight) + log Z_A, the
        bounds Salakhutdinov & Murray report. ``log_z_low`` is ``-inf`` when three
        standard errors exceed the mean.
    n_runs : int
        Number of independent annealing runs (importance weights).
    n_betas : int
        Number of inverse temperatures, including 0 and 1.
    seconds : float
        Wall-clock time of the annealing.
    log_weights : ndarray of shape (n_runs,)
        The log importance weights, log(w_i) with mean(w) ~ Z / Z_A.
    log_z_base : float
        log Z_A of the base-rate model.
    """

    log_z: float
    log_z_std: float
    log_z_low: float
    log_z_high: float
    n_runs: int
    n_betas: int
    seconds: float
    log_weights: np.ndarray = field(repr=False, compare=False)
    log_z_base: float = field(repr=False, default=float("nan"))

    def __float__(self) -> float:
        return self.log_z

    @property
    def effective_sample_size(self) -> float:
        """(sum w)^2 / sum w^2: how many equally weighted runs the weights are worth."""
        lw = self.log_weights
        return float(np.exp(2 * np.logaddexp.reduce(lw) - np.logaddexp.reduce(2 * lw)))


@validate_params({"n_betas": [Interval(Integral, 2, None, closed="left")]}, prefer_skip_nested_validation=True)
def default_betas(n_betas: int = DEFAULT_N_BETAS) -> np.ndarray:
    """Inverse temperatures from 0 to 1, denser near 1, shape (n_betas,).

    ``default_betas(14_501)`` is Salakhutdinov & Murray's schedule (steps 1e-3,
    1e-4, 1e-5 on [0, 0.5], [0.5, 0.9], [0.9, 1]); other sizes scale it.
    """
    return np.interp(np.linspace(0.0, 1.0, n_betas), _KNOTS_U, _KNOTS_BETA)


def base_rate_biases(X, clip: float = BASE_RATE_CLIP) -> np.ndarray:
    """Visible biases of the base-rate model: the logit of each pixel's mean in X.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_visible), values in [0, 1]
    clip : float
        Means are clipped to [clip, 1 - clip] before the logit.

    Returns
    -------
    b_base : ndarray of shape (n_visible,), float64
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or not np.all((X >= 0) & (X <= 1)):
        raise ValueError(f"data must be a non-empty 2-d array with values in [0, 1]; got shape {X.shape}.")
    p = np.clip(X.mean(axis=0), clip, 1 - clip)
    return np.log(p) - np.log1p(-p)


@validate_params({"n_runs": [Interval(Integral, 2, None, closed="left")],
                  "n_betas": [Interval(Integral, 2, None, closed="left"), None]},
                 prefer_skip_nested_validation=True)
def ais_log_partition(W, b_h, b_v, *, n_runs=100, betas=None, n_betas=None, base_rate=None,
                      data=None, random_state=None, device="cpu") -> AISResult:
    """Estimate log Z of the RBM (W, b_h, b_v) by annealed importance sampling.

    Parameters
    ----------
    W : array-like of shape (n_hidden, n_visible)
    b_h : array-like of shape (n_hidden,)
    b_v : array-like of shape (n_visible,)
    n_runs : int, default=100
        Independent annealing runs, simulated together as one (n_runs, n_visible) batch.
    betas : array-like of shape (n_betas,), optional
        Increasing inverse temperatures from exactly 0 to exactly 1.
    n_betas : int, optional
        Size of the default schedule (:func:`default_betas`); 14,501 when neither
        ``betas`` nor ``n_betas`` is given. Give at most one of the two.
    base_rate : array-like of shape (n_visible,), optional
        Visible biases (log-odds) of the base model, e.g. from :func:`base_rate_biases`.
    data : array-like of shape (n_samples, n_visible), optional
        Training data to compute ``base_rate`` from. Give at most one of the two;
        with neither, the base model is uniform (zero biases), which is valid but
        needs more temperatures for a model of images.
    random_state : int, RandomState instance or None
        Seeds the base samples and the Gibbs steps.
    device : str or torch.device, default="cpu"

    Returns
    -------
    AISResult
    """
    device = resolve_device(device)
    W, b_h, b_v = (np.asarray(a) for a in (W, b_h, b_v))
    n_hidden, n_visible = W.shape
    betas = _schedule(betas, n_betas)
    b_base = _base_biases(base_rate, data, n_visible)
    # The Gibbs steps run in the model's precision (float32 stays fast); the log
    # weights are float64, see _anneal.
    dtype = torch_dtype_for(W.dtype)
    W, b_h, b_v, b_base_t = (torch.as_tensor(np.asarray(a, dtype=np.float64), device=device).to(dtype)
                             for a in (W, b_h, b_v, b_base))
    gen = make_generator(random_state, device)

    start = time.perf_counter()
    with torch.no_grad():
        log_w = _anneal(W, b_h, b_v, b_base_t, betas.tolist(), n_runs, gen).cpu().numpy()
    seconds = time.perf_counter() - start

    # log Z_A: the base model's visible units are independent, and its H hidden
    # units (no weights, no biases) contribute a factor 2 each.
    log_z_base = float(np.logaddexp(0, b_base).sum() + n_hidden * math.log(2))
    return _summarise(log_w, log_z_base, len(betas), seconds)


def _anneal(W, b_h, b_v, b_base, betas, n_runs, gen):
    """Run ``n_runs`` AIS chains through ``betas``; return log weights, shape (n_runs,), float64.

    Parameters
    ----------
    W : Tensor (H, V); b_h : Tensor (H,); b_v, b_base : Tensor (V,)
    betas : list of float, increasing from 0 to 1
    """
    softplus = torch.nn.functional.softplus
    v = bernoulli(torch.sigmoid(b_base).expand(n_runs, -1), gen)  # exact samples of p_0, (n, V)
    d_bias = (b_v - b_base).double()  # (V,)
    log_w = torch.zeros(n_runs, dtype=torch.float64, device=W.device)
    for k in range(1, len(betas)):
        beta_prev, beta = betas[k - 1], betas[k]
        x = hidden_input(v, W, b_h)  # (n, H): the target's hidden inputs at v_k
        # log p*_beta(v) - log p*_beta_prev(v). The two softplus terms nearly cancel
        # (beta - beta_prev can be 1e-5) and thousands of such differences are summed,
        # so they are taken in float64 whatever the model's precision.
        x64 = x.double()
        log_w += (beta - beta_prev) * (v.double() @ d_bias)
        log_w += (softplus(beta * x64) - softplus(beta_prev * x64)).sum(1)
        if k < len(betas) - 1:  # the last transition would not change any weight
            h = bernoulli(torch.sigmoid(beta * x), gen)  # P_beta(h | v) = sigmoid(beta x), (n, H)
            bias = (1 - beta) * b_base + beta * b_v  # (V,)
            v = bernoulli(mean_visibles(h, W, bias, beta=beta), gen)  # (n, V)
    return log_w


def _summarise(log_w, log_z_base, n_betas, seconds) -> AISResult:
    """log Z and its error bars from the log importance weights ``log_w`` (n_runs,)."""
    n = len(log_w)
    log_mean = float(np.logaddexp.reduce(log_w) - math.log(n))
    # Weights relative to their mean (mean 1), so no exp overflows.
    rel = np.exp(log_w - log_mean)
    rel_se = float(rel.std(ddof=1) / math.sqrt(n))  # std of mean(w) / mean(w)
    log_z = log_z_base + log_mean
    return AISResult(
        log_z=log_z,
        log_z_std=rel_se,  # delta method: sd(log m) ~ sd(m) / m
        log_z_low=log_z + math.log(1 - 3 * rel_se) if 3 * rel_se < 1 else -math.inf,
        log_z_high=log_z + math.log1p(3 * rel_se),
        n_runs=n,
        n_betas=n_betas,
        seconds=seconds,
        log_weights=log_w,
        log_z_base=log_z_base,
    )


def _schedule(betas, n_betas) -> np.ndarray:
    """The inverse temperatures to use, validated; shape (n_betas,)."""
    if betas is None:
        return default_betas(DEFAULT_N_BETAS if n_betas is None else n_betas)
    if n_betas is not None:
        raise ValueError("Give either betas or n_betas, not both.")
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or len(betas) < 2 or betas[0] != 0 or betas[-1] != 1 or np.any(np.diff(betas) <= 0):
        raise ValueError("betas must be a 1-d, strictly increasing sequence from exactly 0 to exactly 1.")
    return betas


def _base_biases(base_rate, data, n_visible) -> np.ndarray:
    """The base model's visible biases, shape (n_visible,), float64."""
    if base_rate is not None and data is not None:
        raise ValueError("Give either base_rate or data (to compute it from), not both.")
    if data is not None:
        b = base_rate_biases(data)
    elif base_rate is not None:
        b = np.asarray(base_rate, dtype=np.float64)
    else:
        b = np.zeros(n_visible)
    if b.shape != (n_visible,) or not np.all(np.isfinite(b)):
        what = "data" if data is not None else "base_rate"
        raise ValueError(f"{what} must give {n_visible} finite visible biases; got shape {b.shape}.")
    return b
