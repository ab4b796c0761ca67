"""rbmlib status: each study's trials against its budget, read-only."""

import dataclasses

import pytest
from tuning_helpers import TINY

from rbmlib import paths
from rbmlib.cli import main
from rbmlib.tuning.progress import progress_table
from rbmlib.tuning.study import tune

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
    floor = dataclasses.replace(TINY, min_complete=3)
    assert progress_table(floor).set_index("model").loc["lr", "budget"] == "2 (3 complete)"


def test_the_command_prints_every_model_and_the_hours_left(capsys):
    assert main(["status", "--preset", "smoke"]) == 0
    out = capsys.readouterr().out
    assert all(model in out for model in ("lr", "fnn", "cnn", "rbm-lr", "rbm-fnn"))
    assert "not started or without a finished trial; then the evaluation." in out
