"""Where a preset's studies stand, and how long they are likely to take (``rbmlib status``).

Read-only: the studies are opened as :func:`rbmlib.report.search.read_studies`
opens them, so this may run beside ``make tune``. The hours left are a rough
guide: the trials a study still lacks times the mean length of its finished
trials (:func:`hours_left`).
"""

from __future__ import annotations

import datetime
import statistics

import pandas as pd
from optuna.trial import TrialState

from rbmlib.tuning import ledger, protocol
from rbmlib.tuning.presets import get_preset

COLUMNS = ["model", "finished", "complete", "budget", "best val accuracy", "best trial",
           "minutes per trial", "hours left", "test looks"]


def progress_table(preset, *, storage: str | None = None) -> pd.DataFrame:
    """One row per model of ``preset``: trials so far against the budget, best value, time.

    ``budget`` is "30 (15 complete)" for a preset with a floor of complete
    trials; ``minutes per trial`` is the mean over finished trials; ``hours
    left`` is blank before the first finished trial; ``test looks`` counts
    the model's refits scored on the test split (the ledger).
    """
    from rbmlib.tuning.study import MissingStudyError, load_study

    preset = get_preset(preset)
    looks = ledger.read(preset.name)["model"].value_counts()
    rows = []
    for model in preset.models:
        budget = preset.n_trials[model]
        row = {"model": model, "finished": 0, "complete": 0,
               "budget": f"{budget}" + (f" ({preset.min_complete} complete)" if preset.min_complete else ""),
               "test looks": int(looks.get(model, 0))}
        try:
            study = load_study(model, preset, storage=storage, create=False)
        except MissingStudyError:
            rows.append(row)
            continue
        row["finished"], row["complete"] = protocol.counts(study)
        if row["complete"]:
            row["best val accuracy"], row["best trial"] = study.best_value, study.best_trial.number
        row["minutes per trial"] = _mean_minutes(study)
        row["hours left"] = hours_left(study, budget, preset.min_complete)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS).astype({"best trial": "Int64"})


def hours_left(study, n_trials: int, min_complete: int = 0) -> float | None:
    """Expected hours until ``study`` has its budget, at its own mix of complete and pruned trials.

    Hyperband prunes a share of the trials, and a study short of complete
    trials runs on until it has them: at the share ``s`` of complete trials so
    far, ``c`` more complete ones take about ``c / s`` trials. The trials left,
    ``max(finished lacking, c / s)``, times the mean length of the finished ones.
    None before the first finished trial, or while complete ones are lacking and
    none has completed yet (no share to go by).
    """
    minutes = _mean_minutes(study)
    if minutes is None:
        return None
    finished, complete = protocol.counts(study)
    need_finished, need_complete = protocol.shortfall(study, n_trials, min_complete)
    if need_complete and not complete:
        return None
    trials = max(need_finished, need_complete * finished / complete if need_complete else 0)
    return trials * minutes / 60


def _mean_minutes(study) -> float | None:
    durations = [(t.datetime_complete - t.datetime_start) / datetime.timedelta(minutes=1)
                 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
                 if t.datetime_start and t.datetime_complete]
    return statistics.mean(durations) if durations else None
