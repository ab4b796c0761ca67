"""Final numbers: refit each study's best parameters on "trainval", score once on "test".

With :mod:`rbmlib.tuning.few_labels` (which reuses these refits), this is the
only module that loads the test split, and every look it takes is recorded in the test-set ledger (:mod:`rbmlib.tuning.ledger`), which also
refuses a second look at the same (preset, model, seed). For every model and every
seed of the preset, the best trial's parameters (chosen on the validation
split) are refit on all 60,000 training images and scored on the 10,000 test
images. Networks train for the best trial's best epoch (early stopping on the
validation split found it), so no test data decides anything.

Rows are appended to ``evaluation.csv`` as each fit finishes (with the machine
that ran it: ``rbmlib._device.machine_description``), and the test
predictions saved beside them (``paths.predictions_file``: the results notebook
draws confusion matrices and per-class scores from them without refitting). A
rerun skips the (model, seed) pairs that have both for the same best trial, so a
killed evaluation resumes; each look goes into the ledger before its row, and a
refit killed between the two gets its row back from the ledger. A pair that the
ledger shows scored already is not
scored again, whatever changed since (a new best trial after more tuning, a
lost predictions file): that would be a second look. :func:`summarize` then
writes ``summary.csv``.
"""

from __future__ import annotations

import fcntl
import json
import os
import time

import numpy as np
import pandas as pd
from optuna.trial import TrialState
from tqdm.auto import tqdm

from rbmlib import data, metrics, paths
from rbmlib._device import machine_description
from rbmlib.tuning import deadline, ledger, progress, protocol
from rbmlib.models import get_model, make_model
from rbmlib.tuning.presets import get_preset
from rbmlib.tuning.rbm_cache import attach_rbm, fit_feature_steps
from rbmlib.tuning.stores import with_driver
from rbmlib.tuning.study import FINISHED, default_storage, load_study

EVALUATION_COLUMNS = ["model", "seed", "trial_number", "test_accuracy", "test_macro_f1", "seconds",
                      "refit_params", "machine"]
SUMMARY_COLUMNS = [
    "model", "n_trials", "n_pruned", "best_trial", "best_val_accuracy", "best_val_macro_f1",
    "test_accuracy_mean", "test_accuracy_std", "test_macro_f1_mean", "test_macro_f1_std",
    "n_seeds", "best_params", "refit_params", "tune_seconds", "evaluate_seconds",
]


def refit_params(model: str, preset, trial) -> dict:
    """Estimator arguments of the final refit: the trial's, with its best epoch count.

    Early stopping is switched off: it would hold out part of "trainval", and
    the number of epochs is already known from the trial.
    """
    params = {**get_preset(preset).fixed_params(model), **trial.params}
    spec = get_model(model)
    if spec.has_epochs and "best_epoch" in trial.user_attrs:
        params[spec.epochs_param] = int(trial.user_attrs["best_epoch"])
        params[f"{spec.classifier_prefix}early_stopping"] = False
    return params


def fit_final(model: str, params: dict, seed: int, X, y, *, cache_dir=None):
    """Fit ``make_model(model, random_state=seed, **params)`` on (X, y).

    The RBM of a pipeline goes through the RBM cache (:func:`fit_feature_steps`),
    so a resumed evaluation (or the other RBM model, if it chose the same RBM)
    does not train it again.
    """
    estimator = make_model(model, random_state=seed, **params)
    spec = get_model(model)
    if not spec.uses_rbm:
        return estimator.fit(X, y)
    if not spec.features:  # a network started from the RBM: it reads the pixels
        attach_rbm(estimator, X, cache_dir=cache_dir)
        return estimator.fit(X, y)
    F, _ = fit_feature_steps(estimator, X, cache_dir=cache_dir)
    estimator[-1].fit(F, y)
    return estimator


def data_ratio(preset) -> float:
    """A refit's training images over a trial's (60,000 over 50,000 on the full splits)."""
    preset = get_preset(preset)
    return data.split_size("trainval", subset=preset.trainval_subset) / data.split_size(
        "train", subset=preset.train_subset)


def refit_hours_left(preset, model: str, study, evaluations: pd.DataFrame) -> float | None:
    """Expected hours of ``model``'s refits not yet evaluated (None before its first complete trial).

    Each as :func:`rbmlib.tuning.deadline.expected_refit_s` expects it: the
    median of its refits so far, else its best trial's length scaled to the refit's data.
    """
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    best = study.best_trial
    key = params_key(refit_params(model, preset, best))
    done = current_rows(evaluations, preset, model, best.number, key)
    left = len(set(get_preset(preset).refit_random_states[model]) - set(done["seed"].astype(int)))
    if not left:
        return 0.0
    seconds = deadline.expected_refit_s(list(done["seconds"]), best, data_ratio(preset),
                                        study.get_trials(deepcopy=False))
    return None if seconds is None else left * seconds / 3600


def params_key(params: dict) -> str:
    """The ``refit_params`` of an evaluation row: the refit's arguments as sorted JSON."""
    return json.dumps(params, sort_keys=True)


def read_evaluation(preset) -> pd.DataFrame:
    """The preset's per-seed rows so far (empty frame with the columns if none).

    A refit done again (its predictions had gone missing) keeps its latest row.
    """
    rows = read_rows(paths.evaluation_csv(get_preset(preset).name), EVALUATION_COLUMNS)
    key = ["model", "seed", "trial_number", "refit_params"]
    return rows.drop_duplicates(key, keep="last").reset_index(drop=True)


def read_rows(path, columns) -> pd.DataFrame:
    """The rows that :func:`append_row` wrote to ``path``, as ``columns`` (empty frame if none yet).

    A column that the file lacks (it was written by an older version) is empty.
    """
    if not path.exists():
        return pd.DataFrame(columns=columns)
    rows = pd.read_csv(path)
    for column in set(columns) - set(rows.columns):
        rows[column] = None
    return rows[columns]


def current_rows(evaluations: pd.DataFrame, preset, model: str, trial_number,
                 refit_params: str) -> pd.DataFrame:
    """The rows a summary averages: ``model``'s refits of ``trial_number`` for the preset's seeds.

    ``refit_params`` (a :func:`params_key`) must match too: a study tuned afresh
    numbers its trials from 0 again, and the rows of the old study's trial 0
    must not pass for the new one's.
    """
    seeds = get_preset(preset).refit_random_states[model]
    return evaluations[(evaluations["model"] == model) & (evaluations["trial_number"] == trial_number)
                       & evaluations["seed"].isin(seeds)
                       & (evaluations["refit_params"] == refit_params)]


def read_predictions(preset, model: str, trial_number: int, seeds) -> dict[int, np.ndarray]:
    """``{seed: test predictions}`` of a model's refits (the seeds that have them)."""
    name = get_preset(preset).name
    files = {s: paths.predictions_file(name, model, trial_number, s) for s in seeds}
    return {s: np.load(f) for s, f in files.items() if f.exists()}


def save_predictions(path, y_pred) -> None:
    """Write atomically: the evaluation row that follows must never point at half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.part.npy")
    np.save(tmp, np.asarray(y_pred, dtype=np.int8))
    os.replace(tmp, path)


def append_row(path, row: dict, columns=EVALUATION_COLUMNS) -> None:
    """Append one row, with the header if the file is empty (the file is the checkpoint).

    Under an exclusive lock: ``make tune`` evaluates two chains of models side
    by side, and both may append, or start the file, at the same moment.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0, os.SEEK_END)  # another process may have written since open()
            pd.DataFrame([row], columns=columns).to_csv(f, header=f.tell() == 0, index=False)
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def evaluate(models=None, preset="paper", *, storage: str | None = None, seeds=None,
             cache_dir=None, until=None) -> pd.DataFrame:
    """Refit the best parameters of each study and score them once on the test split.

    Parameters
    ----------
    models : iterable of str, optional
        Default: all of the preset's models.
    preset : str or Preset
    storage : str, optional
        Optuna storage URL, as given to ``tune`` (default: the preset's SQLite files).
    seeds : iterable of int, optional
        Default: the preset's ``refit_random_states`` of each model.
    cache_dir : path-like, optional
        RBM cache (default ``paths.CACHE_DIR / "rbm"``).
    until : datetime.datetime, optional
        Start no refit that is not expected to end before then
        (:func:`rbmlib.tuning.deadline.expected_refit_s`).

    Returns
    -------
    pandas.DataFrame
        All rows of ``evaluation.csv`` (``EVALUATION_COLUMNS``).

    Raises
    ------
    rbmlib.tuning.deadline.DeadlineStop
        With ``until``: the next refit would not end in time (the rows before it are written).
    """
    preset = get_preset(preset)
    models = list(models or preset.models)
    best, trials = {}, {}
    for model in models:  # every study must exist and have a complete trial before any fit
        study = load_study(model, preset, storage=storage, create=False)
        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            raise ValueError(f"Study {study.study_name!r} has no complete trial to evaluate.")
        best[model], trials[model] = study.best_trial, study.get_trials(deepcopy=False)
    done = read_evaluation(preset)
    done_keys = set(zip(done["model"], done["seed"], done["trial_number"], done["refit_params"]))
    keys = {m: params_key(refit_params(m, preset, best[m])) for m in models}
    todo = [(m, s) for m in models for s in (preset.refit_random_states[m] if seeds is None else seeds)
            if (m, s, best[m].number, keys[m]) not in done_keys
            or not paths.predictions_file(preset.name, m, best[m].number, s).exists()]
    if todo:
        # Before any data is read: every study finished, the protocol unchanged, no second look.
        digest = check_protocol(preset, storage)
        todo = _restore_from_ledger(preset, todo, best, keys)
        ledger.check_unscored(preset.name, todo)
    if todo:
        X, y = data.load_split("trainval", subset=preset.trainval_subset)
        X_test, y_test = data.load_split("test", subset=preset.test_subset)
        path = paths.evaluation_csv(preset.name)
        ratio = data_ratio(preset)
        seconds = {m: list(current_rows(done, preset, m, best[m].number, keys[m])["seconds"]) for m in models}
        for model, seed in tqdm(todo, desc=f"evaluate ({preset.name})", unit="fit"):
            expected = deadline.expected_refit_s(seconds[model], best[model], ratio, trials[model])
            if not deadline.ends_before(expected, until):
                raise deadline.DeadlineStop(
                    f"{preset.name}/{model} seed {seed}: its refit (about {(expected or 0) / 60:.0f} min) "
                    f"would not end before {until:%Y-%m-%d %H:%M} (--until)")
            start = time.perf_counter()
            params = refit_params(model, preset, best[model])
            estimator = fit_final(model, params, seed, X, y, cache_dir=cache_dir)
            y_pred = estimator.predict(X_test)
            scores = metrics.evaluate(y_test, y_pred)
            row = {"model": model, "seed": seed, "trial_number": best[model].number,
                   "test_accuracy": scores["accuracy"], "test_macro_f1": scores["macro_f1"],
                   "seconds": round(time.perf_counter() - start, 2), "refit_params": keys[model],
                   "machine": machine_description()}
            # The predictions, then the look in the ledger, then the row: a crash between any two
            # loses no look (a rerun restores the row from the ledger: _restore_from_ledger).
            save_predictions(paths.predictions_file(preset.name, model, best[model].number, seed), y_pred)
            ledger.append(preset.name, {"digest": digest, "model": model, "seed": seed,
                                        "trial_number": best[model].number,
                                        "params": keys[model], "test_accuracy": scores["accuracy"],
                                        "test_macro_f1": scores["macro_f1"]})
            append_row(path, row)
            seconds[model].append(row["seconds"])
            tqdm.write(f"{model} seed {seed}: test accuracy {scores['accuracy']:.4f}, "
                       f"macro F1 {scores['macro_f1']:.4f} ({row['seconds']:.0f}s)")
    return read_evaluation(preset)


def _restore_from_ledger(preset, todo, best, keys) -> list[tuple[str, int]]:
    """The (model, seed) of ``todo`` still to score; the rest are restored from the ledger.

    A refit whose look the ledger holds, for the same trial and refit
    parameters, with its predictions kept, was killed before its row was
    written: the row is written from the ledger (its ``seconds`` unknown)
    instead of scoring the test split again.
    """
    looks = ledger.read(preset.name)
    path, left = paths.evaluation_csv(preset.name), []
    for model, seed in todo:
        look = ledger.last_look(looks, model, seed, trial_number=best[model].number, params=keys[model])
        if look is None or not paths.predictions_file(preset.name, model, best[model].number, seed).exists():
            left.append((model, seed))
            continue
        append_row(path, {"model": model, "seed": seed, "trial_number": best[model].number,
                          "test_accuracy": look["test_accuracy"], "test_macro_f1": look["test_macro_f1"],
                          "seconds": np.nan, "refit_params": keys[model]})
        tqdm.write(f"{model} seed {seed}: restored from the ledger (scored before a crash)")
    return left


def check_protocol(preset, storage) -> str:
    """The protocol's digest, once every study of it is ready and it has not changed since a test look.

    Raises
    ------
    rbmlib.tuning.protocol.NotReadyError, rbmlib.tuning.protocol.ProtocolLockedError
    """
    if not preset.preregistered:
        return protocol.digest(preset)
    studies = {}
    for model in preset.models:
        try:
            studies[model] = load_study(model, preset, storage=storage, create=False)
        except KeyError:
            studies[model] = None
    current = protocol.check_ready(preset, studies)
    earlier = set(ledger.read(preset.name)["digest"].dropna()) - {current}
    if earlier:
        raise protocol.ProtocolLockedError(
            f"The {preset.name} protocol looked at the test set as {', '.join(sorted(earlier))}, and the "
            f"code now states it as {current}: a protocol cannot change after its test look. Restore it, "
            "or define a new preset.")
    return current


def summarize(preset="paper", *, storage: str | None = None, models=None) -> pd.DataFrame:
    """Write ``summary.csv``: one row per model that has a study (``SUMMARY_COLUMNS``).

    Test scores are the mean and sample standard deviation over the seeds
    evaluated for the study's current best trial; accuracies are fractions.
    """
    preset = get_preset(preset)
    evaluations = read_evaluation(preset)
    rows = []
    for model in models or preset.models:
        try:
            study = load_study(model, preset, storage=storage, create=False)
        except KeyError:
            continue
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state in FINISHED]
        complete = [t for t in finished if t.state == TrialState.COMPLETE]
        best = study.best_trial if complete else None
        refit = params_key(refit_params(model, preset, best)) if best else None
        ev = current_rows(evaluations, preset, model, best.number if best else -1, refit)
        rows.append({
            "model": model,
            "n_trials": len(finished),
            "n_pruned": len(finished) - len(complete),
            "best_trial": best.number if best else None,
            "best_val_accuracy": best.value if best else None,
            "best_val_macro_f1": best.user_attrs.get("val_macro_f1") if best else None,
            "test_accuracy_mean": ev["test_accuracy"].mean() if len(ev) else np.nan,
            "test_accuracy_std": ev["test_accuracy"].std(ddof=1) if len(ev) > 1 else np.nan,
            "test_macro_f1_mean": ev["test_macro_f1"].mean() if len(ev) else np.nan,
            "test_macro_f1_std": ev["test_macro_f1"].std(ddof=1) if len(ev) > 1 else np.nan,
            "n_seeds": len(ev),
            "best_params": json.dumps(best.params, sort_keys=True) if best else None,
            "refit_params": refit,
            "tune_seconds": progress.compute_seconds(study, progress.last_heartbeats(
                with_driver(storage) if storage else default_storage(preset.name, model), study.study_name)),
            "evaluate_seconds": round(float(ev["seconds"].sum()), 1),
        })
    # Six decimals: enough for 1/10,000 of accuracy, and a deterministic model's
    # identical seeds show a standard deviation of 0 rather than 1e-16.
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS).round(6)
    path = paths.summary_csv(preset.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")  # readers never see half a file
    summary.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return summary
