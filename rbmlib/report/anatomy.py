"""What a trained RBM does besides feeding a classifier: sample, fill in, and how it learns.

>>> chains = gibbs_chains(rbm, X_val[:10], checkpoints=(1, 10, 100), random_state=0)
>>> filled = inpaint(rbm, X_val[:10], top_half_mask(), n_steps=200, random_state=0)
>>> curves = compare_cd_variants(X_bin, X_eval=X_val_bin, n_components=16, n_iter=10)

Everything here reads the RBM's public parameters, applies the conditionals of
``rbmlib.conditionals`` (the formulas the RBM itself uses) and draws its own
random numbers from ``random_state``, so results do not depend on how much the
RBM's internal generator was used before.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from rbmlib import partition
from rbmlib._device import make_generator
from rbmlib.conditionals import bernoulli, mean_hiddens, mean_visibles
from rbmlib.rbm import BernoulliRBM

IMAGE_SIDE = 28


def top_half_mask(side: int = IMAGE_SIDE) -> np.ndarray:
    """Boolean mask of a flattened ``side`` x ``side`` image: True on the top half (the known pixels)."""
    mask = np.zeros((side, side), dtype=bool)
    mask[: side // 2] = True
    return mask.ravel()


def _parameters(rbm):
    """The RBM's (W, b_h, b_v) as CPU tensors in its own dtype."""
    return tuple(torch.from_numpy(np.ascontiguousarray(a))
                 for a in (rbm.components_, rbm.intercept_hidden_, rbm.intercept_visible_))


def _gibbs_step(params, v, gen):
    """One block-Gibbs step v -> h -> P(v | h), with h drawn from ``gen``; (n, V) -> (n, V)."""
    W, b_h, b_v = params
    return mean_visibles(bernoulli(mean_hiddens(v, W, b_h), gen), W, b_v)


def gibbs_chains(rbm, init, checkpoints=(1, 10, 100, 1000), *, random_state=None) -> np.ndarray:
    """Run one Gibbs chain from each row of ``init`` and record it at the checkpoints.

    Parameters
    ----------
    rbm : fitted BernoulliRBM
    init : array-like of shape (n_chains, n_features)
        Starting states, e.g. validation images ("chains started from data").
    checkpoints : increasing sequence of int
        Step counts at which to record each chain.
    random_state : int or None

    Returns
    -------
    ndarray of shape (n_chains, 1 + len(checkpoints), n_features)
        ``[:, 0]`` is ``init``; ``[:, i]`` is P(v=1 | h) at step ``checkpoints[i - 1]``
        (the conditional mean, smoother to look at than the binary state the chain
        continues from).
    """
    checkpoints = [int(c) for c in checkpoints]
    if not checkpoints or checkpoints[0] < 1 or any(b <= a for a, b in zip(checkpoints, checkpoints[1:])):
        raise ValueError(f"checkpoints={checkpoints} must be increasing integers >= 1.")
    params, gen = _parameters(rbm), make_generator(random_state, torch.device("cpu"))
    v = torch.tensor(np.asarray(init), dtype=params[0].dtype)  # (n, V)
    frames, done = [v.clone()], 0
    with torch.no_grad():
        for target in checkpoints:
            for _ in range(target - done):
                p_v = _gibbs_step(params, v, gen)
                v = bernoulli(p_v, gen)
            done = target
            frames.append(p_v)
    return torch.stack(frames, dim=1).numpy()


def inpaint(rbm, X, known, n_steps=200, *, burn_in=None, random_state=None) -> np.ndarray:
    """Fill in the unknown pixels of X by Gibbs sampling with the known pixels clamped.

    The unknown pixels start at random binary values; each step samples the hidden
    units given the whole image, then resamples only the unknown pixels from
    P(v | h). The result is the mean of P(v | h) over the steps after ``burn_in``,
    an estimate of the probability that each unknown pixel is on given the known ones.

    Parameters
    ----------
    rbm : fitted BernoulliRBM
    X : array-like of shape (n_samples, n_features)
        Images; only their known pixels are read.
    known : bool array of shape (n_features,) or (n_samples, n_features)
        True where a pixel is observed (kept as in X), False where it is filled in.
    n_steps : int
        Gibbs steps (>= 1).
    burn_in : int, optional
        Steps discarded before averaging; default ``n_steps // 2``.
    random_state : int or None

    Returns
    -------
    ndarray of shape (n_samples, n_features)
        X on the known pixels, the filled-in probabilities elsewhere.
    """
    X = np.asarray(X, dtype=rbm.components_.dtype)
    known = np.asarray(known, dtype=bool)
    if X.ndim != 2 or known.shape not in ((X.shape[1],), X.shape):
        raise ValueError(f"known has shape {known.shape}; it must be (n_features,) or X.shape {X.shape}.")
    known = np.broadcast_to(known, X.shape)
    if not (isinstance(n_steps, (int, np.integer)) and n_steps >= 1):
        raise ValueError(f"n_steps={n_steps!r} must be an integer >= 1.")
    burn_in = n_steps // 2 if burn_in is None else burn_in
    if not 0 <= burn_in < n_steps:
        raise ValueError(f"burn_in={burn_in!r} must be in [0, n_steps).")
    params, gen = _parameters(rbm), make_generator(random_state, torch.device("cpu"))
    X_t, known_t = torch.from_numpy(X), torch.from_numpy(np.ascontiguousarray(known))
    v = torch.where(known_t, X_t, bernoulli(torch.full_like(X_t, 0.5), gen))  # (n, V)
    total = torch.zeros_like(X_t)
    with torch.no_grad():
        for step in range(n_steps):
            p_v = _gibbs_step(params, v, gen)
            v = torch.where(known_t, X_t, bernoulli(p_v, gen))
            if step >= burn_in:
                total += p_v
    return torch.where(known_t, X_t, total / (n_steps - burn_in)).numpy()


def cd_variants(k: int = 10) -> dict:
    """The three samplers compared: CD-1, CD-k (chains restarted at the data) and PCD-1."""
    return {
        "CD-1": {"k": 1, "persistent": False},
        f"CD-{k}": {"k": k, "persistent": False},
        "PCD-1": {"k": 1, "persistent": True},
    }


def compare_cd_variants(X, *, X_eval=None, variants=None, n_components=16, n_iter=10,
                        learning_rate=0.05, batch_size=64, random_state=0, device="cpu") -> pd.DataFrame:
    """Train one RBM per sampler on the same data, budget and seed; return their curves.

    Everything but the negative phase is shared: the data, the epochs, the
    mini-batches, the learning rate and the initial weights. With at most
    ``partition.MAX_EXACT_UNITS`` hidden units the exact average log-likelihood of
    ``X_eval`` (nats per image) is computed after every epoch, the quantity CD
    approximately climbs; otherwise that column is NaN.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Training data in [0, 1] (binary data makes the log-likelihood a true one).
    X_eval : array-like, optional
        Held-out data for the log-likelihood; defaults to X.
    variants : dict of name -> dict of BernoulliRBM parameters, optional
        Default :func:`cd_variants`.

    Returns
    -------
    DataFrame with one row per variant and epoch: ``variant``, ``epoch``,
    ``reconstruction_error``, ``pseudo_likelihood`` (on training rows, from
    ``history_``), ``log_likelihood`` (on ``X_eval``), ``seconds`` (training
    time of that epoch) and ``gibbs_steps`` (per update: the sampler's cost).
    """
    X_eval = X if X_eval is None else X_eval
    variants = cd_variants() if variants is None else variants
    exact = n_components <= partition.MAX_EXACT_UNITS
    frames = []
    for name, params in variants.items():
        log_liks = []

        def record(rbm, _record, log_liks=log_liks):
            log_liks.append(rbm.log_likelihood(X_eval) if exact else np.nan)

        rbm = BernoulliRBM(n_components=n_components, learning_rate=learning_rate, batch_size=batch_size,
                           n_iter=n_iter, random_state=random_state, device=device, callback=record,
                           **params).fit(X)
        curves = pd.DataFrame(rbm.history_)
        curves["log_likelihood"] = log_liks
        curves["gibbs_steps"] = rbm.k
        curves.insert(0, "variant", name)
        frames.append(curves)
    columns = ["variant", "epoch", "reconstruction_error", "pseudo_likelihood", "log_likelihood", "seconds",
               "gibbs_steps"]
    return pd.concat(frames, ignore_index=True)[columns]


def cd_variant_summary(curves) -> pd.DataFrame:
    """Last-epoch values, Gibbs steps per update and total training time per variant, best
    log-likelihood first. (Seconds depend on the machine and its load; steps do not.)"""
    last = curves.sort_values("epoch").groupby("variant", sort=False).tail(1).set_index("variant")
    table = last[["log_likelihood", "pseudo_likelihood", "reconstruction_error", "gibbs_steps"]].copy()
    table["seconds"] = curves.groupby("variant")["seconds"].sum()
    table.columns = ["log-likelihood (held out)", "pseudo-likelihood", "reconstruction error",
                     "Gibbs steps per update", "training seconds"]
    return table.sort_values(table.columns[0], ascending=False, kind="stable")


def cd_variant_sentence(summary) -> str:
    """Sentences naming the sampler with the best held-out log-likelihood, its cost, and the
    order in which each monitor ranks the samplers (the monitors need not agree)."""
    ll = summary.iloc[:, 0]
    if not np.isfinite(ll).all():
        return "The exact log-likelihood was not computed (too many hidden units for enumeration)."
    best, worst = summary.index[0], summary.index[-1]
    steps = summary["Gibbs steps per update"]
    costliest = steps.idxmax()
    orders = {
        "held-out log-likelihood": summary.index,
        "pseudo-log-likelihood": summary["pseudo-likelihood"].sort_values(ascending=False).index,
        "reconstruction error": summary["reconstruction error"].sort_values().index,
    }
    ranking = "; ".join(f"by {what}, {', '.join(order)}" for what, order in orders.items())
    agree = all(list(order) == list(summary.index) for order in orders.values())
    cost = f" ({costliest}: {_steps(steps[costliest])})" if costliest != best else ""
    # The final ranking only: whether the monitors followed the likelihood during training is another question.
    verdict = ("rank the samplers as the likelihood does after the last epoch." if agree
               else "do not rank the samplers as the likelihood does after the last epoch.")
    return (
        f"After the same number of updates, {best} reaches the highest held-out log-likelihood "
        f"({ll[best]:.1f} nats per image, against {ll[worst]:.1f} for {worst}) with "
        f"{_steps(steps[best])} per update{cost}. "
        f"From best to worst, {ranking}: the cheap monitors {verdict}"
    )


def cd_trend_sentence(curves) -> str:
    """One sentence on how each sampler's held-out log-likelihood moved over the epochs (where it
    peaked and what it lost afterwards), set against the reconstruction error over the same epochs."""
    if curves["log_likelihood"].isna().any():
        return ""
    parts, fell = [], []
    for name, part in curves.groupby("variant", sort=False):
        ll = part.set_index("epoch")["log_likelihood"]
        peak, last = ll.idxmax(), ll.index[-1]
        subject = f"that of {name}" if parts else f"the held-out log-likelihood of {name}"
        if peak == last:
            parts.append(f"{subject} was highest after the last epoch")
        else:
            parts.append(f"{subject} peaked after epoch {peak} and ended {ll[peak] - ll[last]:.1f} nats lower")
        errors = part["reconstruction_error"].to_numpy()
        fell.append(errors[-1] < errors[0])
    recon = ("the reconstruction error of every sampler ended lower than it started" if all(fell) else
             "the reconstruction error did not fall for every sampler")
    return f"Over the epochs, {_join_clauses(parts)}; meanwhile {recon}."


def _join_clauses(parts) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", and " + parts[-1]


def _steps(n) -> str:
    return f"{int(n)} Gibbs step" + ("" if int(n) == 1 else "s")


def describe_training(rbm, n_images) -> str:
    """One sentence on how ``rbm`` was trained, from its parameters and ``history_``."""
    sampler = f"PCD-{rbm.k}" if rbm.persistent else f"CD-{rbm.k}"
    return (
        f"The RBM has {rbm.n_components} hidden units and was trained by {sampler} "
        f"(learning rate {rbm.learning_rate:g}, mini-batches of {rbm.batch_size}) for "
        f"{len(rbm.history_)} epochs on {n_images:,} training images."
    )


# ---------------------------------------------------------------- the RBM actually used
def tuned_rbm(preset, model="rbm-lr", seed=0, *, cache_dir=None):
    """The RBM inside a preset's final refit of ``model``, through the RBM cache.

    The refit (``rbmlib.tuning.refit.fit_final``) trained this RBM on the preset's
    "trainval" images with the best trial's parameters and ``random_state=seed``;
    asking the cache for the same (parameters, data, seed) returns that RBM
    without training it again. Where the cache does not hold it (a fresh clone,
    another machine or thread count), it is trained here exactly as the refit
    trains it, and cached.

    Parameters
    ----------
    preset : str or Preset
    model : str
        A model of the preset whose pipeline starts with an RBM.
    seed : int
        One of the preset's refit seeds.
    cache_dir : path-like, optional
        Default ``paths.CACHE_DIR / "rbm"``, where the refits put their RBMs.

    Returns
    -------
    rbm : fitted BernoulliRBM
    about : dict
        ``trial`` (the best trial's number), ``n_images`` (training images),
        ``seed`` and ``cached`` (True if the cache held it).

    Raises
    ------
    rbmlib.tuning.study.MissingStudyError
        If the preset has no study of ``model`` (run ``rbmlib tune`` first).
    """
    from rbmlib import data
    from rbmlib.models import make_model
    from rbmlib.tuning.presets import get_preset
    from rbmlib.tuning.rbm_cache import fit_rbm
    from rbmlib.tuning.refit import refit_params
    from rbmlib.tuning.study import load_study

    preset = get_preset(preset)
    trial = load_study(model, preset, create=False).best_trial
    estimator = make_model(model, random_state=seed, **refit_params(model, preset, trial))
    X, _ = data.load_split("trainval", subset=preset.trainval_subset)
    rbm, cached = fit_rbm(estimator.named_steps["rbm"], X, cache_dir=cache_dir)
    return rbm, {"trial": trial.number, "n_images": len(X), "seed": seed, "cached": cached}


def strongest_units(components, n) -> np.ndarray:
    """Indices of the ``n`` hidden units with the largest weight norm, largest first.

    A unit's weight norm bounds how much the image can move its input, so these
    are the units that respond most to what they see; in a large RBM many units
    stay close to their small random start and show only noise.
    """
    norms = np.linalg.norm(np.asarray(components, dtype=np.float64), axis=1)
    return np.argsort(-norms, kind="stable")[: int(n)]


def describe_tuned_filters(rbm, about, shown, preset) -> str:
    """One sentence saying which RBM the tuned-filter figure shows, and which of its units."""
    sampler = f"PCD-{rbm.k}" if rbm.persistent else f"CD-{rbm.k}"
    norms = np.linalg.norm(np.asarray(rbm.components_, dtype=np.float64), axis=1)
    return (
        f"The feature extractor of the {preset} preset's logistic regression on RBM features is the RBM of "
        f"its best trial (trial {about['trial']}), refit with seed {about['seed']} on {about['n_images']:,} "
        f"training images: {rbm.n_components:,} hidden units trained by {sampler} for {len(rbm.history_)} "
        f"epochs (learning rate {rbm.learning_rate:g}, mini-batches of {rbm.batch_size}"
        f"{', binarised afresh for every batch' if getattr(rbm, 'sample_visible', False) else ''}). The figure shows "
        f"the {len(shown)} of its {rbm.n_components:,} units with the largest weight norm (from "
        f"{norms[shown[0]]:.1f} down to {norms[shown[-1]]:.1f}; the median unit's is {np.median(norms):.1f})."
    )


# ---------------------------------------------------------------- drift of Gibbs chains
def drift_classifier(n_iter=2, *, random_state=0, device="cpu"):
    """The CNN that labels Gibbs-chain states: small and fixed (not tuned), unfitted.

    It only has to tell the classes apart well enough to say when a chain has
    left its starting class, so it is far smaller than the tuned CNN.
    """
    from rbmlib.nets import CNNClassifier

    return CNNClassifier(filters1=16, filters2=32, dense_units=128, dropout=0.25, learning_rate=1e-3,
                         batch_size=128, n_iter=n_iter, random_state=random_state, device=device)


def gibbs_drift(rbm, classifier, X, y, checkpoints, *, random_state=None) -> pd.DataFrame:
    """Classify Gibbs chains started from labelled images as they run.

    Each row of X starts one chain (as in :func:`gibbs_chains`); at step 0 (the
    image itself) and at every checkpoint the chain's conditional mean P(v | h)
    is classified by ``classifier``.

    Parameters
    ----------
    rbm : fitted BernoulliRBM
    classifier : fitted classifier with ``predict_proba`` and ``classes_``
    X : array-like of shape (n_chains, n_features)
    y : array-like of shape (n_chains,)
        The class of each starting image.
    checkpoints : increasing sequence of int >= 1
    random_state : int or None

    Returns
    -------
    DataFrame with one row per step (0, then the checkpoints): ``step``,
    ``same_class`` (share of chains classified as their starting class),
    ``start_probability`` (mean probability the classifier gives the starting
    class) and ``confidence`` (mean probability of whichever class it predicts).
    """
    X, y = np.asarray(X), np.asarray(y)
    chains = gibbs_chains(rbm, X, checkpoints, random_state=random_state)  # (n, 1 + C, V)
    column = np.searchsorted(classifier.classes_, y)
    rows = []
    for step, states in zip([0, *checkpoints], np.moveaxis(chains, 1, 0)):
        proba = classifier.predict_proba(states.astype(np.float32))
        rows.append({"step": int(step),
                     "same_class": float(np.mean(classifier.classes_[proba.argmax(axis=1)] == y)),
                     "start_probability": float(np.mean(proba[np.arange(len(y)), column])),
                     "confidence": float(np.mean(proba.max(axis=1)))})
    return pd.DataFrame(rows)


def drift_figure(drift):
    """Share of chains still in their starting class, and the classifier's confidence, per Gibbs step."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, (left, right) = plt.subplots(1, 2, figsize=(7.0, 2.6))
    left.plot(drift["step"], drift["same_class"], marker="o", ms=3)
    left.set_ylabel("share still in starting class")
    right.plot(drift["step"], drift["confidence"], marker="o", ms=3, color="C1", label="predicted class")
    right.plot(drift["step"], drift["start_probability"], marker="s", ms=3, color="C2", label="starting class")
    right.set_ylabel("mean CNN probability")
    right.legend()
    for ax in (left, right):
        ax.set_xscale("symlog", linthresh=1)  # step 0 (the image itself) sits left of step 1
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
        ax.set_xlabel("Gibbs steps (0: the image)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def drift_sentence(drift, val_accuracy, n_chains) -> str:
    """What the drift figure shows, with the CNN's own validation accuracy to judge it by."""
    first, last = drift.iloc[0], drift.iloc[-1]
    half = drift[drift["same_class"] < first["same_class"] / 2]
    when = (f"fell below half of its starting value by step {int(half['step'].iloc[0]):,}" if len(half)
            else "stayed above half of its starting value throughout")
    return (
        f"The CNN that labels the chain states scores {val_accuracy:.1%} on the validation split (it was "
        f"trained on the training split only). Of the {n_chains:,} chains, {first['same_class']:.1%} start "
        f"from an image it assigns to the image's class, and {last['same_class']:.1%} are still assigned "
        f"to that class after {int(last['step']):,} Gibbs steps; the share {when}. Its mean confidence "
        f"goes from {first['confidence']:.2f} to {last['confidence']:.2f}, and the probability it gives "
        f"the starting class from {first['start_probability']:.2f} to {last['start_probability']:.2f}."
    )
