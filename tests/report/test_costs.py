"""rbmlib.report.costs: the trial-cost and logistic-regression solver tables of the speed appendix."""

from __future__ import annotations

import pandas as pd
import pytest

from rbmlib import paths
from rbmlib.report import costs


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
