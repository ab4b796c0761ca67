"""rbmlib tune --until: no trial starts that would not end before the deadline."""

import datetime

import optuna
import pytest
from optuna.trial import TrialState
from tuning_helpers import TINY

from rbmlib.cli import main
from rbmlib.tuning import deadline
from rbmlib.tuning.protocol import counts
from rbmlib.tuning.study import load_study, tune

NOON = datetime.datetime(2026, 12, 2, 12, 0)


def _study(*minutes, state=TrialState.COMPLETE) -> optuna.Study:
    """An in-memory study with finished trials of the given lengths."""
    study = optuna.create_study(direction="maximize")
    for m in minutes:
        trial = optuna.trial.create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None)
        trial.datetime_start = trial.datetime_complete - datetime.timedelta(minutes=m)
        study.add_trial(trial)
    return study


@pytest.mark.parametrize("text, expected", [
    ("15:05", datetime.datetime(2026, 12, 2, 15, 5)),
    ("11:00", datetime.datetime(2026, 12, 3, 11, 0)),  # passed today: tomorrow's
    ("2026-12-04T09:30", datetime.datetime(2026, 12, 4, 9, 30)),
])
def test_until_is_the_next_such_time_or_a_date_and_time(text, expected):
    assert deadline.parse_until(text, now=NOON) == expected


def test_a_malformed_until_is_refused_by_the_command_line_with_what_to_write(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["tune", "--preset", "smoke", "--until", "quarter past three"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "'quarter past three' is neither a time (15:05) nor a date and time" in err
    assert "Traceback" not in err


def test_the_expected_length_is_the_median_of_complete_trials_not_pruned_ones():
    study = _study(10, 40, 50)
    for trial in _study(1, 1, 1, 1, state=TrialState.PRUNED).trials:
        study.add_trial(trial)
    assert deadline.expected_trial_s(study) == pytest.approx(40 * 60)
    assert deadline.expected_trial_s(_study()) is None


def test_a_trial_starts_only_if_it_is_expected_to_end_before_the_deadline():
    study = _study(30, 30)
    assert deadline.fits(study, NOON + datetime.timedelta(minutes=31), now=NOON)
    assert not deadline.fits(study, NOON + datetime.timedelta(minutes=29), now=NOON)
    assert deadline.fits(study, None, now=NOON)
    # Nothing known of its length: it starts while the deadline has not passed.
    assert deadline.fits(_study(), NOON + datetime.timedelta(minutes=1), now=NOON)
    assert not deadline.fits(_study(), NOON, now=NOON)


def test_the_callback_stops_the_study_once_the_next_trial_would_not_fit():
    study = _study(60)  # one complete trial of an hour
    ran = []

    def objective(trial):
        ran.append(trial.number)
        return 0.0

    # After the first new trial, the median length is half an hour: more than is left.
    stop = deadline.StopBefore(datetime.datetime.now() + datetime.timedelta(minutes=20))
    study.optimize(objective, n_trials=5, callbacks=[stop])
    assert ran == [1]


def _rbm_trial(minutes, units, epochs=None, *, cached=False, resumed=0) -> optuna.trial.FrozenTrial:
    """A complete trial of ``minutes`` that trained (or, ``cached``, loaded) an RBM of ``units`` x ``epochs``.

    ``resumed``: epochs of it trained before, by a run that was cut (read from a checkpoint).
    """
    params = {"rbm__n_components": units, **({"rbm__n_iter": epochs} if epochs else {})}
    trial = optuna.trial.create_trial(
        value=0.5, params=params,
        user_attrs={"rbm_cached": cached, **({"rbm_resumed_epochs": resumed} if resumed else {})},
        distributions={k: optuna.distributions.IntDistribution(1, 100_000) for k in params})
    trial.datetime_start = trial.datetime_complete - datetime.timedelta(minutes=minutes)
    return trial


def _rbm_study(*trials) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for trial in trials:
        study.add_trial(trial)
    return study


def test_a_trial_that_trains_a_larger_rbm_is_expected_to_take_longer_in_proportion():
    # Five older trials at 5 ms per unit-epoch (another machine), then ten at 1 ms, then one
    # whose RBM came from the cache: only the latest ten that trained theirs set the rate.
    # Nor do trials that went on from a checkpoint (2 minutes for the last epochs).
    study = _rbm_study(*[_rbm_trial(50, 1000, 600) for _ in range(5)],
                       *[_rbm_trial(10, u, e) for u, e in [(1000, 600), (2000, 300), (3000, 200)] * 3],
                       _rbm_trial(10, 1000, 600), _rbm_trial(60, 1000, 600, cached=True),
                       *[_rbm_trial(2, 1000, 600, resumed=500) for _ in range(6)])
    assert deadline.RECENT_RBMS == 10
    assert deadline.expected_trial_s(study) == pytest.approx(10 * 60)  # the median trial
    assert deadline.expected_trial_s(study, 6000 * 200) == pytest.approx(1200)  # 1.2 M unit-epochs at 1 ms
    assert deadline.expected_trial_s(study, 10) == pytest.approx(10 * 60)  # never less than the median trial
    # Epochs that the preset fixes count as the trial's own.
    fixed = _rbm_study(_rbm_trial(10, 1000), _rbm_trial(10, 2000))
    assert deadline.expected_trial_s(fixed, 4000 * 600, {"rbm__n_iter": 600}) == pytest.approx(1800)
    assert deadline.expected_trial_s(fixed, 4000 * 600) == pytest.approx(600)  # no rate without epochs
    assert deadline.rbm_work({"rbm__n_components": 6000, "rbm__n_iter": 150}) == 900_000
    assert deadline.rbm_work({"rbm__n_components": 6000, "rbm__n_iter": 150}, done_epochs=100) == 300_000
    assert deadline.rbm_work({"C": 1.0}) is None


def test_a_trial_drawn_too_long_for_the_deadline_is_put_off_and_its_draw_runs_first_next_time(caplog):
    study = _rbm_study(*[_rbm_trial(10, 1000, 600) for _ in range(3)])  # 1 ms per unit-epoch
    ran = []

    def objective(trial, until):
        params = {"rbm__n_components": trial.suggest_int("rbm__n_components", 1, 100_000),
                  "rbm__n_iter": trial.suggest_int("rbm__n_iter", 1, 100_000)}
        deadline.defer_if_late(trial, until, deadline.rbm_work(params))
        ran.append(params)
        return 0.5

    big = {"rbm__n_components": 6000, "rbm__n_iter": 600}  # 3.6 M unit-epochs: an hour
    study.enqueue_trial(big)
    stop = deadline.StopBefore(datetime.datetime.now() + datetime.timedelta(minutes=30))
    optuna.logging.enable_propagation()  # Optuna's own handler writes to the stderr it found first
    try:
        with caplog.at_level("WARNING", logger="optuna"):
            study.optimize(lambda t: objective(t, stop.until), n_trials=5, callbacks=[stop],
                           catch=(deadline.Deferred,))
    finally:
        optuna.logging.disable_propagation()
    assert ran == []  # put off before any work, and the study stopped
    put_off = study.trials[3]
    assert put_off.state == TrialState.FAIL and stop.deferred.number == 3
    assert put_off.user_attrs["deferred"].startswith("expected to take 60 min, it would not end before ")
    assert "Trial 3 failed" in caplog.text and "Traceback" not in caplog.text
    [queued] = study.get_trials(states=(TrialState.WAITING,))
    assert queued.user_attrs == {"deferred_from": 3}
    # The next session: the same draw runs first, and goes ahead even if the time is short again
    # (a draw that no session leaves time for must not hold the study up for ever).
    study.optimize(lambda t: objective(t, stop.until), n_trials=1, catch=(deadline.Deferred,))
    assert ran == [big] and study.trials[4].user_attrs["deferred_from"] == 3


@pytest.mark.slow
@pytest.mark.usefixtures("tuning_results", "fashion_mnist")
def test_tune_puts_off_a_drawn_trial_that_would_outlast_until_and_runs_it_next_time(monkeypatch, capsys):
    # Any trial that trains an RBM is said to take two hours, once drawn; before, its length is unknown.
    monkeypatch.setattr(deadline, "expected_trial_s", lambda study, work=None, fixed=None: 7200.0 if work else None)
    study = tune("rbm-lr", TINY, until=datetime.datetime.now() + datetime.timedelta(hours=1),
                 show_progress_bar=False)
    assert counts(study) == (0, 0)
    [put_off] = study.get_trials(states=(TrialState.FAIL,))
    assert "expected to take 120 min" in put_off.user_attrs["deferred"]
    assert f"trial {put_off.number}, expected to take 120 min" in capsys.readouterr().out
    study = tune("rbm-lr", TINY, show_progress_bar=False)
    first = min((t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: t.number)
    assert first.params == put_off.params and first.user_attrs["deferred_from"] == put_off.number
    assert counts(study)[0] == TINY.n_trials["rbm-lr"]


@pytest.mark.slow
@pytest.mark.usefixtures("tuning_results", "fashion_mnist")
def test_tune_with_a_passed_deadline_runs_no_trial_and_resumes_later():
    past = datetime.datetime.now() - datetime.timedelta(minutes=1)
    study = tune("lr", TINY, until=past, show_progress_bar=False)
    assert counts(study) == (0, 0)
    study = tune("lr", TINY, show_progress_bar=False)
    assert counts(load_study("lr", TINY, create=False))[0] == TINY.n_trials["lr"]


def test_a_refit_is_expected_to_take_as_long_as_the_models_refits_so_far_else_its_best_trial_scaled():
    trial = _study(10).trials[0]
    assert deadline.expected_refit_s([300.0, 100.0, 200.0], trial, 1.2) == pytest.approx(200.0)
    assert deadline.expected_refit_s([], trial, 1.2) == pytest.approx(10 * 60 * 1.2)
    assert deadline.expected_refit_s([float("nan")], trial, 1.2) == pytest.approx(10 * 60 * 1.2)
    untimed = optuna.trial.create_trial(value=0.5)
    untimed.datetime_start = None  # a trial with no recorded length
    assert deadline.expected_refit_s([], untimed, 1.2) is None


def test_a_refit_whose_best_trial_read_its_rbm_from_the_cache_is_expected_to_train_it_too():
    def timed(minutes, cached, n_components):
        t = optuna.trial.create_trial(value=0.5, params={"rbm__n_components": n_components},
                                      distributions={"rbm__n_components": optuna.distributions.IntDistribution(16, 64)},
                                      user_attrs={"rbm_cached": cached})
        t.datetime_start = t.datetime_complete - datetime.timedelta(minutes=minutes)
        return t

    best = timed(2, True, 32)
    resumed = timed(40, False, 32)
    resumed.set_user_attr("rbm_resumed_epochs", 3)  # went on from a checkpoint: not what training it costs
    trials = [timed(20, False, 32), timed(25, False, 32), timed(60, False, 64), resumed, best]
    assert deadline.expected_refit_s([], best, 1.0, trials) == pytest.approx((2 + 25) * 60)  # the longest with its RBM
    assert deadline.expected_refit_s([], best, 1.0) == pytest.approx(2 * 60)  # no trial trained it: the trial alone
    assert deadline.expected_refit_s([], trials[0], 1.0, trials) == pytest.approx(20 * 60)  # trained its own


@pytest.mark.slow
@pytest.mark.usefixtures("tuning_results", "fashion_mnist")
def test_evaluate_with_a_passed_deadline_scores_nothing_and_resumes_later(capsys):
    from rbmlib.tuning import ledger
    from rbmlib.tuning.refit import evaluate

    tune("lr", TINY, show_progress_bar=False)
    past = datetime.datetime.now() - datetime.timedelta(minutes=1)
    with pytest.raises(deadline.DeadlineStop, match=r"tiny/lr seed 0: its refit \(about \d+ min\) would not end"):
        evaluate(["lr"], TINY, until=past)
    assert ledger.read(TINY.name).empty  # no look at the test set
    rows = evaluate(["lr"], TINY, until=datetime.datetime.now() + datetime.timedelta(hours=1))
    assert sorted(rows["seed"]) == sorted(TINY.refit_random_states["lr"])


def test_evaluate_until_that_stops_exits_3_and_evaluates_no_later_model(monkeypatch, capsys):
    from rbmlib import tuning

    evaluated = []

    def evaluate(models, preset, **kw):
        evaluated.extend(models)
        if models == ["cnn"]:
            raise deadline.DeadlineStop("smoke/cnn seed 0: its refit (about 40 min) would not end before ...")

    monkeypatch.setattr(tuning, "evaluate", evaluate)
    assert main(["evaluate", "--skip-busy", "--preset", "smoke", "--model", "lr", "--model", "cnn",
                 "--model", "fnn", "--until", "23:59"]) == 3
    # One refit per call under --skip-busy: every seed of lr, then cnn's first, which stops the chain.
    assert evaluated == ["lr"] * len(tuning.get_preset("smoke").refit_random_states["lr"]) + ["cnn"]
    assert "every refit before it is kept (exit status 3)" in capsys.readouterr().out
