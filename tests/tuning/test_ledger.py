"""The test-set ledger: backfilled from git, written only by evaluation, and read by the paper."""

import ast
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from rbmlib import paths
from rbmlib.tuning import ledger

PACKAGE = Path(paths.ROOT) / "rbmlib"


def _full_history() -> bool:
    out = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=paths.ROOT,
                         capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() == "false"


@pytest.mark.slow
@pytest.mark.skipif(not _full_history(), reason="needs the git history of results/evaluation.csv")
def test_the_ledger_holds_every_row_any_committed_evaluation_csv_ever_held():
    history = ledger.history_rows("paper")
    committed = ledger.read("paper")
    backfilled = committed[committed["source"].str.startswith("evaluation.csv at")]
    key = ["commit", "model", "seed", "trial_number", "test_accuracy"]
    assert backfilled[key].astype(str).values.tolist() == history[key].astype(str).values.tolist()
    # What the review of protocol 1 found: the RBM models scored in two rounds, the
    # deleted first-round rbm-fnn rows among them, and lr and fnn scored twice.
    rounds = committed.groupby("model")["trial_number"].unique().map(sorted)
    assert rounds["rbm-lr"] == [0, 9] and rounds["rbm-fnn"] == [0, 5]
    assert committed.query("model == 'lr'").shape[0] == 6 and committed.query("model == 'fnn'").shape[0] == 10


def test_the_committed_ledger_names_its_params_and_scores():
    committed = ledger.read("paper")
    assert len(committed) >= 31 and committed["params"].str.startswith("{").all()
    assert committed["test_accuracy"].between(0, 1).all() and (committed["protocol"] == "paper").all()


def test_only_the_test_looks_write_the_ledger():
    # the evaluation of each model's best trial, and the few-labels study that reuses its refits
    writers = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "append" and getattr(node.func.value, "id", None) == "ledger"):
                writers.append(path.relative_to(PACKAGE).as_posix())
    assert sorted(writers) == ["tuning/few_labels.py", "tuning/refit.py"]


def test_a_second_look_is_refused_before_anything_is_fitted(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path)
    ledger.append("tiny", {"model": "lr", "seed": 0, "trial_number": 3, "params": "{}",
                           "test_accuracy": 0.8, "test_macro_f1": 0.79})
    ledger.check_unscored("tiny", [("lr", 1), ("fnn", 0)])  # other pairs: fine
    with pytest.raises(ledger.RepeatedLookError, match="tiny/lr seed 0 was scored on the test split already"):
        ledger.check_unscored("tiny", [("lr", 1), ("lr", 0)])
    row = ledger.read("tiny").iloc[0]
    assert row["source"] == "rbmlib evaluate" and row["commit"] and row["time"].endswith("+00:00")


def test_the_last_look_at_a_model_and_seed_is_the_latest_that_matches_and_none_else():
    looks = pd.DataFrame({"model": ["lr", "lr", "lr", "cnn"], "seed": ["0", "0", "1", "0"],
                          "trial_number": [3, 3, 3, 5], "test_accuracy": [0.81, 0.82, 0.83, 0.9]})
    assert ledger.last_look(looks, "lr", 0)["test_accuracy"] == 0.82  # the latest of two
    assert ledger.last_look(looks, "lr", 1, trial_number=3)["test_accuracy"] == 0.83
    assert ledger.last_look(looks, "lr", 1, trial_number=4) is None  # another trial's look does not count
    assert ledger.last_look(looks, "fnn", 0) is None
    assert ledger.last_look(looks.iloc[:0], "lr", 0) is None  # an empty ledger
