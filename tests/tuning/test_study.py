"""rbmlib.tuning on tiny real subsets: studies run, resume, prune, survive divergence,
log to MLflow, reuse RBMs, and the evaluation touches the test split only after tuning."""

import dataclasses
import functools
import json
import time

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from optuna.trial import TrialState
from tuning_helpers import TINY

from rbmlib import _device, data, models, paths
from rbmlib.cli import main
from rbmlib.models import make_model
from rbmlib.nets import TorchClassifier
from rbmlib.rbm import BernoulliRBM
from rbmlib.tuning.refit import SUMMARY_COLUMNS, evaluate, read_predictions, summarize
from rbmlib.tuning import rbm_cache
from rbmlib.tuning import study as study_module
from rbmlib.tuning.objective import Splits
from rbmlib.tuning.presets import PROTOCOL2
from rbmlib.tuning import ledger
from rbmlib.tuning.study import load_study, tune

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tuning_results")]  # real data (or servers and processes): seconds each

REQUIRED_SUMMARY = ["model", "n_trials", "best_val_accuracy", "test_accuracy_mean",
                    "test_accuracy_std", "test_macro_f1_mean", "test_macro_f1_std", "n_seeds",
                    "best_params", "tune_seconds", "evaluate_seconds"]


@pytest.fixture(scope="module")
def splits(fashion_mnist):
    return Splits.load(TINY)




def _runs(experiment):
    client = mlflow.MlflowClient(f"sqlite:///{paths.mlflow_db(TINY.name)}")
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id])


def test_paths_keep_presets_apart():
    assert paths.summary_csv("paper") == paths.RESULTS_DIR / "summary.csv"
    assert paths.summary_csv("smoke") == paths.RESULTS_DIR / "smoke" / "summary.csv"
    assert paths.study_db("smoke", "lr") != paths.study_db("paper", "lr")


@pytest.mark.parametrize("preset, model", [(p, m) for p in (TINY, PROTOCOL2) for m in p.models])
def test_space_names_are_the_estimators_argument_names(preset, model):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    params = preset.spaces[model](trial, preset)
    assert params == trial.params  # the names Optuna stores (and MLflow logs) ...
    make_model(model, **preset.fixed_params(model), **params)  # ... are valid arguments


def test_study_runs_and_logs_every_trial_to_mlflow(splits):
    study = tune("rbm-fnn", TINY, splits=splits, show_progress_bar=False)
    trials = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(trials) == 2
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert complete, "the pruner may not prune the first trial (pruner_n_startup_trials=1)"
    t = complete[0]
    assert 0 <= t.value <= 1 and 0 <= t.user_attrs["val_macro_f1"] <= 1
    from rbmlib._device import native_bfloat16
    assert t.user_attrs["bfloat16"] == ("native" if native_bfloat16(torch.device("cpu")) else "emulated")
    assert t.user_attrs["machine"] == _device.machine_description()  # what a rerun must match
    # The best epoch is the first epoch of highest validation accuracy in the recorded curve.
    history = t.user_attrs["history"]
    best = max(history, key=lambda r: r["val_accuracy"])
    assert t.user_attrs["best_epoch"] == best["epoch"]
    assert len(history) <= TINY.n_iter["rbm-fnn"]

    client, runs = _runs("tiny/rbm-fnn")
    assert sorted(r.info.run_name for r in runs) == sorted(str(t.number) for t in trials)
    run = next(r for r in runs if r.info.run_name == str(t.number))
    # Same names in Optuna, in the estimator and in MLflow.
    assert set(run.data.params) == set(t.params) and "rbm__n_components" in run.data.params
    assert run.data.metrics["val_accuracy"] == pytest.approx(t.value)
    assert run.data.metrics["val_macro_f1"] == pytest.approx(t.user_attrs["val_macro_f1"])
    assert run.data.tags["state"] == "COMPLETE" and run.data.tags["model"] == "rbm-fnn"
    curve = client.get_metric_history(run.info.run_id, "curve/val_accuracy")
    assert [m.step for m in sorted(curve, key=lambda m: m.step)] == list(
        range(1, len(t.user_attrs["history"]) + 1))
    assert client.get_metric_history(run.info.run_id, "curve/rbm__reconstruction_error")


def test_resume_keeps_finished_trials_and_adds_only_the_missing_ones(splits):
    first = tune("lr", TINY, n_trials=2, splits=splits, show_progress_bar=False).trials
    study = tune("lr", TINY, n_trials=3, splits=splits, show_progress_bar=False)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    for before, after in zip(first, study.trials):
        assert (after.number, after.params, after.value) == (before.number, before.params, before.value)
    # A resumed sampler does not replay the first run's random draws.
    assert study.trials[2].params != study.trials[0].params
    again = tune("lr", TINY, n_trials=3, splits=splits, show_progress_bar=False)
    assert len(again.trials) == 3  # target reached: nothing runs
    _, runs = _runs("tiny/lr")
    assert len(runs) == 3


def test_a_study_tuned_under_other_fixed_settings_is_refused(splits):
    tune("rbm-lr", TINY, n_trials=1, splits=splits, show_progress_bar=False)
    longer = dataclasses.replace(TINY, rbm__n_iter=TINY.rbm__n_iter + 1)
    with pytest.raises(ValueError, match=r"rbm__n_iter.*Delete or move that study"):
        load_study("rbm-lr", longer)
    assert len(load_study("rbm-lr", TINY).trials) == 1  # the study itself is untouched


def test_a_study_tuned_on_another_make_up_of_the_model_is_refused(splits, monkeypatch):
    tune("rbm-lr", TINY, n_trials=1, splits=splits, show_progress_bar=False)
    scaled = lambda: models._rbm_pipeline(models._logistic_regression(), scale=True)  # noqa: E731
    monkeypatch.setitem(models.MODELS, "rbm-lr", dataclasses.replace(models.MODELS["rbm-lr"], build=scaled))
    with pytest.raises(ValueError, match=r"steps was .*is now .*scale: StandardScaler"):
        load_study("rbm-lr", TINY)


def test_pruned_trials_are_recorded_with_their_reason(splits, monkeypatch):
    # Any accuracy below 1.0 is pruned at the first epoch.
    monkeypatch.setattr(study_module, "make_pruner", lambda preset, model=None: optuna.pruners.ThresholdPruner(lower=1.0))
    study = tune("fnn", TINY, splits=splits, show_progress_bar=False)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    for t in study.trials:
        assert t.user_attrs["prune_reason"] == "ThresholdPruner at epoch 1"
        assert len(t.user_attrs["history"]) == 1
    _, runs = _runs("tiny/fnn")
    assert {r.data.tags["state"] for r in runs} == {"PRUNED"}


class _PruneFirst(optuna.pruners.BasePruner):
    """Prunes the first ``n`` trials at their first report."""

    def __init__(self, n):
        self.n = n

    def prune(self, study, trial):
        return trial.number < self.n


def test_the_budget_includes_its_floor_of_complete_trials(splits, monkeypatch):
    # Two finished trials are the budget, one of them complete: both first trials are pruned.
    monkeypatch.setattr(study_module, "make_pruner", lambda preset, model=None: _PruneFirst(2))
    floor = dataclasses.replace(TINY, min_complete=1)
    study = tune("fnn", floor, splits=splits, show_progress_bar=False)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2 + [TrialState.COMPLETE]
    again = tune("fnn", floor, splits=splits, show_progress_bar=False)
    assert len(again.trials) == 3  # budget met: nothing runs
    # An explicit n_trials is only that many finished trials.
    assert len(tune("fnn", floor, n_trials=4, splits=splits, show_progress_bar=False).trials) == 4


def test_a_diverging_trial_is_pruned_with_the_reason_and_the_study_goes_on(splits, monkeypatch):
    run_epoch, calls = TorchClassifier._run_epoch, []

    def nan_in_first_trial(self, *args):
        calls.append(self)
        loss = run_epoch(self, *args)
        return float("nan") if calls[0] is self else loss

    monkeypatch.setattr(TorchClassifier, "_run_epoch", nan_in_first_trial)
    study = tune("fnn", TINY, splits=splits, show_progress_bar=False)
    first, second = study.trials
    assert first.state == TrialState.PRUNED
    assert first.user_attrs["prune_reason"].startswith("diverged: FNNClassifier: training loss became nan")
    assert second.state == TrialState.COMPLETE


def test_a_trial_cut_while_training_its_rbm_is_run_again_from_the_checkpoint_to_the_same_rbm(splits, monkeypatch):
    class Cut(BaseException):  # as a session's end: not an error Optuna would catch
        pass

    checkpoint = rbm_cache._Checkpointer.__call__

    def cut_after_epoch_1(self, rbm, record):
        stop = checkpoint(self, rbm, record)
        if record["epoch"] == 1:
            raise Cut
        return stop

    params = {"rbm__n_components": 16, "rbm__learning_rate": 0.05, "rbm__batch_size": 64, "clf__C": 1.0}
    preset = dataclasses.replace(TINY, rbm__n_iter=3)
    monkeypatch.setattr(rbm_cache, "CHECKPOINT_S", 0.0)  # a checkpoint after every epoch
    monkeypatch.setattr(rbm_cache._Checkpointer, "__call__", cut_after_epoch_1)
    study = load_study("rbm-lr", preset)
    study.enqueue_trial(params)
    with pytest.raises(Cut):
        tune("rbm-lr", preset, splits=splits, show_progress_bar=False)
    monkeypatch.setattr(rbm_cache._Checkpointer, "__call__", checkpoint)
    time.sleep(2.5)  # past the grace period: the cut trial's heartbeat has stopped
    study = tune("rbm-lr", preset, n_trials=1, splits=splits, show_progress_bar=False)  # the failed trial, again
    cut, again = study.trials
    assert cut.state == TrialState.FAIL and again.state == TrialState.COMPLETE
    assert again.system_attrs["failed_trial"] == cut.number and again.params == params
    assert again.user_attrs["rbm_cached"] is False and again.user_attrs["rbm_resumed_epochs"] == 1
    rbm = {k: v for k, v in params.items() if k.startswith("rbm__")}
    fresh = lambda: make_model("rbm-lr", random_state=preset.random_state, rbm__n_iter=3,  # noqa: E731
                               **rbm).named_steps["rbm"]
    whole = fresh().fit(splits.X)
    loaded, cached = rbm_cache.fit_rbm(fresh(), splits.X)
    assert cached
    np.testing.assert_array_equal(loaded.components_, whole.components_)  # as if never cut
    assert [r["epoch"] for r in again.user_attrs["rbm_history"]] == [1, 2, 3]
    # A retry inherits its cut run's user attributes (Optuna's heartbeat callback): one whose RBM
    # did not go on from a checkpoint says so, instead of keeping what the run before it said.
    study.enqueue_trial(params, user_attrs={"rbm_resumed_epochs": 1})
    inherited = tune("rbm-lr", preset, n_trials=2, splits=splits, show_progress_bar=False).trials[-1]
    assert inherited.state == TrialState.COMPLETE and inherited.user_attrs["rbm_resumed_epochs"] == 0


def test_trials_with_the_same_rbm_train_it_once(splits, monkeypatch):
    fits = []
    fit = BernoulliRBM.fit
    monkeypatch.setattr(BernoulliRBM, "fit", lambda self, X, y=None: fits.append(1) or fit(self, X, y))
    rbm = {"rbm__n_components": 16, "rbm__learning_rate": 0.05, "rbm__batch_size": 64}
    study = load_study("rbm-lr", TINY)
    study.enqueue_trial({**rbm, "clf__C": 0.1})
    study.enqueue_trial({**rbm, "clf__C": 10.0})
    study = tune("rbm-lr", TINY, splits=splits, show_progress_bar=False)
    assert len(fits) == 1
    assert [t.user_attrs["rbm_cached"] for t in study.trials] == [False, True]
    assert study.trials[0].user_attrs["rbm_history"] == study.trials[1].user_attrs["rbm_history"]

    # rbm-fnn starts from rbm-lr's RBMs (both are the same here), already trained.
    fnn = tune("rbm-fnn", TINY, n_trials=1, splits=splits, show_progress_bar=False)
    first = fnn.trials[0]
    assert {k: v for k, v in first.params.items() if k.startswith("rbm__")} == rbm
    assert first.user_attrs["rbm_cached"] and len(fits) == 1

    # A new process finds it on disk, with the same weights.
    estimator = make_model("rbm-lr", random_state=TINY.random_state, rbm__n_iter=TINY.rbm__n_iter, **rbm)
    loaded, cached = rbm_cache.fit_rbm(estimator.named_steps["rbm"], splits.X)
    assert cached and len(fits) == 1
    trained = make_model("rbm-lr", random_state=TINY.random_state, rbm__n_iter=TINY.rbm__n_iter,
                         **rbm).named_steps["rbm"].fit(splits.X)
    np.testing.assert_array_equal(loaded.transform(splits.X_val), trained.transform(splits.X_val))


def test_tuning_never_reads_the_test_split_and_evaluation_writes_the_summary(monkeypatch, fashion_mnist):
    load_split = data.load_split

    def no_test(split="train", **kwargs):
        assert split != "test", "the test split was read during tuning"
        return load_split(split, **kwargs)

    monkeypatch.setattr(data, "load_split", no_test)
    for model in ("lr", "fnn"):
        tune(model, TINY, show_progress_bar=False)  # loads its own data through load_split
    monkeypatch.setattr(data, "load_split", load_split)

    evaluate(["lr", "fnn"], TINY, seeds=[0])
    rows = evaluate(["lr", "fnn"], TINY)  # resumes: only seeds 1 and 2 are new
    assert sorted(zip(rows["model"], rows["seed"])) == [(m, s) for m in ("fnn", "lr") for s in (0, 1, 2)]
    assert rows["test_accuracy"].between(0, 1).all() and rows["test_macro_f1"].between(0, 1).all()
    assert (rows["machine"] == _device.machine_description()).all()

    # Each refit's test predictions are kept, and give back its row's accuracy.
    _, y_test = data.load_split("test", subset=TINY.test_subset)
    for row in rows.itertuples():
        pred = read_predictions(TINY, row.model, row.trial_number, [row.seed])[row.seed]
        assert pred.shape == y_test.shape and np.isclose((pred == y_test).mean(), row.test_accuracy)
    # Every look is in the ledger, once.
    looks = ledger.read(TINY.name)
    assert sorted(zip(looks["model"], looks["seed"])) == sorted(zip(rows["model"], rows["seed"]))
    assert (looks["protocol"] == "tiny").all() and looks["params"].tolist() == rows["refit_params"].tolist()
    # A lost predictions file is not made again: that would be a second look at the test set.
    lost = paths.predictions_file(TINY.name, "lr", int(rows.query("model == 'lr'")["trial_number"].iloc[0]), 0)
    lost.unlink()
    with pytest.raises(ledger.RepeatedLookError, match="tiny/lr seed 0 was scored on the test split already"):
        evaluate(["lr"], TINY)
    assert len(ledger.read(TINY.name)) == len(looks) and not lost.exists()

    summary = summarize(TINY)
    assert pd.read_csv(paths.summary_csv("tiny")).columns.tolist() == SUMMARY_COLUMNS
    assert set(REQUIRED_SUMMARY) <= set(summary.columns)
    assert summary["model"].tolist() == ["lr", "fnn"] and (summary["n_seeds"] == 3).all()
    fnn = summary.set_index("model").loc["fnn"]
    best = load_study("fnn", TINY).best_trial
    assert json.loads(fnn["best_params"]) == best.params
    refit = json.loads(fnn["refit_params"])
    assert refit["n_iter"] == best.user_attrs["best_epoch"] and refit["early_stopping"] is False
    assert fnn["tune_seconds"] > 0 and fnn["evaluate_seconds"] > 0
    assert summary.set_index("model").loc["lr", "test_accuracy_std"] == 0  # lbfgs has no randomness


def test_a_study_tuned_afresh_is_not_scored_on_the_test_set_again(splits):
    # What happened to the RBM models of protocol 1: changed and scored a second time.
    tune("lr", TINY, n_trials=1, splits=splits, show_progress_bar=False)
    old = evaluate(["lr"], TINY, seeds=[0])
    paths.study_db(TINY.name, "lr").unlink()  # tuned again from scratch: another best trial
    tune("lr", TINY, n_trials=1, seed=1, splits=splits, show_progress_bar=False)
    with pytest.raises(ledger.RepeatedLookError, match="scored on the test split already"):
        evaluate(["lr"], TINY, seeds=[0])
    assert evaluate(["lr"], TINY, seeds=[]).equals(old) and len(ledger.read(TINY.name)) == 1


def test_a_refit_killed_after_its_look_gets_its_row_from_the_ledger_not_a_second_look(splits, monkeypatch):
    from rbmlib.tuning import refit

    tune("lr", TINY, n_trials=1, splits=splits, show_progress_bar=False)
    append_row = refit.append_row

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed between the ledger and the row")

    monkeypatch.setattr(refit, "append_row", killed)
    with pytest.raises(KeyboardInterrupt):
        evaluate(["lr"], TINY, seeds=[0, 1])
    assert len(ledger.read(TINY.name)) == 1 and not paths.evaluation_csv(TINY.name).exists()
    monkeypatch.setattr(refit, "append_row", append_row)
    fits = []
    monkeypatch.setattr(refit, "fit_final", functools.partial(_count, refit.fit_final, fits))
    rows = evaluate(["lr"], TINY, seeds=[0, 1])
    looks = ledger.read(TINY.name)
    assert len(fits) == 1 and len(looks) == 2  # seed 1 fitted and scored; seed 0 only restored
    assert rows.sort_values("seed")["test_accuracy"].tolist() == looks.sort_values("seed")["test_accuracy"].tolist()
    assert rows.set_index("seed")["seconds"].isna().tolist() == [True, False]


def _count(function, calls, *args, **kwargs):
    calls.append(args)
    return function(*args, **kwargs)


def test_command_line_tunes_evaluates_and_summarises_the_smoke_preset(capsys, fashion_mnist):
    assert main(["tune", "--model", "lr", "--preset", "smoke", "--n-trials", "1"]) == 0
    assert main(["evaluate", "--model", "lr", "--preset", "smoke"]) == 0
    assert main(["summary", "--preset", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "smoke/lr: 1 finished trials" in out and "summary.csv" in out
    summary = pd.read_csv(paths.summary_csv("smoke"))
    assert summary["model"].tolist() == ["lr"] and summary.loc[0, "n_seeds"] == 3
    assert not paths.summary_csv("paper").exists()


def test_tuning_bfloat16_on_a_machine_without_it_says_so(monkeypatch, capsys):
    from rbmlib import _device

    monkeypatch.setattr(_device, "native_bfloat16", lambda device: False)
    bf16 = dataclasses.replace(TINY, precision="bfloat16")
    study_module._warn_emulated_bfloat16(bf16, "fnn")
    assert "multiplies in bfloat16, which this cpu has no hardware for" in capsys.readouterr().err
    study_module._warn_emulated_bfloat16(bf16, "lr")  # no torch products: nothing to say
    monkeypatch.setattr(_device, "native_bfloat16", lambda device: True)
    study_module._warn_emulated_bfloat16(bf16, "fnn")
    assert capsys.readouterr().err == ""
