"""rbmlib status: each study's trials against its budget, read-only."""

import dataclasses
import datetime

import optuna

import pytest
from optuna.trial import TrialState
from tuning_helpers import TINY

from rbmlib import paths
from rbmlib.tuning import presets
from rbmlib.cli import main
from rbmlib.tuning.progress import (RECENT_TRIALS, complete_share, expected_finished, hours_left, progress_table,
                                   running_trials)
from rbmlib.tuning.refit import evaluate
from rbmlib.tuning.study import load_study, tune

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tuning_results", "fashion_mnist")]


def test_the_table_counts_trials_against_the_budget_and_creates_no_study():
    tune("lr", TINY, n_trials=1, show_progress_bar=False)
    table = progress_table(TINY).set_index("model")
    lr = table.loc["lr"]
    assert (lr["finished"], lr["complete"], lr["budget"]) == (1, 1, "2")
    assert 0 < lr["best val accuracy"] <= 1 and lr["best trial"] == 0
    # One trial short: its own length again, in hours.
    assert lr["hours left"] == pytest.approx(lr["minutes per trial"] / 60)
    assert table.loc["fnn", "finished"] == 0 and table["hours left"].isna()["fnn"]
    assert not paths.study_db(TINY.name, "fnn").exists()  # read, not created
    # Its refits: each seed's, at its best trial's length scaled to the refit's data, until evaluated.
    assert lr["refit hours"] > 0 and table["refit hours"].isna()["fnn"]
    evaluate(["lr"], TINY)
    assert progress_table(TINY).set_index("model").loc["lr", "refit hours"] == 0
    floor = dataclasses.replace(TINY, min_complete=3)
    assert progress_table(floor).set_index("model").loc["lr", "budget"] == "2 (3 complete)"


def test_the_command_prints_every_model_and_the_hours_left(capsys):
    assert main(["status", "--preset", "smoke"]) == 0
    out = capsys.readouterr().out
    assert all(model in out for model in ("lr", "fnn", "cnn", "rbm-lr", "rbm-fnn"))
    assert "not started or without a complete trial; then the evaluation: about" in out
    assert "more for the models without a complete trial." in out


def test_a_running_trial_is_shown_with_its_time_so_far_or_as_ended_once_its_heartbeat_stops(capsys, monkeypatch):
    tune("lr", TINY, n_trials=1, show_progress_bar=False)  # a complete trial: a length to expect
    study = load_study("lr", TINY)
    with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna's: heartbeats are for optimize(); one by hand here
        trial = study.ask()
    study._storage.record_heartbeat(trial._trial_id)
    start = study.trials[-1].datetime_start
    slow_beats = dataclasses.replace(TINY, heartbeat_interval=600)  # TINY's 1 s would call it ended at once
    [line] = running_trials(slow_beats, {"lr": study, "fnn": None}, now=start + datetime.timedelta(minutes=3))
    assert line.startswith(f"lr trial 1, started {start:%Y-%m-%d %H:%M}: running for 3 min of about ")
    monkeypatch.setitem(presets.PRESETS, TINY.name, TINY)  # for the command line
    assert main(["status", "--preset", TINY.name]) == 0
    assert "Running: lr trial 1, started" in capsys.readouterr().out
    # Past the grace period without a heartbeat: its process has ended (a session's end).
    later = datetime.datetime.now() + datetime.timedelta(seconds=2 * slow_beats.heartbeat_interval + 60)
    [line] = running_trials(slow_beats, {"lr": study}, now=later)
    assert "no heartbeat since" in line and "its process has ended; the next tune runs its parameters again" in line


def _study(complete: int, pruned: int, minutes: float = 6.0) -> optuna.Study:
    """An in-memory study of trials that each took ``minutes``."""
    study = optuna.create_study(direction="maximize")
    for state in [TrialState.COMPLETE] * complete + [TrialState.PRUNED] * pruned:
        trial = optuna.trial.create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None,
                                          intermediate_values={} if state == TrialState.COMPLETE else {1: 0.1})
        trial.datetime_start = trial.datetime_complete - datetime.timedelta(minutes=minutes)
        study.add_trial(trial)
    return study


def test_hours_left_count_the_trials_that_pruning_adds_to_reach_the_complete_floor():
    # 2 of 6 finished trials complete: 13 more complete ones take about 39 trials, more than the 24 lacking.
    assert hours_left(_study(2, 4), 30, 15) == pytest.approx(39 * 6 / 60)
    # Enough complete trials: the finished ones lacking decide.
    assert hours_left(_study(15, 5), 30, 15) == pytest.approx(10 * 6 / 60)
    assert hours_left(_study(15, 15), 30, 15) == 0
    # Complete trials lacking and none yet: no share to go by. No finished trial: nothing to go by.
    assert hours_left(_study(0, 3), 30, 15) is None
    assert hours_left(_study(0, 0), 30, 15) is None
    assert hours_left(_study(0, 3), 30) == pytest.approx(27 * 6 / 60)  # no floor: pruned trials count


def test_the_hours_left_go_by_the_share_of_complete_trials_among_the_latest():
    """Hyperband completes fewer of the later trials: the latest share, not the whole study's, predicts."""
    study = _study(10, 0)  # ten complete first, then the latest RECENT_TRIALS of which two complete
    for trial in _study(2, RECENT_TRIALS - 2).trials:
        study.add_trial(trial)
    assert complete_share(study) == pytest.approx(2 / RECENT_TRIALS)
    # 12 of 15 complete: 3 more take about 3 / 0.1 = 30 trials, not 3 / (12 / 30) = 7.5.
    assert hours_left(study, 30, 15) == pytest.approx(30 * 6 / 60)
    assert expected_finished(study, 30, 15) == 30 + 30
    assert complete_share(_study(3, RECENT_TRIALS)) == pytest.approx(3 / (3 + RECENT_TRIALS))  # none lately


def test_the_hours_left_go_by_the_length_of_the_latest_trials():
    """A range widened at an edge makes later trials longer: the latest RECENT_TRIALS set the pace."""
    study = _study(30, 0, minutes=6.0)
    for trial in _study(RECENT_TRIALS, 0, minutes=60.0).trials:
        study.add_trial(trial)
    assert hours_left(study, 30 + RECENT_TRIALS + 4) == pytest.approx(4 * 60 / 60)  # not at the 6 min of most
