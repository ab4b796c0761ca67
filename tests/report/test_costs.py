"""rbmlib.report.costs: machine time, and the trial-cost and logistic-regression solver tables of the speed appendix."""

from __future__ import annotations

import datetime

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from rbmlib import paths
from rbmlib.report import costs
from rbmlib.tuning import progress


def _cost():
    return pd.DataFrame({"model": ["lr", "lr", "rbm-lr", "rbm-lr"],
                         "precision": ["bfloat16", "float32", "bfloat16", "float32"],
                         "trial_s": [30.0, 30.0, 100.0, 200.0], "n_trials": [30, 30, 30, 30]})


def test_trial_cost_keeps_the_benchmarks_order_and_multiplies_the_bf16_trial_by_the_budget():
    table = costs.trial_cost_table(_cost())
    assert list(table.index) == ["lr", "rbm-lr"]
    assert table.loc["rbm-lr", "bfloat16 speed-up"] == pytest.approx(2.0)
    assert table.loc["rbm-lr", "study at bfloat16 (h)"] == pytest.approx(30 * 100 / 3600)


def _solvers():
    return pd.DataFrame({"solver": ["sklearn", "sklearn-standardised"] * 2, "C": [0.01, 0.01, 1.0, 1.0],
                         "n_features": 1024, "n_iter": [200, 600, 500, 1000],
                         "converged": [True, True, True, False], "seconds": [1, 2, 3, 4],
                         "val_accuracy": [0.80, 0.83, 0.87, 0.88]})


def test_solver_table_names_the_solvers_and_says_whether_each_converged():
    table = costs.lr_solver_table(_solvers())
    assert table.loc[(1.0, "scikit-learn lbfgs, standardised features"), "converged"] == "no"
    assert table.loc[(0.01, "scikit-learn lbfgs"), "iterations"] == 200


def test_the_equal_C_sentence_gives_the_gain_the_iteration_ratio_and_an_unconverged_stop():
    text = costs.standardising_sentence(_solvers())
    assert "1,024-unit RBM" in text
    assert "at C = 0.01, +3.0 points" in text and "3.0 times the iterations" in text
    assert "at C = 1, +1.0 points" in text and "stopped at the limit of 1,000 unconverged" in text


def _grid(raw_best_at_edge=False):
    raw = [0.85, 0.87, 0.88] if not raw_best_at_edge else [0.85, 0.86, 0.89]
    return pd.DataFrame({"preprocessing": ["raw"] * 3 + ["standardised"] * 3,
                         "C": [1.0, 10.0, 100.0, 0.01, 0.1, 1.0], "n_features": 1024,
                         "n_iter": [100, 200, 300, 400, 500, 600],
                         "converged": [True, True, False, True, False, False],
                         "val_accuracy": raw + [0.86, 0.885, 0.87]})


def test_the_best_C_of_each_preprocessing_is_chosen_on_validation_and_an_edge_is_flagged():
    best = costs.best_C_table(_grid())
    assert best.loc["raw", "best C"] == 100.0 and best.loc["raw", "on an edge"] == "yes"
    assert best.loc["standardised", "best C"] == 0.1 and best.loc["standardised", "on an edge"] == "no"
    assert best.loc["standardised", "C searched"] == "0.01 to 1"
    text = costs.tuned_standardising_sentence(_grid())
    assert "88.00% on raw features (C = 100, unconverged)" in text
    assert "88.50% on standardised ones (C = 0.1, unconverged)" in text
    assert "converged within its iteration limit was 10 on raw features and 0.01 on standardised ones" in text
    assert "+0.50 points" in text and "the best C of raw features is an end of its grid" in text


def test_a_missing_benchmark_table_names_the_command_that_measures_it(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "BENCHMARKS_DIR", tmp_path / "benchmarks")
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"python benchmarks/lr_solvers.py"):
        costs.read_table("lr_solvers")


def test_the_committed_tables_give_every_model_of_protocol_2_and_both_preprocessings():
    from rbmlib.tuning.presets import PROTOCOL2

    assert set(costs.trial_cost_table(costs.read_table("trial_cost")).index) == set(PROTOCOL2.models)
    assert set(costs.best_C_table(costs.read_table("lr_standardising")).index) == {"raw", "standardised"}


# ----------------------------------------------------------------------------- machine time

def _at(hour, minute=0):
    return datetime.datetime(2026, 12, 1, hour, minute)


def _frozen(state, start, end, number):
    return optuna.trial.FrozenTrial(number=number, state=state, value=0.5 if state == TrialState.COMPLETE else None,
                                    datetime_start=start, datetime_complete=end, params={}, distributions={},
                                    user_attrs={}, system_attrs={}, intermediate_values={}, trial_id=number)


class _Study:
    """What busy_intervals reads of a study: its trials."""

    def __init__(self, trials):
        self.trials = trials

    def get_trials(self, deepcopy=False):
        return self.trials


def test_busy_intervals_take_trials_failed_ones_to_their_last_heartbeat_and_refits_from_the_ledger():
    studies = {"lr": _Study([_frozen(TrialState.COMPLETE, _at(9), _at(10), 0),
                             _frozen(TrialState.PRUNED, _at(10), _at(10, 30), 1),
                             _frozen(TrialState.FAIL, _at(11), _at(23), 2),  # noticed at 23:00, ran to 11:20
                             _frozen(TrialState.FAIL, _at(12), _at(12, 5), 3)]),  # no heartbeat: left out
               "cnn": None}
    evaluation = pd.DataFrame({"model": ["lr", "lr"], "seed": [0, 1], "trial_number": [0, 0],
                               "seconds": [600.0, 600.0]})
    local = datetime.datetime.now().astimezone().tzinfo
    scored = pd.Timestamp(_at(13)).tz_localize(local).isoformat()
    looks = pd.DataFrame({"time": [scored, scored], "model": ["lr", "lr"], "seed": [0, 1], "trial_number": [0, 0],
                          "source": [None, "evaluation.csv at abc"]})  # the second recovered from history
    out = costs.busy_intervals(studies, evaluation, looks, heartbeats={"lr": {2: _at(11, 20)}})
    assert list(out["kind"]) == ["trial", "trial", "failed trial", "refit"]
    assert list(out["end"]) == [_at(10), _at(10, 30), _at(11, 20), _at(13)]
    assert out["start"].iloc[-1] == _at(12, 50)  # its seconds before it was scored
    # summary.csv's tuning time is the same sum: 1 h + 30 min + 20 min
    assert progress.compute_seconds(studies["lr"], {2: _at(11, 20)}) == 110 * 60


def test_lanes_are_the_concurrent_processes_and_sessions_split_at_long_pauses():
    intervals = pd.DataFrame({"start": [_at(9), _at(9, 10), _at(10), _at(14)],
                              "end": [_at(10), _at(11), _at(11), _at(15)], "kind": "trial"})
    assert list(costs.lanes(intervals)) == [0, 1, 0, 0]  # the third starts as the first ends
    runs = costs.sessions(intervals)
    assert list(runs["hours"]) == [2.0, 1.0]  # 9:00-11:00, then 14:00-15:00 after a 3-hour pause
    sentence = costs.machine_time_sentence(intervals, "p")
    assert "The 4 trials of the p preset ran for 3.0 hours of elapsed time, in 2 stretches" in sentence
    assert "compute adds up to 4.8 hours, 3.0 hours and 1.8 hours in each of the 2 processes" in sentence
    assert costs.machine_time_sentence(intervals.iloc[:0], "p") == "No trial or refit of the p preset has finished yet."


def test_last_heartbeats_reads_those_of_failed_trials_from_the_study_file(tmp_path):
    from rbmlib.tuning.stores import open_storage

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="p/lr", storage=open_storage(url, heartbeat_interval=60))
    with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna's: heartbeats are for optimize(); one by hand here
        failed, done = study.ask(), study.ask()
    study._storage.record_heartbeat(failed._trial_id)
    study.tell(failed, state=TrialState.FAIL)
    study.tell(done, 0.5)
    beats = progress.last_heartbeats(url, "p/lr")
    assert list(beats) == [failed.number]
    assert abs(beats[failed.number] - datetime.datetime.now()) < datetime.timedelta(minutes=1)  # local time
    assert progress.last_heartbeats(url, "p/other") == {}
    assert progress.last_heartbeats(f"sqlite:///{tmp_path / 'none.db'}", "p/lr") == {}
    assert not (tmp_path / "none.db").exists()  # reading creates no study file
