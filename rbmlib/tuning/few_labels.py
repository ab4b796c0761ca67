"""Few labels: do RBM features help when only 10, 100 or 1,000 images per class are labelled?

An RBM learns from images without labels, so its features could matter most
where labels are few. The feature maps are the final refits of the protocol
(:mod:`rbmlib.tuning.refit`), fitted on all training images of ``"trainval"``
without their labels: for seed s, the RBM of ``rbm-lr``'s best trial refit
with seed s (loaded from the RBM cache, where the evaluation left it) and the
random sigmoid features of ``random-lr``'s; pixels need none. Logistic
regression (``make_model("lr")``) then learns from a class-balanced labelled
subset of ``"train"``; its ``C`` is chosen on a validation subset of
``"val"`` of the same size, so the labels used to tune match the labels used to
learn, as they would in practice; the chosen model is scored once on ``"test"``.

The feature types are named by the registry's models (``lr``: pixels,
``rbm-lr``, ``random-lr``), so the rows line up with ``evaluation.csv``.

Test looks come after the whole protocol, never before: :func:`check_ready`
refuses unless every study is ready (the gate of ``rbmlib evaluate``) and the
refits of the feature models are evaluated. Every look goes into the test-set
ledger as ``few-labels/<model>/n=<n>`` (:func:`ledger_model`) *before* its
row is added to ``few_labels.csv``, so a crash between the two loses no look:
the rerun restores the row from the ledger instead of scoring again. The
test predictions of every fit are kept (``paths.few_labels_predictions_file``),
written before the look is recorded.

>>> few_labels("protocol2")   # resumable: rows already in few_labels.csv are skipped
"""

from __future__ import annotations

import json
import math
import time
import warnings

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rbmlib import data, metrics, paths
from rbmlib._device import machine_description
from rbmlib.models import get_model, make_model
from rbmlib.tuning import deadline, ledger, protocol
from rbmlib.tuning.presets import get_preset

#: The registry's models whose features are compared: pixels, the RBM's, the random control's.
FEATURE_MODELS = ("lr", "rbm-lr", "random-lr")
#: Labelled images per class (and validation images per class), as issue 13 asks.
LABELS_PER_CLASS = (10, 100, 1000)
#: Points per decade of the C grid. With 10 validation images per class, validation
#: accuracy moves in steps of 1 point, so a finer grid would only choose among ties and noise.
C_PER_DECADE = 1

COLUMNS = ["model", "labels_per_class", "seed", "trial_number", "C", "converged", "val_accuracy",
           "test_accuracy", "test_macro_f1", "seconds", "machine"]
_KEY = ["model", "labels_per_class", "seed"]
SOURCE = "rbmlib few-labels"
#: How the ledger's model names of few-labels looks begin (:func:`ledger_model`).
LEDGER_PREFIX = "few-labels/"


def ledger_model(model: str, labels_per_class: int) -> str:
    """The ledger's name of a few-labels look: ``"few-labels/rbm-lr/n=10"``."""
    return f"{LEDGER_PREFIX}{model}/n={labels_per_class}"


def applies_to(models) -> bool:
    """Whether a run of these models holds the few-labels study: all of ``FEATURE_MODELS``.

    Protocol 2 and the smoke preset do; protocol 1 (``paper``) has no ``random-lr``.
    The one rule that ``rbmlib few-labels --if-applicable`` (the Makefile) and
    notebook 05 both follow.
    """
    return set(FEATURE_MODELS) <= set(models)


def labels_per_class_for(preset) -> tuple[int, ...]:
    """The ``LABELS_PER_CLASS`` that the preset's training and validation subsets hold
    (all three on full splits; the smoke preset's 500 validation images hold only 10 per class)."""
    preset = get_preset(preset)
    sizes = [n for n in (preset.train_subset, preset.val_subset) if n is not None]
    if not sizes:  # full splits: thousands of images per class
        return LABELS_PER_CLASS
    return tuple(n for n in LABELS_PER_CLASS if n <= min(sizes) // len(data.CLASS_NAMES))


def c_grid(preset) -> np.ndarray:
    """The C values tried: the protocol's range for ``lr`` (its search space), on a log grid.

    ``C_PER_DECADE`` points per decade, both ends included.
    """
    dist = protocol.space_distributions(get_preset(preset).spaces["lr"], preset)["C"]
    low, high = math.log10(dist.low), math.log10(dist.high)
    return np.logspace(low, high, round((high - low) * C_PER_DECADE) + 1)


def tune_C(F, y, F_val, y_val, grid, *, random_state=None):
    """Logistic regression with its ``C`` chosen on validation, fitted on (F, y) alone.

    Each C of ``grid`` is fitted on (F, y) and scored on (F_val, y_val) by
    ``GridSearchCV`` with a ``PredefinedSplit`` of one fold; the winner is fitted
    again on (F, y) only (``GridSearchCV``'s own refit would add the validation
    rows to the labelled ones). Of tied C values (few validation images tie
    often) the first in ``grid`` wins: with an ascending grid, the strongest
    regularisation.

    Returns
    -------
    clf : LogisticRegression
        Fitted on (F, y).
    val_accuracy : float
        Its accuracy on (F_val, y_val).
    converged : bool
        lbfgs stopped before ``max_iter`` in the final fit.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, PredefinedSplit

    fold = np.r_[np.full(len(y), -1), np.zeros(len(y_val), dtype=int)]  # -1: always in training
    search = GridSearchCV(make_model("lr", random_state=random_state), {"C": list(grid)},
                          scoring="accuracy", cv=PredefinedSplit(fold), refit=False, error_score="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # recorded in `converged` instead
        search.fit(np.concatenate([F, F_val]), np.concatenate([y, y_val]))
        clf = make_model("lr", random_state=random_state, **search.best_params_).fit(F, y)
    return clf, float(search.best_score_), bool(np.max(clf.n_iter_) < clf.max_iter)


def read_results(preset) -> pd.DataFrame:
    """The preset's ``few_labels.csv`` (``COLUMNS``; empty frame if none yet)."""
    from rbmlib.tuning.refit import read_rows

    return read_rows(paths.few_labels_csv(get_preset(preset).name), COLUMNS)


def _append_row(path, row: dict) -> None:
    """Append one row of the few-labels table (flushed, synced and locked, as the refits' rows are)."""
    from rbmlib.tuning.refit import append_row

    append_row(path, row, COLUMNS)


def _best_trials(preset, storage):
    """``{feature model: its study's best trial}``, for the models with a feature map."""
    from rbmlib.tuning.study import load_study

    return {m: load_study(m, preset, storage=storage, create=False).best_trial
            for m in FEATURE_MODELS if get_model(m).features}


def _unevaluated(preset, pairs, best: dict) -> dict[str, list[int]]:
    """``{feature model: its seeds}`` of the (model, seed) ``pairs`` not yet evaluated with its current
    best trial (``best``: :func:`_best_trials`; pixels, ``lr``, need no refit)."""
    from rbmlib.tuning.refit import current_rows, params_key, read_evaluation, refit_params

    evaluations = read_evaluation(preset)
    missing = {}
    for model, trial in best.items():
        rows = current_rows(evaluations, preset, model, trial.number,
                            params_key(refit_params(model, preset, trial)))
        absent = sorted({s for m, s in pairs if m == model} - set(rows["seed"].astype(int)))
        if absent:
            missing[model] = absent
    return missing


def check_ready(preset, seeds, *, storage=None, pairs=None) -> str:
    """Refuse the few-labels looks before the protocol's own; returns the protocol's digest.

    The studies must be ready for the test look (``rbmlib evaluate``'s gate:
    budgets, no best value on an edge, the protocol unchanged since any test
    look), and every feature model evaluated for every seed with its current
    best trial (or, given ``pairs``, each (model, seed) of them): the feature
    maps are those refits.

    Raises
    ------
    rbmlib.tuning.protocol.NotReadyError
        Naming what is missing and the command that adds it.
    rbmlib.tuning.protocol.ProtocolLockedError
    """
    from rbmlib.tuning.refit import check_protocol

    preset = get_preset(preset)
    if not applies_to(preset.models):
        missing = [m for m in FEATURE_MODELS if m not in preset.models]
        raise ValueError(f"The few-labels study compares {', '.join(FEATURE_MODELS)}; the {preset.name} "
                         f"preset lacks {', '.join(missing)}.")
    digest = check_protocol(preset, storage)
    best = _best_trials(preset, storage)
    pairs = [(m, s) for m in FEATURE_MODELS for s in seeds] if pairs is None else pairs
    problems = [f"{model} seeds {', '.join(map(str, absent))} (trial {best[model].number})"
                for model, absent in _unevaluated(preset, pairs, best).items()]
    if problems:
        raise protocol.NotReadyError(
            f"The few-labels study reuses the final refits, and these are not evaluated yet: "
            f"{'; '.join(problems)}. Run `rbmlib evaluate --preset {preset.name}` first.")
    return digest


def _ready_pairs(preset, pairs, best: dict, X, cache_dir=None) -> set[tuple[str, int]]:
    """The (model, seed) ``pairs`` whose feature maps are ready without training: the model's refit
    of the seed evaluated (pixels need none), and its RBM, if it has one, in the cache.

    What ``few_labels(ready_only=True)`` scores while the evaluation still runs:
    right after a seed's refit, its RBM is in the cache (which a new checkout
    does not have), so the few-labels fits on it cost no RBM training. A model
    that one process at a time may run (``protocol.one_at_a_time``: random-lr)
    is not ready while a process holds its claim: its refits and these fits
    would share the memory that each of them fills.
    """
    from rbmlib.tuning.rbm_cache import data_fingerprint, rbm_key
    from rbmlib.tuning.refit import refit_params

    missing = _unevaluated(preset, pairs, best)
    # A model whose refits fill much of the memory (random-lr) waits until its evaluation is done.
    busy = {m for m, _ in pairs if m in preset.spaces and protocol.one_at_a_time(preset, m) and _held(preset, m)}
    ready = {(m, s) for m, s in pairs if s not in missing.get(m, ()) and m not in busy}
    cache_dir = paths.CACHE_DIR / "rbm" if cache_dir is None else cache_dir
    fingerprint = data_fingerprint(X)

    def cached(model, seed):
        if not get_model(model).uses_rbm:
            return True
        rbm = make_model(model, random_state=seed, **refit_params(model, preset, best[model]))[0]
        return (cache_dir / f"{rbm_key(rbm, fingerprint)}.npz").exists()

    return {(m, s) for m, s in ready if cached(m, s)}


def _held(preset, model: str) -> bool:
    """Whether another process holds ``model``'s claim (:mod:`rbmlib.tuning.claim`) now."""
    from rbmlib.tuning.claim import Busy, claim

    try:
        with claim(preset.name, model, "few-labels --ready-only"):
            return False
    except Busy:
        return True


def _expected_fit_s(results: pd.DataFrame, model: str, n: int) -> float | None:
    """The median length of the earlier few-labels fits of ``model`` at ``n`` labels per class."""
    done = results.loc[(results["model"] == model) & (results["labels_per_class"] == n), "seconds"].dropna()
    return float(done.median()) if len(done) else None


def feature_map(model: str, params: dict, seed: int, X, *, cache_dir=None):
    """The feature steps of ``model``'s final refit with ``seed``, fitted on X without labels.

    The RBM comes from the RBM cache, where the evaluation's refit put it (same
    parameters, data, seed, device and thread count); if it is not there, it is
    trained, and a line says so. Returns None for pixels.
    """
    from rbmlib.tuning.rbm_cache import fit_rbm

    spec = get_model(model)
    if not spec.features:
        return None
    features = make_model(model, random_state=seed, **params)[:-1]  # every step but the classifier
    if not spec.uses_rbm:
        return features.fit(X)
    if len(features) > 1:
        raise ValueError(f"{model}: only a pipeline of an RBM and the classifier is supported")
    rbm, cached = fit_rbm(features.named_steps["rbm"], X, cache_dir=cache_dir)
    if not cached:
        tqdm.write(f"{model} seed {seed}: its RBM was not in the cache (another device or thread count "
                   "than the evaluation's?), so it was trained again")
    features.steps[0] = ("rbm", rbm)
    return features


def _restore_from_ledger(preset, todo) -> list[tuple]:
    """Rows of ``todo`` whose look is in the ledger but not in the CSV (a crash between the two).

    Their rows are written from the ledger; the ones still to score are returned.
    """
    looks = ledger.read(preset.name)
    path, left = paths.few_labels_csv(preset.name), []
    for model, n, seed in todo:
        look = ledger.last_look(looks, ledger_model(model, n), seed, source=SOURCE)
        if look is None:
            left.append((model, n, seed))
            continue
        params = json.loads(look["params"])
        _append_row(path, {"model": model, "labels_per_class": n, "seed": seed,
                           "trial_number": look["trial_number"], "C": params["C"],
                           "converged": params["converged"], "val_accuracy": np.nan,
                           "test_accuracy": look["test_accuracy"], "test_macro_f1": look["test_macro_f1"],
                           "seconds": np.nan})
        tqdm.write(f"{ledger_model(model, n)} seed {seed}: restored from the ledger (scored before a crash)")
    return left


def _fit_and_score(splits, apply, F_test, y_test, n: int, seed: int, grid) -> tuple[dict, np.ndarray]:
    """Seed ``seed``'s subsets of ``n`` per class, C chosen on validation, scored on the test split.

    Returns the row's scores (``C`` to ``machine`` of ``COLUMNS``) and the test predictions.
    """
    start = time.perf_counter()
    rows = data.pick_per_class(splits.y, n, random_state=seed)  # nested in n for one seed
    val_rows = data.pick_per_class(splits.y_val, n, random_state=seed)
    clf, val_accuracy, converged = tune_C(apply(splits.X[rows]), splits.y[rows],
                                          apply(splits.X_val[val_rows]), splits.y_val[val_rows], grid,
                                          random_state=seed)
    y_pred = clf.predict(F_test)
    scores = metrics.evaluate(y_test, y_pred)
    return {"C": float(clf.C), "converged": converged, "val_accuracy": val_accuracy,
            "test_accuracy": scores["accuracy"], "test_macro_f1": scores["macro_f1"],
            "seconds": round(time.perf_counter() - start, 2), "machine": machine_description()}, y_pred


def _record(preset, digest: str, row: dict, y_pred) -> None:
    """The test predictions, then the look in the ledger, then the CSV row: a crash between loses no look.

    The predictions are kept for paired comparisons on the same test images
    (``rbmlib.stats``), as the refits' are.
    """
    from rbmlib.tuning.refit import save_predictions

    model, n, seed = row["model"], row["labels_per_class"], row["seed"]
    save_predictions(paths.few_labels_predictions_file(preset.name, model, n, seed), y_pred)
    look = {"features": model, "labels_per_class": n, "C": row["C"], "converged": row["converged"]}
    ledger.append(preset.name, {"digest": digest, "model": ledger_model(model, n), "seed": seed,
                                "trial_number": row["trial_number"],
                                "params": json.dumps(look, sort_keys=True),
                                "test_accuracy": row["test_accuracy"], "test_macro_f1": row["test_macro_f1"],
                                "source": SOURCE})
    _append_row(paths.few_labels_csv(preset.name), row)


def few_labels(preset="protocol2", *, labels_per_class=None, seeds=None, storage=None,
               cache_dir=None, ready_only=False, until=None) -> pd.DataFrame:
    """Score logistic regression on pixels, RBM and random features with few labels, once each.

    Parameters
    ----------
    preset : str or Preset
        Needs the models of ``FEATURE_MODELS``, tuned and evaluated.
    labels_per_class : iterable of int, optional
        Labelled training images per class; the validation subset has as many.
        Default: :func:`labels_per_class_for` the preset.
    seeds : iterable of int, optional
        Default: the preset's ``refit_random_states`` of ``rbm-lr``. Seed s
        picks the refit of seed s as the feature map and draws subsets s.
    storage : str, optional
        Optuna storage URL, as given to ``tune``.
    cache_dir : path-like, optional
        RBM cache (default ``paths.CACHE_DIR / "rbm"``).
    ready_only : bool, default=False
        Only the (features, seed) whose refit is evaluated and whose RBM, if it
        has one, is in the cache (the rest are left for a later call, without
        an error): what ``make tune`` runs after each model's refits, so that
        the fits on a seed's RBM follow its refit before a session ends and
        takes the RBM cache with it.
    until : datetime.datetime, optional
        Start no fit that is not expected to end before then (the median of the
        earlier fits of the same features and labels; unknown: whether it has passed).

    Returns
    -------
    pandas.DataFrame
        All rows of ``few_labels.csv`` (``COLUMNS``).

    Raises
    ------
    rbmlib.tuning.protocol.NotReadyError
        Before the studies are ready or the feature models are evaluated.
    rbmlib.tuning.deadline.DeadlineStop
        With ``until``: the next fit would not end in time (the looks before it are recorded).
    rbmlib.tuning.ledger.RepeatedLookError
        A look the ledger holds under another set-up (one that cannot be restored).
    """
    from rbmlib.tuning.objective import Splits
    from rbmlib.tuning.refit import refit_params

    preset = get_preset(preset)
    seeds = [int(s) for s in (preset.refit_random_states["rbm-lr"] if seeds is None else seeds)]
    if labels_per_class is None:
        labels_per_class = labels_per_class_for(preset)
    labels_per_class = [int(n) for n in labels_per_class]
    done = set(map(tuple, read_results(preset)[_KEY].astype({"labels_per_class": int, "seed": int})
                   .itertuples(index=False)))
    todo = [(m, n, s) for m in FEATURE_MODELS for s in seeds for n in labels_per_class
            if (m, n, s) not in done]
    X_all = None
    if todo and ready_only:
        X_all, _ = data.load_split("trainval", subset=preset.trainval_subset)
        ready = _ready_pairs(preset, {(m, s) for m, _, s in todo}, _best_trials(preset, storage), X_all,
                             cache_dir)
        todo = [(m, n, s) for m, n, s in todo if (m, s) in ready]
    if not todo:
        return read_results(preset)
    # Before the test split is read: the protocol finished and evaluated, no second look.
    digest = check_ready(preset, seeds, storage=storage,
                         pairs=sorted({(m, s) for m, _, s in todo}) if ready_only else None)
    todo = _restore_from_ledger(preset, todo)
    ledger.check_unscored(preset.name, [(ledger_model(m, n), s) for m, n, s in todo])
    if not todo:
        return read_results(preset)
    best = _best_trials(preset, storage)
    grid = c_grid(preset)
    if X_all is None:  # the feature maps' data
        X_all, _ = data.load_split("trainval", subset=preset.trainval_subset)
    splits = Splits.load(preset)
    X_test, y_test = data.load_split("test", subset=preset.test_subset)
    bar = tqdm(total=len(todo), desc=f"few labels ({preset.name})", unit="fit")
    for model, seed in dict.fromkeys((m, s) for m, _, s in todo):  # one feature map per (model, seed)
        params = refit_params(model, preset, best[model]) if model in best else {}
        features = feature_map(model, params, seed, X_all, cache_dir=cache_dir)
        apply = (lambda A: A) if features is None else features.transform
        F_test = apply(X_test)
        for n in [n for m, n, s in todo if (m, s) == (model, seed)]:
            if not deadline.ends_before(_expected_fit_s(read_results(preset), model, n), until):
                bar.close()
                raise deadline.DeadlineStop(f"the next few-labels fit ({ledger_model(model, n)} seed {seed}) "
                                            f"would not end before {until:%Y-%m-%d %H:%M}")
            scores, y_pred = _fit_and_score(splits, apply, F_test, y_test, n, seed, grid)
            row = {"model": model, "labels_per_class": n, "seed": seed,
                   "trial_number": best[model].number if model in best else None, **scores}
            _record(preset, digest, row, y_pred)
            bar.update()
            tqdm.write(f"{ledger_model(model, n)} seed {seed}: C {row['C']:.3g}"
                       f"{'' if row['converged'] else ' (lbfgs did not converge)'}, "
                       f"val accuracy {row['val_accuracy']:.4f}, test accuracy {row['test_accuracy']:.4f}, "
                       f"macro F1 {row['test_macro_f1']:.4f} ({row['seconds']:.0f}s)")
    bar.close()
    return read_results(preset)
