"""A worked toy example: an RBM with visible units A, B, C and hidden units D, E.

The data are the six rows of a tutorial on energy-based models: four rows
"A and C but not B", (1, 0, 1), and two rows "B alone", (0, 1, 0). With
3 + 2 units there are only 2^5 = 32 joint states, so every quantity can be
written out in a table: the energy of each state, its
unnormalised weight exp(-E), the partition function Z (their sum) and the
probabilities. Comparing the tables before and after training shows what
learning does: it moves probability mass onto the two observed patterns.

>>> before = train_toy_rbm(n_iter=0)          # the initial, nearly uniform model
>>> after = train_toy_rbm()                   # about a second
>>> visible_table(after)                      # P(v) next to the data's frequencies
"""

from __future__ import annotations

import string

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from rbmlib.partition import all_binary_states
from rbmlib.rbm import BernoulliRBM

_MAX_UNITS = 12  # 4096 joint states: still a table one can print


def toy_data() -> np.ndarray:
    """The tutorial's six observations of (A, B, C), shape (6, 3), float64."""
    return np.array(
        [[1, 0, 1], [0, 1, 0], [1, 0, 1], [1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=np.float64
    )


def train_toy_rbm(random_state=0, *, n_iter=50, learning_rate=0.2, k=5, batch_size=30,
                  momentum=0.5, repeats=100) -> BernoulliRBM:
    """Fit a 2-hidden-unit RBM to :func:`toy_data` with CD-k; ``n_iter=0`` gives the untrained start.

    The six rows are repeated ``repeats`` times (which leaves the empirical
    distribution unchanged) so that one epoch holds many mini-batch updates;
    otherwise BernoulliRBM's per-epoch bookkeeping would dominate the run time.
    CD-k rather than PCD: with weights of size ~5 the two observed patterns are
    separated by a low-probability valley, so persistent chains rarely cross it
    and the balance between the two patterns they learn varies a lot between
    seeds, while CD-k restarts at the data and learns it steadily. The
    defaults (1,000 updates, under a second) put about 98% of the mass on the
    two patterns, close to the data's 2:1 (0.66 and 0.32 for seed 0).

    Parameters
    ----------
    random_state : int, default=0
        Seeds the initial weights and the Gibbs sampling; the same seed gives
        the same model, and ``n_iter=0`` gives that seed's initial model.
    n_iter, learning_rate, k, batch_size, momentum
        Passed to :class:`rbmlib.BernoulliRBM` (``persistent=False``).
    repeats : int, default=100
        Copies of the six rows per epoch.

    Returns
    -------
    BernoulliRBM
        Fitted on the CPU, with ``components_`` of shape (2, 3).
    """
    rbm = BernoulliRBM(n_components=2, learning_rate=learning_rate, batch_size=batch_size,
                       n_iter=n_iter, k=k, persistent=False, momentum=momentum, device="cpu",
                       random_state=random_state)
    return rbm.fit(np.tile(toy_data(), (repeats, 1)))


def joint_table(rbm) -> pd.DataFrame:
    """Every joint state (v, h) with its energy, unnormalised weight and probability.

    Parameters
    ----------
    rbm : BernoulliRBM
        With at most 12 units in all.

    Returns
    -------
    DataFrame with 2^(V+H) rows, in counting order (v major, first unit most significant)
        Columns: one 0/1 column per unit (A, B, C, then D, E for the hidden
        units of the toy), ``state`` (the names of the units that are on, or
        "none"), ``energy`` E(v, h), ``weight`` exp(-E(v, h)) and
        ``probability`` P(v, h) = exp(-E) / Z. The tutorial's "score" is -energy.
    """
    v, h, energy = _all_energies(rbm)  # (2^V, V), (2^H, H), (2^V, 2^H)
    n_v, n_h = len(v), len(h)
    units = np.hstack([np.repeat(v, n_h, axis=0), np.tile(h, (n_v, 1))])  # (2^V * 2^H, V + H)
    table = _unit_columns(units, _unit_names(rbm))
    e = energy.ravel() + 0.0  # v-major, matching ``units``; + 0.0 turns -0.0 into 0.0 for printing
    table["energy"] = e
    table["weight"] = np.exp(-e)
    table["probability"] = np.exp(-e - logsumexp(-e))
    return table


def visible_table(rbm, data=None) -> pd.DataFrame:
    """Every visible state with its model probability P(v) and its frequency in ``data``.

    Parameters
    ----------
    rbm : BernoulliRBM
        With at most 12 units in all.
    data : array-like of shape (n_samples, n_visible), optional
        Binary observations; :func:`toy_data` by default.

    Returns
    -------
    DataFrame with 2^V rows, in counting order
        Columns: one 0/1 column per visible unit, ``state``, ``probability``
        P(v) = sum_h P(v, h), and ``data_frequency`` (fraction of rows of
        ``data`` equal to v).
    """
    v, _, energy = _all_energies(rbm)
    data = toy_data() if data is None else np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != v.shape[1] or not np.isin(data, (0, 1)).all():
        raise ValueError(f"data must be a binary array with {v.shape[1]} columns; got shape {data.shape}.")
    log_marginal = logsumexp(-energy, axis=1)  # log sum_h exp(-E(v, h)) = -F(v), (2^V,)
    table = _unit_columns(v, _unit_names(rbm)[: v.shape[1]])
    table["probability"] = np.exp(log_marginal - logsumexp(log_marginal))
    codes = data @ (2 ** np.arange(v.shape[1] - 1, -1, -1))  # row -> index in counting order
    table["data_frequency"] = np.bincount(codes.astype(int), minlength=len(v)) / len(data)
    return table


def _all_energies(rbm):
    """All visible states (2^V, V), all hidden states (2^H, H) and E(v, h) for each pair (2^V, 2^H)."""
    W = np.asarray(rbm.components_, dtype=np.float64)  # (H, V)
    b_h = np.asarray(rbm.intercept_hidden_, dtype=np.float64)
    b_v = np.asarray(rbm.intercept_visible_, dtype=np.float64)
    n_hidden, n_visible = W.shape
    if n_hidden + n_visible > _MAX_UNITS:
        raise ValueError(f"The tables list all 2^(V+H) states; V + H = {n_hidden + n_visible} "
                         f"is more than {_MAX_UNITS}.")
    v = all_binary_states(n_visible).numpy()
    h = all_binary_states(n_hidden).numpy()
    # E(v, h) = -v.b_v - h.b_h - h W v
    energy = -(v @ b_v)[:, None] - (h @ b_h)[None, :] - v @ W.T @ h.T
    return v, h, energy


def _unit_names(rbm) -> list[str]:
    """A, B, C, ... for the visible units, then the next letters for the hidden ones."""
    n_hidden, n_visible = np.shape(rbm.components_)
    return list(string.ascii_uppercase[: n_visible + n_hidden])


def _unit_columns(states, names) -> pd.DataFrame:
    """One int column per unit plus ``state``, the names of the units that are on."""
    table = pd.DataFrame(states.astype(int), columns=names)
    table["state"] = ["".join(n for n, s in zip(names, row) if s) or "none" for row in states]
    return table


def describe(before, after, data=None) -> str:
    """A sentence on what training did: the mass on the observed patterns, and log Z, before and after."""
    data = toy_data() if data is None else data
    v_before, v_after = visible_table(before, data), visible_table(after, data)
    seen = v_after["data_frequency"] > 0
    names = " and ".join(f"{s} (P = {p:.2f}; data {f:.2f})"
                         for s, p, f in zip(v_after["state"][seen], v_after["probability"][seen],
                                            v_after["data_frequency"][seen]))
    log_z = [float(logsumexp(-_all_energies(r)[2])) for r in (before, after)]
    return (f"Before training, the observed patterns hold {v_before['probability'][seen].sum():.2f} of "
            f"the probability (log Z = {log_z[0]:.2f}); after training they hold "
            f"{v_after['probability'][seen].sum():.2f} (log Z = {log_z[1]:.2f}): {names}.")
