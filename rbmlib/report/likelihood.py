"""The RBM as a generative model: held-out log-likelihood by AIS, beside the cheap monitors.

One RBM per (sampler, size) is trained on binarised images with the same data,
epochs, learning rate and seed; each is then scored on held-out images by

* the average log-likelihood, mean(-F(v)) - log Z, with log Z estimated by
  annealed importance sampling (and computed exactly too where the hidden layer
  is small enough to enumerate, as a check on AIS);
* the reconstruction error and the pseudo-likelihood, the monitors that need no
  partition function.

The point of putting them side by side: a sampler can win on reconstruction
error and lose on likelihood (Salakhutdinov & Murray 2008 found CD-1 RBMs far
worse than CD-25 ones on MNIST by likelihood).

>>> rbms = train_rbms(X_train, sizes=(20, 500), variants=anatomy.cd_variants(10))
>>> table = likelihood_table(rbms, X_train, X_test, n_runs=100)
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rbmlib import ais, partition
from rbmlib.rbm import BernoulliRBM
from rbmlib.tuning.rbm_cache import fit_rbm


def train_rbms(X, *, sizes, variants, n_iter=20, learning_rate=0.05, batch_size=100, random_state=0,
               device="cpu", cache_dir=None) -> dict:
    """Fit one RBM per (variant, size) on X, with everything but the sampler and size shared.

    Trained RBMs go through the RBM cache (``rbmlib.tuning.rbm_cache``), so a
    notebook that is run again, or was interrupted, does not train them again.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Binary training images.
    sizes : iterable of int
        Hidden-layer sizes.
    variants : dict of name -> dict of BernoulliRBM parameters
        E.g. :func:`rbmlib.report.anatomy.cd_variants`.

    Returns
    -------
    dict of (variant, size) -> fitted BernoulliRBM
    """
    rbms = {}
    jobs = [(name, params, size) for size in sizes for name, params in variants.items()]
    for name, params, size in tqdm(jobs, desc="train RBMs", unit="RBM"):
        rbm = BernoulliRBM(n_components=int(size), n_iter=n_iter, learning_rate=learning_rate,
                           batch_size=batch_size, random_state=random_state, device=device, **params)
        rbms[(name, int(size))], _ = fit_rbm(rbm, X, cache_dir=cache_dir)
    return rbms


def base_rate_log_likelihood(X_train, X) -> float:
    """Mean log-probability per row of X (nats) under independent pixels with the training means.

    The base model AIS starts from; any RBM worth training should beat it.
    """
    p = np.clip(np.asarray(X_train, dtype=np.float64).mean(axis=0), ais.BASE_RATE_CLIP, 1 - ais.BASE_RATE_CLIP)
    X = np.asarray(X, dtype=np.float64)
    return float(np.mean(X @ np.log(p) + (1 - X) @ np.log1p(-p)))


def score(rbm, X_train, X_test, *, n_runs=100, n_betas=None, random_state=0) -> dict:
    """One row of the likelihood table for a fitted RBM.

    AIS runs once per RBM; the test and training log-likelihoods share its log Z,
    so both carry its standard error (mean(-F) itself is exact).
    """
    start = time.perf_counter()
    res = rbm.log_partition("ais", n_runs=n_runs, n_betas=n_betas, data=X_train, random_state=random_state)
    seconds = time.perf_counter() - start
    exact = (rbm.log_likelihood(X_test, method="exact")
             if min(rbm.n_components, rbm.n_features_in_) <= partition.MAX_EXACT_UNITS else np.nan)
    X_test = np.asarray(X_test)
    return {
        "test_log_likelihood": rbm.log_likelihood(X_test, log_z=res),
        "log_z_std": res.log_z_std,
        "test_log_likelihood_exact": exact,
        "train_log_likelihood": rbm.log_likelihood(X_train, log_z=res),
        "reconstruction_error": float(np.mean((X_test - rbm.reconstruct(X_test)) ** 2)),
        "pseudo_likelihood": float(np.mean(rbm.score_samples(X_test))),
        "ais_seconds": seconds,
        "ais_runs": res.n_runs,
        "ais_betas": res.n_betas,
        "effective_sample_size": res.effective_sample_size,
    }


def likelihood_table(rbms: dict, X_train, X_test, *, n_runs=100, n_betas=None, random_state=0) -> pd.DataFrame:
    """Score every RBM of :func:`train_rbms`; one row per (variant, size), plus the base-rate model.

    Returns
    -------
    DataFrame indexed by (``variant``, ``hidden units``) with the columns of
    :func:`score`; the base-rate row has only ``test_log_likelihood`` and
    ``train_log_likelihood`` (it has no hidden units and an exact likelihood).
    """
    rows = {key: score(rbm, X_train, X_test, n_runs=n_runs, n_betas=n_betas, random_state=random_state)
            for key, rbm in tqdm(rbms.items(), desc="AIS", unit="RBM")}
    rows[("base rate", 0)] = {"test_log_likelihood": base_rate_log_likelihood(X_train, X_test),
                              "train_log_likelihood": base_rate_log_likelihood(X_train, X_train)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = table.index.set_names(["variant", "hidden units"])
    return table


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The likelihood table as the paper shows it: log-likelihood ± AIS standard error, then the monitors."""
    out = pd.DataFrame(index=table.index)
    ll = table["test_log_likelihood"]
    out["test log-likelihood (AIS)"] = [
        f"{v:.1f} ± {s:.1f}" if np.isfinite(s) else f"{v:.1f}"
        for v, s in zip(ll, table["log_z_std"])]
    out["exact"] = table["test_log_likelihood_exact"]
    out["AIS effective runs"] = table["effective_sample_size"]
    out["train log-likelihood"] = table["train_log_likelihood"]
    out["reconstruction error"] = table["reconstruction_error"]
    out["pseudo-likelihood"] = table["pseudo_likelihood"]
    out["AIS seconds"] = table["ais_seconds"]
    return out


#: Below this share of the runs, the AIS weights are dominated by a few runs: the
#: estimate of log Z is then likely too low (the likelihood optimistic) and its
#: standard error, computed from the same few weights, too small.
LOW_ESS_SHARE = 0.1


def likelihood_sentence(table: pd.DataFrame) -> str:
    """What the table says: the best model by likelihood, the monitors' verdicts, AIS vs exact,
    and which estimates rest on too few effective AIS runs to be trusted."""
    models = table.drop(index="base rate", level="variant")
    ll, rec = models["test_log_likelihood"], models["reconstruction_error"]
    best, best_rec = ll.idxmax(), rec.idxmin()
    base = table.loc[("base rate", 0), "test_log_likelihood"]
    text = (f"By held-out log-likelihood the best model is {_name(best)} ({ll[best]:.1f} nats per image, "
            f"against {base:.1f} for independent pixels), while the lowest reconstruction error belongs to "
            f"{_name(best_rec)}")
    gap = ll[best] - ll[best_rec]
    noise = 2 * np.hypot(models["log_z_std"][best], models["log_z_std"][best_rec])
    if best == best_rec:
        text += ", so here the two agree."
    elif gap > max(noise, 5.0):
        text += (f", whose likelihood is {gap:.1f} nats per image lower: a low reconstruction error "
                 "does not make a good generative model.")
    elif gap > noise:
        text += f", whose likelihood is slightly lower ({gap:.1f} nats per image, beyond the AIS uncertainty)."
    else:
        text += f", whose likelihood is within the AIS uncertainty of the best ({gap:.1f} nats lower)."
    checked = models.dropna(subset=["test_log_likelihood_exact"])
    if len(checked):
        diff = checked["test_log_likelihood"] - checked["test_log_likelihood_exact"]
        text += (f" For the RBMs small enough to enumerate, AIS and the exact value differ by at most "
                 f"{diff.abs().max():.2f} nats" + (" (AIS on the optimistic side, as its downward bias in "
                                                    "log Z predicts)." if (diff > 0).all() else "."))
    shaky = models[models["effective_sample_size"] < LOW_ESS_SHARE * models["ais_runs"]]
    if len(shaky):
        names = ", ".join(f"{_name(k)} ({r.effective_sample_size:.0f} of {int(r.ais_runs)})"
                          for k, r in shaky.iterrows())
        text += (f" The importance weights of {names} are dominated by a few runs (effective runs "
                 f"in brackets): their estimates are likely optimistic, and their error bars too narrow.")
    return text


def sample_sentence(samples: dict, X) -> str:
    """How the long-chain samples compare with the data: the share of pixels they switch on.

    A model whose chains end with far more (or fewer) pixels on than real images
    has put mass on images unlike the data, whatever its likelihood estimate says.
    """
    data_on = float(np.mean(X))
    parts = [f"{_name(k)} {np.mean(v):.2f}" for k, v in samples.items()]
    return (f"The share of pixels on is {data_on:.2f} in the test images; in the final state of the "
            f"chains (P(v | h), averaged) it is " + ", ".join(parts) + ".")


def _name(key) -> str:
    return f"{key[0]} with {key[1]} hidden units"


def long_chain_samples(rbms: dict, n_samples=8, n_steps=10_000, *, random_state=0) -> dict:
    """``{(variant, size): P(v | h) after n_steps of Gibbs sampling from random images}``.

    Chains start from uniform noise, far from the data, so what they show after
    many steps is the model's own idea of an image, not a reconstruction. They
    are seeded by ``random_state`` alone, so an RBM trained now and the same RBM
    loaded from the cache draw the same samples.
    """
    return {key: rbm.sample(n_samples, n_steps, return_probabilities=True, random_state=random_state)
            for key, rbm in tqdm(rbms.items(), desc="Gibbs chains", unit="RBM")}


def describe_setup(table: pd.DataFrame, n_train: int, n_test: int, *, n_iter, learning_rate, batch_size) -> str:
    """How the table was made: data, training budget, AIS settings and what AIS cost."""
    models = table.drop(index="base rate", level="variant")
    slowest = models["ais_seconds"].idxmax()
    return (f"{len(models)} RBMs were trained on {n_train:,} binarised training images for {n_iter} epochs "
            f"(learning rate {learning_rate}, batches of {batch_size}, the same seed) and scored on "
            f"{n_test:,} binarised test images. AIS used {int(models['ais_runs'].iloc[0])} runs and "
            f"{int(models['ais_betas'].iloc[0]):,} inverse temperatures from the base-rate model; one "
            f"estimate took {models['ais_seconds'].min():.1f} to {models['ais_seconds'].max():.1f} s here "
            f"(the most for {_name(slowest)}), and the effective sample size of the importance weights "
            f"ranged from {models['effective_sample_size'].min():.0f} to {models['effective_sample_size'].max():.0f} "
            f"of {int(models['ais_runs'].iloc[0])}.")


def training_path(table: pd.DataFrame, X_train, X_test, *, epochs, n_iter, sizes, variants, learning_rate=0.05,
                  batch_size=100, n_runs=100, n_betas=None, random_state=0, device="cpu",
                  cache_dir=None) -> pd.DataFrame:
    """The likelihood table's RBMs as they were after fewer epochs, scored the same way.

    An RBM fitted for ``e`` epochs is the same RBM as one fitted for ``n_iter``
    epochs, seen after its ``e``-th (the seed fixes the initial weights and every
    mini-batch, and an epoch does not depend on how many follow), so each
    checkpoint is trained through the RBM cache with ``n_iter=e`` and scored by
    :func:`score` like the final RBMs: AIS on the same settings, and the two
    monitors on the same held-out images.

    Parameters
    ----------
    table : DataFrame
        :func:`likelihood_table` of the RBMs trained for ``n_iter`` epochs (its rows
        are reused as the last checkpoint).
    epochs : iterable of int
        Earlier epochs to score (those >= ``n_iter`` are ignored).
    n_iter, sizes, variants, learning_rate, batch_size, random_state, device, cache_dir
        As given to :func:`train_rbms` for ``table``.
    n_runs, n_betas
        As given to :func:`likelihood_table` for ``table``.

    Returns
    -------
    DataFrame indexed by (``variant``, ``hidden units``, ``epoch``) with the columns of :func:`score`.
    """
    frames = []
    for epoch in sorted({int(e) for e in epochs if int(e) < n_iter}):
        rbms = train_rbms(X_train, sizes=sizes, variants=variants, n_iter=epoch, learning_rate=learning_rate,
                          batch_size=batch_size, random_state=random_state, device=device, cache_dir=cache_dir)
        frames.append(likelihood_table(rbms, X_train, X_test, n_runs=n_runs, n_betas=n_betas,
                                       random_state=random_state).assign(epoch=epoch))
    frames.append(table.assign(epoch=n_iter))
    path = pd.concat(frames).drop(index="base rate", level="variant")
    return path.set_index("epoch", append=True).sort_index(level=["hidden units", "epoch"], sort_remaining=False)


def monitor_sentence(path: pd.DataFrame) -> str:
    """Did the cheap monitors move with the held-out likelihood between checkpoints?

    Between consecutive checkpoints of each RBM, the AIS log-likelihood either
    rose or fell by more than twice its combined standard error (else the step
    is not counted); a monitor agrees with that step when it improved (lower
    reconstruction error, higher pseudo-likelihood) exactly when the
    likelihood rose. The sentence names the RBMs whose likelihood fell while a
    monitor kept improving.
    """
    steps, agree, fell = 0, {"reconstruction error": 0, "pseudo-likelihood": 0}, []
    for key, part in path.groupby(level=["variant", "hidden units"], sort=False):
        part = part.droplevel(["variant", "hidden units"]).sort_index()
        for (e0, a), (e1, b) in zip(part.iterrows(), list(part.iterrows())[1:]):
            change = b["test_log_likelihood"] - a["test_log_likelihood"]
            if abs(change) <= 2 * np.hypot(a["log_z_std"], b["log_z_std"]):
                continue
            steps += 1
            better = {"reconstruction error": b["reconstruction_error"] < a["reconstruction_error"],
                      "pseudo-likelihood": b["pseudo_likelihood"] > a["pseudo_likelihood"]}
            for name, improved in better.items():
                agree[name] += bool(improved) == (change > 0)
            if change < 0 and any(better.values()):
                kept = " and ".join(name for name, improved in better.items() if improved)
                fell.append(f"{_name(key)} (epoch {e0} to {e1}: {change:.1f} nats, while its {kept} improved)")
    epochs = sorted(path.index.get_level_values("epoch").unique())
    if not steps:
        return (f"Between the checkpoints (epochs {', '.join(map(str, epochs))}), no RBM's held-out likelihood "
                "changed by more than its AIS uncertainty, so the monitors cannot be checked against it here.")
    text = (f"Between consecutive checkpoints (epochs {', '.join(map(str, epochs))}), the AIS held-out "
            f"log-likelihood of an RBM changed beyond its uncertainty {steps} times; the reconstruction error "
            f"moved the same way (falling as the likelihood rose, rising as it fell) {agree['reconstruction error']} "
            f"of those times and the pseudo-likelihood {agree['pseudo-likelihood']}.")
    if fell:
        text += (" The likelihood fell while a monitor still improved for " + _join(fell) +
                 ": a monitor that keeps improving does not show that the model of the images does.")
    else:
        text += " No likelihood fell while a monitor still improved."
    return text


def size_sentence(table: pd.DataFrame) -> str:
    """How each sampler's held-out likelihood changes from the smallest to the largest hidden layer."""
    models = table.drop(index="base rate", level="variant")
    sizes = sorted(models.index.get_level_values("hidden units").unique())
    if len(sizes) < 2:
        return ""
    small, large = sizes[0], sizes[-1]
    parts = []
    for variant in models.index.get_level_values("variant").unique():
        a, b = models.loc[(variant, small)], models.loc[(variant, large)]
        gain = b["test_log_likelihood"] - a["test_log_likelihood"]
        noise = 2 * np.hypot(a["log_z_std"], b["log_z_std"])
        verdict = ("gains" if gain > noise else "loses" if gain < -noise else "changes within the AIS uncertainty by")
        parts.append(f"{variant} {verdict} {abs(gain):.1f} nats per image")
    worse = [v for v in models.index.get_level_values("variant").unique()
             if models.loc[(v, large), "test_log_likelihood"] < models.loc[(v, small), "test_log_likelihood"]]
    text = f"Going from {small} to {large} hidden units, " + _join(parts) + "."
    if worse:
        text += (f" So {_join(worse)} with {large} hidden units is a worse model of the test images than with "
                 f"{small}, despite having far more parameters: at this learning rate and number of epochs "
                 "more units did not buy a better model for that sampler.")
    return text


def _join(parts) -> str:
    parts = list(parts)
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def path_display(path: pd.DataFrame) -> pd.DataFrame:
    """:func:`training_path` as the paper shows it: log-likelihood ± AIS standard error, then the monitors."""
    out = pd.DataFrame(index=path.index)
    out["test log-likelihood (AIS)"] = [f"{v:.1f} ± {s:.1f}" for v, s in zip(path["test_log_likelihood"],
                                                                          path["log_z_std"])]
    out["reconstruction error"] = path["reconstruction_error"]
    out["pseudo-likelihood"] = path["pseudo_likelihood"]
    return out
