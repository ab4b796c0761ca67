"""Where a preset's studies stand, and how long they are likely to take (``rbmlib status``).

Read-only: the studies are opened as :func:`rbmlib.report.search.read_studies`
opens them, so this may run beside ``make tune``. The hours left are a rough
guide: the trials a study still lacks times the mean length of its latest
finished trials (:func:`hours_left`).
"""

from __future__ import annotations

import datetime
import statistics
from pathlib import Path

import pandas as pd
from optuna.trial import TrialState

from rbmlib.tuning import ledger, protocol
from rbmlib.tuning.deadline import trial_seconds
from rbmlib.tuning.presets import get_preset

COLUMNS = ["model", "finished", "complete", "budget", "best val accuracy", "best trial",
           "minutes per trial", "hours left", "refit hours", "test looks"]


def progress_table(preset, *, storage: str | None = None, studies=None) -> pd.DataFrame:
    """One row per model of ``preset``: trials so far against the budget, best value, time.

    ``budget`` is "30 (15 complete)" for a preset with a floor of complete
    trials (with ``equal_finished``, the finished trials that the study with
    the most has, if more: it grows while a study lacks complete trials);
    ``minutes per trial`` is the mean over finished trials; ``hours
    left`` is blank before the first finished trial; ``refit hours`` are those
    of its refits not yet evaluated, at its best trial so far
    (:func:`rbmlib.tuning.refit.refit_hours_left`); ``test looks`` counts
    the model's refits scored on the test split (the ledger). ``studies``:
    those :func:`~rbmlib.tuning.study.load_studies` gives, if already open.
    """
    from rbmlib.tuning.refit import read_evaluation, refit_hours_left
    from rbmlib.tuning.study import load_studies

    preset = get_preset(preset)
    looks = ledger.read(preset.name)["model"].value_counts()
    evaluations = read_evaluation(preset)
    if studies is None:
        studies = load_studies(preset, storage=storage)
    finished = {m: protocol.counts(s)[0] for m, s in studies.items() if s is not None}
    targets = protocol.finished_targets(preset, finished)
    # Hours left: to the count the studies are expected to end at (the most any is expected to
    # need, where they follow it), not to today's, which grows while a study lacks complete trials.
    expected = protocol.finished_targets(preset, {m: expected_finished(s, targets[m], preset.min_complete)
                                                  for m, s in studies.items() if s is not None})
    rows = []
    for model, study in studies.items():
        row = {"model": model, "finished": 0, "complete": 0,
               "budget": f"{targets[model]}" + (f" ({preset.min_complete} complete)" if preset.min_complete else ""),
               "test looks": int(looks.get(model, 0))}
        if study is None:
            rows.append(row)
            continue
        row["finished"], row["complete"] = protocol.counts(study)
        if row["complete"]:
            row["best val accuracy"], row["best trial"] = study.best_value, study.best_trial.number
        row["minutes per trial"] = _mean_minutes(study)
        row["hours left"] = hours_left(study, expected[model], preset.min_complete)
        row["refit hours"] = refit_hours_left(preset, model, study, evaluations)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS).astype({"best trial": "Int64"})


def expected_finished(study, n_trials: int, min_complete: int = 0) -> int:
    """The finished trials ``study`` is expected to end with: ``n_trials``, or more where it lacks
    complete ones (at its recent share of complete trials, as in :func:`hours_left`)."""
    left = _trials_left(study, n_trials, min_complete)
    if left is None:  # no share to go by yet: at least the finished ones it lacks
        left = protocol.shortfall(study, n_trials, min_complete)[0]
    return protocol.counts(study)[0] + round(left)


def hours_left(study, n_trials: int, min_complete: int = 0) -> float | None:
    """Expected hours until ``study`` has its budget, at its own mix of complete and pruned trials.

    Hyperband prunes a share of the trials, and a study short of complete
    trials runs on until it has them: at the share ``s`` of complete trials
    among its latest (:func:`complete_share`), ``c`` more complete ones take
    about ``c / s`` trials. The trials left, ``max(finished lacking, c / s)``,
    times the mean length of the latest finished ones (:func:`_mean_minutes`).
    None before the first finished trial, or while complete ones are lacking
    and none has completed yet (no share to go by).
    """
    minutes = _mean_minutes(study)
    trials = _trials_left(study, n_trials, min_complete)
    return None if minutes is None or trials is None else trials * minutes / 60


def _trials_left(study, n_trials: int, min_complete: int) -> float | None:
    """``max(finished lacking, complete lacking / complete_share)``; None where complete ones
    are lacking and there is no share to go by."""
    need_finished, need_complete = protocol.shortfall(study, n_trials, min_complete)
    if not need_complete:
        return need_finished
    share = complete_share(study)
    return max(need_finished, need_complete / share) if share else None


#: Finished trials whose share of complete ones predicts the next: Hyperband promotes a trial
#: that beats the trials that reached its rung before it, so later trials complete less often.
RECENT_TRIALS = 20


def complete_share(study) -> float | None:
    """The share of complete trials among the study's latest :data:`RECENT_TRIALS` finished ones
    (all of them if none of those completed); None before the first finished trial."""
    finished = [t.state == TrialState.COMPLETE for t in
                sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)),
                       key=lambda t: t.number)]
    if not finished:
        return None
    recent = finished[-RECENT_TRIALS:]
    return sum(recent) / len(recent) if any(recent) else sum(finished) / len(finished)


def _mean_minutes(study) -> float | None:
    """The mean length of the study's latest :data:`RECENT_TRIALS` finished trials, in minutes.

    The latest, not all: a range widened at an edge (protocol 2's RBMs, to 16,384 units
    and 200 epochs) makes later trials longer, and the machine changes between sessions.
    """
    finished = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)),
                      key=lambda t: t.number)
    durations = [s / 60 for t in finished if (s := trial_seconds(t)) is not None]
    return statistics.mean(durations[-RECENT_TRIALS:]) if durations else None


# ----------------------------------------------------------------------------- compute time

def last_heartbeats(url: str, study_name: str, state: str = "FAIL") -> dict[int, datetime.datetime]:
    """``{trial number: last heartbeat}`` of a study's failed trials (or those in ``state``), in local time.

    A trial cut short (its process killed at the end of a session) is marked
    failed only when a later run notices it, so its own end time says nothing of
    how long it ran; its last heartbeat does. Optuna has no public reader for
    them: this reads its ``trial_heartbeats`` table, stored in UTC by SQLite's
    ``CURRENT_TIMESTAMP``. Empty where the storage keeps none.
    """
    import sqlalchemy

    parsed = sqlalchemy.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return {}  # connecting would create an empty file where no study is yet
    query = sqlalchemy.text(
        "SELECT t.number, h.heartbeat FROM trials t JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
        "JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :name AND t.state = :state")
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(query, {"name": study_name, "state": state}).all()
    except sqlalchemy.exc.SQLAlchemyError:  # no heartbeat table: a storage made without heartbeats
        return {}
    finally:
        engine.dispose()
    local = datetime.datetime.now().astimezone().tzinfo
    return {int(number): pd.Timestamp(beat).tz_localize("UTC").tz_convert(local).tz_localize(None).to_pydatetime()
            for number, beat in rows}


def read_heartbeats(preset, studies: dict) -> dict[str, dict[int, datetime.datetime]]:
    """``{model: last_heartbeats(...)}`` of a preset's studies in their default files (None: skipped)."""
    from rbmlib.tuning.study import default_storage

    name = get_preset(preset).name
    return {model: last_heartbeats(default_storage(name, model), study.study_name)
            for model, study in studies.items() if study is not None}


def running_trials(preset, studies: dict, now: datetime.datetime | None = None) -> list[str]:
    """One line per trial that a study holds as running: since when, and whether its process still runs.

    A trial whose heartbeat has stopped for longer than the storage's grace
    period (twice the preset's heartbeat interval) belongs to a process that
    ended (a session's end): the next ``tune`` marks it failed and runs its
    parameters again. For a live one, the length :func:`~rbmlib.tuning.deadline.expected_trial_s`
    gives it (as if it trained its RBM afresh).
    """
    from rbmlib.tuning import deadline
    from rbmlib.tuning.study import default_storage

    preset = get_preset(preset)
    now = datetime.datetime.now() if now is None else now
    grace = datetime.timedelta(seconds=2 * preset.heartbeat_interval)
    lines = []
    for model, study in studies.items():
        running = [] if study is None else study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        beats = last_heartbeats(default_storage(preset.name, model), study.study_name, "RUNNING") if running else {}
        for t in running:
            beat = beats.get(t.number)
            since = f"{model} trial {t.number}, started {t.datetime_start:%Y-%m-%d %H:%M}"
            if beat is not None and now - beat > grace:
                lines.append(f"{since}: no heartbeat since {beat:%H:%M}, so its process has ended; "
                             "the next tune runs its parameters again")
                continue
            fixed = preset.fixed_params(model)
            expected = deadline.expected_trial_s(study, deadline.rbm_work({**fixed, **t.params}), fixed)
            minutes = (now - t.datetime_start).total_seconds() / 60
            lines.append(f"{since}: running for {minutes:.0f} min"
                         + (f" of about {expected / 60:.0f}" if expected else ""))
    return lines


def trial_spans(study, heartbeats: dict | None = None) -> list[tuple]:
    """``(trial, start, end)`` of each trial of ``study`` that ran and ended, in order.

    A complete or pruned trial ran until its completion; a failed one until its
    last heartbeat (``heartbeats``, from :func:`last_heartbeats`), and is left
    out without one: its completion is when a later run noticed it had died.
    """
    heartbeats = heartbeats or {}
    spans = []
    for t in study.get_trials(deepcopy=False):
        end = (t.datetime_complete if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               else heartbeats.get(t.number) if t.state == TrialState.FAIL else None)
        if t.datetime_start and end:
            spans.append((t, t.datetime_start, max(end, t.datetime_start)))
    return spans


def compute_seconds(study, heartbeats: dict | None = None) -> float:
    """Seconds the trials of ``study`` ran, summed (:func:`trial_spans`: workers and reruns add up)."""
    return round(sum((end - start).total_seconds() for _, start, end in trial_spans(study, heartbeats)), 1)
