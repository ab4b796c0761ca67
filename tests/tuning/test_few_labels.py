"""rbmlib.tuning.few_labels: balanced subsets, C chosen on validation only, the gate, the ledger,
resuming after a crash, and a run end to end on a tiny pre-registered protocol."""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from tuning_helpers import TINY

from rbmlib import data, metrics, paths
from rbmlib._device import machine_description
from rbmlib.cli import main
from rbmlib.rbm import BernoulliRBM
from rbmlib.tuning import few_labels as fl
from rbmlib.tuning import ledger, presets, protocol, spaces
from rbmlib.tuning.protocol import NotReadyError
from rbmlib.tuning.refit import evaluate
from rbmlib.tuning.study import tune

N = (2, 5)  # labels per class: the tiny preset's 300 training images hold 30 per class


def _random_lr(trial, preset):
    """A tiny space for the random-features control (protocol 2's widths take longer)."""
    return {"random__n_components": trial.suggest_int("random__n_components", 8, 16),
            "random__weight_scale": trial.suggest_float("random__weight_scale", 1.0, 10.0, log=True),
            "clf__C": trial.suggest_float("clf__C", 1e-2, 1e2, log=True)}


#: A pre-registered protocol with the three models the study compares, small enough to tune in seconds.
FEW = dataclasses.replace(
    TINY, n_trials={"lr": 1, "rbm-lr": 1, "random-lr": 1},
    spaces={"lr": spaces.lr2, "rbm-lr": spaces.rbm_lr, "random-lr": _random_lr},
    refit_random_states={m: (0, 1) for m in ("lr", "rbm-lr", "random-lr")},
    preregistered=True, min_complete=1, edge_margin=None,
)


# ----------------------------------------------------------------------------- pieces, no data

def test_a_balanced_subset_has_n_of_each_class_is_seeded_and_nested():
    y = np.repeat(np.arange(3), [7, 9, 11])
    picked = data.pick_per_class(y, 4, random_state=0)
    assert np.bincount(y[picked]).tolist() == [4, 4, 4] and len(set(picked)) == 12
    assert np.array_equal(picked, data.pick_per_class(y, 4, random_state=0))
    assert not np.array_equal(picked, data.pick_per_class(y, 4, random_state=1))
    assert set(data.pick_per_class(y, 2, random_state=0)) <= set(picked)  # nested: the same images first
    with pytest.raises(ValueError, match="class 0 has 7 examples; 8 requested"):
        data.pick_per_class(y, 8, random_state=0)


def test_the_C_grid_spans_the_protocols_range_one_point_per_decade():
    assert np.allclose(fl.c_grid(presets.PROTOCOL2), 10.0 ** np.arange(-4, 4))


def test_C_is_chosen_on_validation_and_the_model_fitted_on_the_labelled_rows_alone():
    X, y = make_classification(n_samples=160, n_features=30, n_informative=4, n_classes=3,
                               random_state=0)
    F, y_train, F_val, y_val = X[:40], y[:40], X[40:], y[40:]
    grid = [1e-3, 1e-2, 1e-1, 1, 10]
    clf, val_accuracy, converged = fl.tune_C(F, y_train, F_val, y_val, grid)
    by_hand = [LogisticRegression(C=C, max_iter=1000).fit(F, y_train).score(F_val, y_val) for C in grid]
    assert clf.C == grid[int(np.argmax(by_hand))] and val_accuracy == max(by_hand) and converged
    alone = LogisticRegression(C=clf.C, max_iter=1000).fit(F, y_train)
    np.testing.assert_allclose(clf.coef_, alone.coef_)  # not refit on the validation rows too
    # Other validation labels, another choice: the validation rows decide C.
    flipped = fl.tune_C(F, y_train, F_val, (y_val + 1) % 3, grid)[0].C
    assert flipped == grid[int(np.argmax([LogisticRegression(C=C, max_iter=1000).fit(F, y_train)
                                          .score(F_val, (y_val + 1) % 3) for C in grid]))]


def test_the_ledger_name_says_what_was_scored():
    assert fl.ledger_model("rbm-lr", 10) == "few-labels/rbm-lr/n=10"


def test_the_labels_per_class_are_those_the_presets_subsets_hold():
    assert fl.labels_per_class_for("protocol2") == fl.LABELS_PER_CLASS == (10, 100, 1000)  # full splits
    assert fl.labels_per_class_for("smoke") == (10,)  # 500 validation images: 50 per class
    assert fl.labels_per_class_for(dataclasses.replace(TINY, val_subset=None, train_subset=999)) == (10,)


def test_a_preset_without_the_compared_models_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path)
    with pytest.raises(ValueError, match="the paper preset lacks random-lr"):
        fl.few_labels("paper")


def test_one_rule_says_which_runs_hold_the_study_and_the_command_line_follows_it(tmp_path, monkeypatch,
                                                                                 capsys):
    assert [fl.applies_to(presets.get_preset(p).models) for p in ("paper", "protocol2", "smoke")] == [
        False, True, True]
    assert not fl.applies_to(["lr", "rbm-lr"]) and fl.applies_to(["cnn", *fl.FEATURE_MODELS])
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path)
    assert main(["few-labels", "--if-applicable", "--preset", "paper"]) == 0  # what `make tune` runs
    assert capsys.readouterr().out.strip() == (
        "rbmlib few-labels: the paper preset has no few-labels study; nothing to do")
    assert main(["few-labels", "--preset", "paper"]) == 1  # asked for by name: refused, in one line
    err = capsys.readouterr().err.strip()
    assert err.endswith("the paper preset lacks random-lr.") and "\n" not in err
    assert not any(tmp_path.iterdir())  # nothing written either way


# ----------------------------------------------------------------------------- on tiny real data

@pytest.fixture(scope="module")
def tuned(tmp_path_factory, fresh_mlflow_db, fashion_mnist):
    """FEW's three studies, tuned once for the module (copied into each test's own folder)."""
    root = tmp_path_factory.mktemp("few") / "results"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(paths, "RESULTS_DIR", root)
        mp.setattr(paths, "CACHE_DIR", root / "cache")
        paths.mlflow_db(FEW.name).parent.mkdir(parents=True)
        shutil.copy(fresh_mlflow_db, paths.mlflow_db(FEW.name))
        for model in FEW.models:
            tune(model, FEW, show_progress_bar=False)
    return root


@pytest.fixture
def results(tuned, tmp_path, monkeypatch):
    """A fresh copy of the tuned studies and their RBM cache, as this test's results folder."""
    root = tmp_path / "results"
    shutil.copytree(tuned, root)
    monkeypatch.setattr(paths, "RESULTS_DIR", root)
    monkeypatch.setattr(paths, "CACHE_DIR", root / "cache")
    monkeypatch.setitem(presets.PRESETS, FEW.name, FEW)  # for the command line
    return root


@pytest.fixture
def no_test_split(monkeypatch):
    """Fail if the test split is read; undo with the returned function."""
    load_split = data.load_split

    def guarded(split="train", **kwargs):
        assert split != "test", "the test split was read"
        return load_split(split, **kwargs)

    monkeypatch.setattr(data, "load_split", guarded)
    return lambda: monkeypatch.setattr(data, "load_split", load_split)


def _few_looks():
    looks = ledger.read(FEW.name)
    return looks[looks["model"].str.startswith("few-labels/")]


@pytest.mark.slow
def test_the_subsets_of_train_and_val_are_disjoint(fashion_mnist):
    X, y = data.load_split("train", subset=FEW.train_subset)
    X_val, y_val = data.load_split("val", subset=FEW.val_subset)
    train = {row.tobytes() for row in X[data.pick_per_class(y, 5, random_state=0)]}
    val = {row.tobytes() for row in X_val[data.pick_per_class(y_val, 5, random_state=0)]}
    assert len(train) == len(val) == 50 and not train & val


@pytest.mark.slow
def test_nothing_is_scored_before_the_studies_are_ready_and_evaluated(results, no_test_split, capsys):
    ready = dataclasses.replace(FEW, n_trials={**FEW.n_trials, "lr": 2})  # lr lacks a trial
    with pytest.raises(NotReadyError, match=r"lr: 1 of 2 finished trials.*rbmlib tune --preset tiny"):
        fl.few_labels(ready, labels_per_class=N)
    with pytest.raises(NotReadyError, match="rbm-lr seeds 0, 1 .*random-lr seeds 0, 1 .*rbmlib evaluate"):
        fl.few_labels(FEW, labels_per_class=N)
    no_test_split()
    evaluate(["rbm-lr"], FEW, seeds=[0])
    missing = r"not evaluated yet: rbm-lr seeds 1 \(trial 0\); random-lr seeds 0, 1"
    with pytest.raises(NotReadyError, match=missing):
        fl.few_labels(FEW, labels_per_class=N)
    capsys.readouterr()  # the evaluation's progress bar
    assert main(["few-labels", "--preset", FEW.name]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("rbmlib few-labels: The few-labels study reuses the final refits")
    assert "\n" not in err
    assert _few_looks().empty and not paths.few_labels_csv(FEW.name).exists()


@pytest.mark.slow
def test_end_to_end_every_look_is_in_the_ledger_once_and_the_rbm_is_the_evaluations(results, monkeypatch):
    evaluate(["rbm-lr", "random-lr"], FEW)

    def no_training(self, X, y=None):
        raise AssertionError("the RBM was trained again instead of loaded from the evaluation's cache")

    monkeypatch.setattr(BernoulliRBM, "fit", no_training)
    rows = fl.few_labels(FEW, labels_per_class=N)
    assert len(rows) == 12 and sorted(set(rows["model"])) == sorted(fl.FEATURE_MODELS)
    assert rows["test_accuracy"].between(0, 1).all() and rows["val_accuracy"].between(0, 1).all()
    assert rows["C"].isin(fl.c_grid(FEW)).all() and rows["seconds"].gt(0).all()
    assert (rows["machine"] == machine_description()).all()

    looks = _few_looks()
    assert len(looks) == 12 and (looks["digest"] == protocol.digest(FEW)).all()
    assert (looks["source"] == fl.SOURCE).all()
    for row in rows.itertuples():
        look = looks[(looks["model"] == f"few-labels/{row.model}/n={row.labels_per_class}")
                     & (looks["seed"] == row.seed)]
        assert len(look) == 1 and look["test_accuracy"].item() == row.test_accuracy
        assert json.loads(look["params"].item()) == {"features": row.model, "C": row.C,
                                                     "labels_per_class": row.labels_per_class,
                                                     "converged": bool(row.converged)}

    _, y_test = data.load_split("test", subset=FEW.test_subset)
    for row in rows.itertuples():  # each fit's test predictions are kept, and give back its score
        file = paths.few_labels_predictions_file(FEW.name, row.model, row.labels_per_class, row.seed)
        pred = np.load(file)
        assert pred.shape == y_test.shape
        assert metrics.accuracy(y_test, pred) == pytest.approx(row.test_accuracy)

    # The pixel row by hand: the seed's balanced subset, its C, scored on test.
    pixels = rows.query("model == 'lr' and labels_per_class == 5 and seed == 1").iloc[0]
    X, y = data.load_split("train", subset=FEW.train_subset)
    X_test, y_test = data.load_split("test", subset=FEW.test_subset)
    picked = data.pick_per_class(y, 5, random_state=1)
    clf = LogisticRegression(C=pixels["C"], max_iter=1000).fit(X[picked], y[picked])
    assert metrics.accuracy(y_test, clf.predict(X_test)) == pytest.approx(pixels["test_accuracy"])

    # Done is done: a rerun fits nothing and looks at nothing, and a second look is refused.
    monkeypatch.setattr(fl, "tune_C", lambda *a, **k: pytest.fail("a finished row was fitted again"))
    assert fl.few_labels(FEW, labels_per_class=N).equals(rows) and len(_few_looks()) == 12
    with pytest.raises(ledger.RepeatedLookError, match="few-labels/rbm-lr/n=2 seed 0"):
        ledger.check_unscored(FEW.name, [("few-labels/rbm-lr/n=2", 0)])


def _crash_on(monkeypatch, name, call):
    """Make ``fl.<name>`` raise on its ``call``-th call; returns the list of calls made."""
    original, calls = getattr(fl, name), []

    def wrapper(*args, **kwargs):
        calls.append(args)
        if len(calls) == call:
            raise KeyboardInterrupt(f"simulated crash in {name}")
        return original(*args, **kwargs)

    monkeypatch.setattr(fl, name, wrapper)
    return calls


@pytest.mark.slow
def test_a_crash_loses_nothing_done_and_a_rerun_scores_only_the_rest(results, monkeypatch):
    evaluate(["rbm-lr", "random-lr"], FEW)
    _crash_on(monkeypatch, "tune_C", 5)
    with pytest.raises(KeyboardInterrupt):
        fl.few_labels(FEW, labels_per_class=N)
    assert len(fl.read_results(FEW)) == 4 and len(_few_looks()) == 4
    calls = _crash_on(monkeypatch, "tune_C", 0)
    rows = fl.few_labels(FEW, labels_per_class=N)
    assert len(calls) == 8 and len(rows) == 12 and len(_few_looks()) == 12
    assert not rows.duplicated(["model", "labels_per_class", "seed"]).any()


@pytest.mark.slow
def test_a_crash_between_the_ledger_and_the_csv_restores_the_row_without_a_second_look(results, monkeypatch):
    evaluate(["rbm-lr", "random-lr"], FEW)
    _crash_on(monkeypatch, "_append_row", 3)  # the third look is in the ledger, not in the CSV
    with pytest.raises(KeyboardInterrupt):
        fl.few_labels(FEW, labels_per_class=N)
    assert len(fl.read_results(FEW)) == 2 and len(_few_looks()) == 3
    lost = _few_looks().iloc[2]
    _crash_on(monkeypatch, "_append_row", 0)
    calls = _crash_on(monkeypatch, "tune_C", 0)
    rows = fl.few_labels(FEW, labels_per_class=N)
    assert len(calls) == 9 and len(rows) == 12 and len(_few_looks()) == 12
    restored = rows[rows["model"].map(str) + rows["labels_per_class"].map(lambda n: f"/n={n}")
                    == lost["model"].removeprefix("few-labels/")].query(f"seed == {lost['seed']}")
    assert restored["test_accuracy"].item() == lost["test_accuracy"]
    assert restored["C"].item() == json.loads(lost["params"])["C"]


@pytest.mark.slow
def test_the_command_line_runs_the_study_and_prints_the_table(results, monkeypatch, capsys):
    evaluate(["rbm-lr", "random-lr"], FEW)
    # The command runs issue 13's sizes; the tiny preset holds 30 images per class.
    monkeypatch.setattr(fl, "few_labels", functools.partial(fl.few_labels, labels_per_class=N))
    assert main(["few-labels", "--preset", FEW.name]) == 0
    out = capsys.readouterr().out
    assert "RBM features" in out and "pixels" in out and "few_labels.csv" in out
    assert len(fl.read_results(FEW)) == 12


@pytest.mark.slow
def test_ready_only_scores_each_evaluated_refit_with_a_cached_rbm_and_leaves_the_rest(results, monkeypatch,
                                                                                       capsys):
    """What `make tune` runs after each model's refits: no error before, no RBM trained, nothing twice."""
    rows = fl.few_labels(FEW, labels_per_class=N, ready_only=True)
    assert set(rows["model"]) == {"lr"} and len(rows) == 4  # pixels need no refit
    monkeypatch.setattr(fl, "few_labels", functools.partial(fl.few_labels, labels_per_class=N))
    capsys.readouterr()
    assert main(["few-labels", "--preset", FEW.name, "--ready-only", "--skip-busy"]) == 0
    assert "nothing new to score (--ready-only" in capsys.readouterr().out  # and no table
    evaluate(["rbm-lr"], FEW, seeds=[0])
    for npz in (paths.CACHE_DIR / "rbm").glob("*.npz"):  # a new checkout: seed 0's RBM is gone
        npz.unlink()
    evaluate(["rbm-lr", "random-lr"], FEW, seeds=[1])
    with monkeypatch.context() as m:
        m.setattr(BernoulliRBM, "fit", lambda self, X, y=None: pytest.fail("ready_only trained an RBM"))
        rows = fl.few_labels(FEW, labels_per_class=N, ready_only=True)
    assert set(zip(rows["model"], rows["seed"])) == {("lr", 0), ("lr", 1), ("rbm-lr", 1), ("random-lr", 1)}
    assert len(_few_looks()) == len(rows) == 8
    with pytest.raises(NotReadyError, match=r"random-lr seeds 0 \(trial 0\)\. Run `rbmlib evaluate"):
        fl.few_labels(FEW, labels_per_class=N)  # the full run needs every refit
    evaluate(["random-lr"], FEW, seeds=[0])
    rows = fl.few_labels(FEW, labels_per_class=N)  # and trains the RBM that is not in the cache
    assert len(rows) == 12 and len(_few_looks()) == 12 and not rows.duplicated(fl._KEY).any()


@pytest.mark.slow
def test_until_starts_no_fit_past_the_deadline_and_a_rerun_goes_on(results, monkeypatch, capsys):
    import datetime

    from rbmlib.tuning.deadline import DeadlineStop

    evaluate(["rbm-lr", "random-lr"], FEW)
    past = datetime.datetime.now() - datetime.timedelta(minutes=1)
    with pytest.raises(DeadlineStop, match=r"few-labels fit \(few-labels/lr/n=2 seed 0\) would not end"):
        fl.few_labels(FEW, labels_per_class=N, until=past)
    assert _few_looks().empty
    soon = datetime.datetime.now() + datetime.timedelta(hours=1)
    monkeypatch.setattr(fl, "_expected_fit_s", lambda results, model, n: 7200.0 if n == 5 else None)
    with pytest.raises(DeadlineStop, match="n=5 seed 0"):  # the first n=2 fits, the longer n=5 does not
        fl.few_labels(FEW, labels_per_class=N, until=soon)
    assert len(_few_looks()) == 1
    monkeypatch.setattr(fl, "few_labels", functools.partial(fl.few_labels, labels_per_class=N))
    assert main(["few-labels", "--preset", FEW.name, "--until", f"{soon:%Y-%m-%dT%H:%M}"]) == 3
    assert "every look before it is recorded (exit status 3)" in capsys.readouterr().out
    assert main(["few-labels", "--preset", FEW.name, "--skip-busy"]) == 0
    assert len(fl.read_results(FEW)) == 12 and len(_few_looks()) == 12


@pytest.mark.slow
def test_ready_only_leaves_a_model_that_fills_the_memory_while_its_refits_run(results, monkeypatch):
    """random-lr's refits and its few-labels fits each fill much of the memory: not side by side."""
    from rbmlib.tuning.claim import claim

    evaluate(["rbm-lr", "random-lr"], FEW, seeds=[0])
    monkeypatch.setattr(protocol, "one_at_a_time", lambda preset, model: model == "random-lr")
    with claim(FEW.name, "random-lr", "evaluate"):  # its evaluation, still running its other seeds
        rows = fl.few_labels(FEW, labels_per_class=N, ready_only=True)
    assert set(zip(rows["model"], rows["seed"])) == {("lr", 0), ("lr", 1), ("rbm-lr", 0)}
    rows = fl.few_labels(FEW, labels_per_class=N, ready_only=True)  # its evaluation is over
    assert ("random-lr", 0) in set(zip(rows["model"], rows["seed"])) and len(rows) == 8
