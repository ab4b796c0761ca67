"""Stop a study at a trial boundary, and an evaluation at a refit boundary, before a deadline.

A study that runs for days in sessions of a few hours loses the trial that is
running when its session ends: it is retried by the next one
(:mod:`rbmlib.tuning.study`), from its start but for its RBM's training, which
goes on from its last checkpoint (:mod:`rbmlib.tuning.rbm_cache`). A protocol 2
rbm-fnn trial that trains a new RBM takes up to an hour, so that costs up to
half an hour per session. With a
deadline (``rbmlib tune --until 15:05``), no trial starts that would not end
before it, judged by the study's own complete trials; the study stops cleanly
and the next ``tune`` goes on from there. ``rbmlib evaluate --until`` does the
same for the refits, judged by the model's refits so far, or before its first
by its best trial (:func:`expected_refit_s`), and raises :class:`DeadlineStop`.

A trial's length is known better once its parameters are drawn: an RBM of
11,693 hidden units trained for 150 epochs takes over an hour where the
study's median trial takes a quarter of that. So the objective asks again
then (:func:`expected_trial_s` with the trial's RBM), and a trial that would
not end in time is put off, once (:func:`defer_if_late`): it ends as failed
before any work, and :class:`StopBefore` queues its parameters as the next
run's first trial, so the draw is run as drawn, as with a trial that a
session's end cut.
"""

from __future__ import annotations

import datetime
import logging
import statistics

import optuna
import pandas as pd
from optuna.trial import TrialState


class DeadlineStop(Exception):
    """The next step would not end before the ``--until`` deadline; everything before it is kept."""


class Deferred(DeadlineStop):
    """Raised by the objective: the trial just drawn would not end before ``--until`` (see the module)."""


class _NoTracebackForDeferred(logging.Filter):
    """Optuna logs a failed trial with its traceback; a deferred trial's reason is all there is to say."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], Deferred):
            record.exc_info = None
        return True


logging.getLogger("optuna.study._optimize").addFilter(_NoTracebackForDeferred())  # where Optuna logs it


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


def expected_trial_s(study: optuna.Study, work: float | None = None,
                     fixed: dict | None = None) -> float | None:
    """How long the study's next trial is expected to take, in seconds (None before the first complete one).

    The median duration of the study's complete trials: complete ones, not
    pruned ones, since a pruned trial stops early and the next may run its full
    length. Where the next trial trains an RBM of ``work`` hidden units times
    epochs (:func:`rbm_work`; None or 0 for none, or one in the cache), it
    takes at least that RBM's share: ``work`` times the median seconds
    per unit-epoch of the study's latest :data:`RECENT_RBMS` trials that trained
    theirs (recent ones: the machine and the code change between sessions),
    with the preset's ``fixed`` parameters (fixed epochs) beside their own.
    """
    durations = [s for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if (s := trial_seconds(t)) is not None]
    median = statistics.median(durations) if durations else None
    rates = [trial_seconds(t) / w for t in _recent_rbm_trials(study)
             if (w := rbm_work({**(fixed or {}), **t.params}))]
    if not work or not rates:
        return median
    return max(median or 0.0, statistics.median(rates) * work)


#: Trials that trained an RBM whose seconds per unit-epoch predict the next one's (:func:`expected_trial_s`).
RECENT_RBMS = 10


def rbm_work(params: dict, done_epochs: int = 0) -> int | None:
    """Hidden units times epochs of the RBM that ``params`` name: what training it costs grows with.

    None where they do not name both (no RBM; add the preset's fixed epochs to a
    trial's own). ``done_epochs``: epochs that a checkpoint holds already, not counted.
    """
    units, epochs = params.get("rbm__n_components"), params.get("rbm__n_iter")
    return units * max(epochs - done_epochs, 0) if units and epochs else None


def _recent_rbm_trials(study: optuna.Study) -> list:
    """The latest :data:`RECENT_RBMS` finished trials that trained their whole RBM (:func:`trained_whole_rbm`)."""
    trained = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
               if trained_whole_rbm(t) and trial_seconds(t)]
    return sorted(trained, key=lambda t: t.number)[-RECENT_RBMS:]


def trained_whole_rbm(trial) -> bool:
    """Whether ``trial`` trained its RBM from the first epoch: neither from the cache nor from a checkpoint.

    Only such a trial's length is what training its RBM costs.
    """
    return trial.user_attrs.get("rbm_cached") is False and not trial.user_attrs.get("rbm_resumed_epochs")


def trial_seconds(trial) -> float | None:
    """How long ``trial`` ran, in seconds; None if it has not ended (or never started)."""
    duration = getattr(trial, "duration", None)
    return None if duration is None else duration.total_seconds()


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
    seconds = trial_seconds(best_trial)
    if seconds is None:
        return None
    if best_trial.user_attrs.get("rbm_cached"):
        rbm = {k: v for k, v in best_trial.params.items() if k.startswith("rbm__")}
        trained = [s for t in trials if trained_whole_rbm(t) and (s := trial_seconds(t)) is not None
                   and {k: t.params.get(k) for k in rbm} == rbm]
        seconds += max(trained, default=0.0)  # none found (trained by another study): the trial alone
    return seconds * data_ratio


class StopBefore:
    """Optuna callback: after each trial, stop the study if the next would not end before ``until``.

    After a trial that the objective put off (:class:`Deferred`, user attribute
    ``deferred``), it queues that trial's parameters as the study's next trial
    (user attribute ``deferred_from``: its number), keeps it as ``deferred``
    and stops the study.
    """

    def __init__(self, until: datetime.datetime):
        self.until, self.deferred = until, None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == TrialState.FAIL and "deferred" in trial.user_attrs:
            study.enqueue_trial(trial.params, user_attrs={"deferred_from": trial.number})
            self.deferred = trial
            study.stop()
        elif not fits(study, self.until):
            study.stop()  # :func:`rbmlib.tuning.study.tune` says so


def defer_if_late(trial: optuna.Trial, until: datetime.datetime | None, work: float | None = None,
                  fixed: dict | None = None) -> None:
    """Raise :class:`Deferred` where ``trial``, just drawn, is not expected to end before ``until``.

    ``work``, ``fixed``: of the RBM it will train, if any, and the preset's fixed
    parameters (:func:`expected_trial_s`). The reason goes to the trial's user
    attribute ``deferred``. A draw is put off once: one that no session's
    deadline leaves time for would otherwise be put off for ever and hold its
    study up, so its second run goes ahead as any trial did before deferring
    (cut short at a session's end, it is retried).
    """
    if until is None or "deferred_from" in trial.user_attrs:
        return
    seconds = expected_trial_s(trial.study, work, fixed)
    if seconds is None or ends_before(seconds, until):
        return  # nothing known of its length: it runs, as :func:`fits` let it start
    reason = f"expected to take {seconds / 60:.0f} min, it would not end before {until:%Y-%m-%d %H:%M}"
    trial.set_user_attr("deferred", reason)
    raise Deferred(reason)
