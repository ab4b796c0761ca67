"""Stop a study at a trial boundary, and an evaluation at a refit boundary, before a deadline.

A study that runs for days in sessions of a few hours loses the trial that is
running when its session ends: it is retried from its start by the next one
(:mod:`rbmlib.tuning.study`). A protocol 2 rbm-fnn trial that trains a new RBM
takes up to an hour, so that costs up to half an hour per session. With a
deadline (``rbmlib tune --until 15:05``), no trial starts that would not end
before it, judged by the study's own complete trials; the study stops cleanly
and the next ``tune`` goes on from there. ``rbmlib evaluate --until`` does the
same for the refits, judged by the model's refits so far, or before its first
by its best trial (:func:`expected_refit_s`), and raises :class:`DeadlineStop`.
"""

from __future__ import annotations

import datetime
import statistics

import optuna
import pandas as pd
from optuna.trial import TrialState


class DeadlineStop(Exception):
    """The next step would not end before the ``--until`` deadline; everything before it is kept."""


def parse_until(text: str, now: datetime.datetime | None = None) -> datetime.datetime:
    """The deadline of ``--until``: ``HH:MM`` (its next occurrence) or an ISO date and time.

    Local time, as ``date`` prints it. Raises ``ValueError`` with a one-line message.
    """
    now = datetime.datetime.now() if now is None else now
    try:
        clock = datetime.time.fromisoformat(text)
    except ValueError:
        clock = None
    if clock is not None:
        at = datetime.datetime.combine(now.date(), clock)
        return at if at > now else at + datetime.timedelta(days=1)
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--until {text!r} is neither a time (15:05) nor a date and time "
                         "(2026-12-02T15:05)") from None


def expected_trial_s(study: optuna.Study) -> float | None:
    """The median duration of the study's complete trials, in seconds (None before the first).

    Complete trials, not pruned ones: a pruned trial stops early, and the next
    trial may run its full length.
    """
    durations = [(t.datetime_complete - t.datetime_start).total_seconds()
                 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if t.datetime_start and t.datetime_complete]
    return statistics.median(durations) if durations else None


def fits(study: optuna.Study, until: datetime.datetime | None,
         now: datetime.datetime | None = None) -> bool:
    """Whether a trial started now is expected to end before ``until`` (always, without one).

    Before the study's first complete trial nothing is known of its length, so a
    trial starts whenever the deadline has not passed.
    """
    return ends_before(expected_trial_s(study), until, now)


def ends_before(seconds: float | None, until: datetime.datetime | None,
                now: datetime.datetime | None = None) -> bool:
    """Whether a step of ``seconds`` started now ends before ``until`` (unknown length: whether it has passed)."""
    if until is None:
        return True
    now = datetime.datetime.now() if now is None else now
    return now + datetime.timedelta(seconds=seconds or 0.0) < until


def expected_refit_s(refit_seconds, best_trial, data_ratio: float, trials=()) -> float | None:
    """How long a model's next refit is expected to take, in seconds.

    The median of its refits so far (``refit_seconds``: other seeds, the same
    parameters on the same data); before the first, its best trial's length
    times ``data_ratio`` (the refit's training images over a trial's: 60,000
    over 50,000). Where the best trial read its RBM from the cache (user
    attribute ``rbm_cached``), the refit trains one: the longest of the
    study's ``trials`` that trained that RBM is added. None if the trial has no length.
    """
    done = [s for s in refit_seconds if pd.notna(s)]
    if done:
        return float(statistics.median(done))
    duration = getattr(best_trial, "duration", None)
    if duration is None:
        return None
    seconds = duration.total_seconds()
    if best_trial.user_attrs.get("rbm_cached"):
        rbm = {k: v for k, v in best_trial.params.items() if k.startswith("rbm__")}
        trained = [t.duration.total_seconds() for t in trials
                   if t.user_attrs.get("rbm_cached") is False and t.duration is not None
                   and {k: t.params.get(k) for k in rbm} == rbm]
        seconds += max(trained, default=0.0)  # none found (trained by another study): the trial alone
    return seconds * data_ratio


class StopBefore:
    """Optuna callback: after each trial, stop the study if the next would not end before ``until``."""

    def __init__(self, until: datetime.datetime):
        self.until = until

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if not fits(study, self.until):
            study.stop()  # :func:`rbmlib.tuning.study.tune` says so
