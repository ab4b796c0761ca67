"""Where a preset's studies stand, and how long they are likely to take (``rbmlib status``).

Read-only: the studies are opened as :func:`rbmlib.report.search.read_studies`
opens them, so this may run beside ``make tune``. The hours left are a rough
guide: the trials a study still lacks (as many as its budget lacks, more if
Hyperband goes on pruning) times the mean length of its finished trials.
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
        minutes = _mean_minutes(study)
        need = max(protocol.shortfall(study, budget, preset.min_complete))
        if row["complete"]:
            row["best val accuracy"], row["best trial"] = study.best_value, study.best_trial.number
        if minutes is not None:
            row["minutes per trial"], row["hours left"] = minutes, need * minutes / 60
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS).astype({"best trial": "Int64"})


def _mean_minutes(study) -> float | None:
    durations = [(t.datetime_complete - t.datetime_start) / datetime.timedelta(minutes=1)
                 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
                 if t.datetime_start and t.datetime_complete]
    return statistics.mean(durations) if durations else None
