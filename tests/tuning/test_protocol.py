"""Protocols: the digest, the edges of a search space, and the locks around the test look."""

from __future__ import annotations

import dataclasses
import shutil

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from tuning_helpers import TINY

from rbmlib import BernoulliRBM, paths
from rbmlib.tuning import ledger, protocol, spaces
from rbmlib.tuning.presets import PAPER, PROTOCOL2, SMOKE
from rbmlib.tuning.protocol import NotReadyError, ProtocolLockedError
from rbmlib.tuning.study import load_study, make_pruner

#: A pre-registered protocol small enough to run: two logistic regressions on a tiny subset.
LOCKED = dataclasses.replace(
    TINY, name="locked", n_trials={"lr": 2, "pca-lr": 2},
    spaces={"lr": spaces.lr, "pca-lr": spaces.pca_lr2},
    refit_random_states={"lr": (0, 1), "pca-lr": (0, 1)},
    preregistered=True, min_complete=2, edge_margin=None,
)


def _study(trials, name="s"):
    """An in-memory study holding ``trials`` (``create_trial`` keyword dicts)."""
    study = optuna.create_study(direction="maximize", study_name=name)
    for t in trials:
        study.add_trial(create_trial(**t))
    return study


# ----------------------------------------------------------------------------- digest

def test_the_digest_covers_what_the_protocol_fixes_and_nothing_else():
    d = protocol.digest(PROTOCOL2)
    assert d == protocol.digest(PROTOCOL2) and len(d) == 12
    assert protocol.digest(dataclasses.replace(PROTOCOL2, heartbeat_interval=5)) == d  # how, not what
    assert protocol.digest(dataclasses.replace(PROTOCOL2, n_trials={**PROTOCOL2.n_trials, "lr": 31})) != d
    assert protocol.digest(dataclasses.replace(PROTOCOL2, precision="float32")) != d
    widened = {**PROTOCOL2.spaces, "lr": lambda trial, preset: {"C": trial.suggest_float("C", 1e-5, 1e3, log=True)}}
    assert protocol.digest(dataclasses.replace(PROTOCOL2, spaces=widened)) != d
    assert protocol.digest(PAPER) != d


def test_protocol_1s_spaces_are_the_ones_its_committed_studies_searched():
    for model in PAPER.models:
        storage = f"sqlite:///{paths.study_db('paper', model)}"
        last = optuna.load_study(study_name=f"paper/{model}", storage=storage).trials[-1]
        assert last.distributions == protocol.space_distributions(PAPER.spaces[model], PAPER), model


def test_protocol_2s_code_states_the_protocol_its_committed_studies_ran_under():
    """A change to shared code (the smoke preset reads the same spaces) must leave protocol 2 as it ran."""
    from rbmlib.report.search import read_studies

    for model, study in read_studies(PROTOCOL2.models, PROTOCOL2).items():
        if study is None or not study.trials:
            continue  # not started yet
        assert study.user_attrs["protocol_digest"] == protocol.digest(PROTOCOL2), model
        now = protocol.space_distributions(PROTOCOL2.spaces[model], PROTOCOL2)
        since = study.user_attrs["protocol_digests"][-1]["from_trial"]  # the last change recorded
        for trial in study.trials[since:]:
            # A trial cut short is retried with its parameters and the ranges it drew them from.
            retried = trial.system_attrs.get("failed_trial")
            if trial.params and (retried is None or retried >= since):
                assert trial.distributions == now, (model, trial.number)
        # and before the change, ranges were only ever widened (a warm start's enqueued trials
        # wait without distributions)
        last = [t for t in study.trials if t.state != optuna.trial.TrialState.WAITING][-1]
        assert last.distributions.keys() == now.keys(), model
        assert all(_within(dist, now[name]) for name, dist in last.distributions.items()), model


def _within(narrow, wide) -> bool:
    """Whether ``wide`` is ``narrow`` with one or both ends moved outwards."""
    if isinstance(narrow, CategoricalDistribution):
        return narrow == wide
    same_kind = type(narrow) is type(wide) and narrow.log == wide.log
    return same_kind and wide.low <= narrow.low and narrow.high <= wide.high


def test_the_smoke_preset_is_protocol_2_in_miniature():
    assert SMOKE.models == PROTOCOL2.models and SMOKE.pruner == PROTOCOL2.pruner
    assert {m: SMOKE.spaces[m] for m in SMOKE.models} == dict(PROTOCOL2.spaces)
    assert set(SMOKE.n_iter) == set(PROTOCOL2.n_iter)
    tiny = protocol.space_distributions(SMOKE.spaces["rbm-lr"], SMOKE)
    assert tiny["rbm__n_components"].high <= 64 and "rbm__n_iter" not in tiny  # fixed at the preset's


def test_protocol_2_fixes_equal_budgets_five_seeds_one_pruner_and_the_locks():
    assert len(set(PROTOCOL2.n_trials.values())) == 1 and min(PROTOCOL2.n_trials.values()) >= 30
    assert PROTOCOL2.equal_finished  # and the same count of finished trials for every model, whatever it takes
    assert PROTOCOL2.min_complete >= 15 and PROTOCOL2.preregistered and PROTOCOL2.edge_margin
    assert all(len(seeds) == 5 for seeds in PROTOCOL2.refit_random_states.values())
    for model in ("fnn", "cnn", "rbm-fnn"):
        pruner = make_pruner(PROTOCOL2, model)
        assert isinstance(pruner, optuna.pruners.HyperbandPruner)
        assert pruner._max_resource == PROTOCOL2.n_iter[model]  # one rung ladder up to the model's cap
    rbm = protocol.space_distributions(PROTOCOL2.spaces["rbm-lr"], PROTOCOL2)
    # At least issue 13's 256 to 8,192; wider where a best value sat on an edge (spaces.py says when).
    assert rbm["rbm__n_components"].low == 256 and rbm["rbm__n_components"].high >= 8192
    for model in ("rbm-fnn", "pre-fnn"):  # every RBM model searches the same RBMs
        same = protocol.space_distributions(PROTOCOL2.spaces[model], PROTOCOL2)
        assert all(same[name] == dist for name, dist in rbm.items() if name.startswith("rbm__")), model
    assert rbm["rbm__n_components"].log and rbm["rbm__n_iter"].high >= 30
    assert set(rbm["rbm__persistent"].choices) == {True, False}  # CD-1 against PCD-1


# ----------------------------------------------------------------------------- edges

def _best(params, distributions, **user_attrs):
    return _study([dict(params=params, distributions=distributions, value=0.9, user_attrs=user_attrs),
                   dict(params=params, distributions=distributions, value=0.5, user_attrs=user_attrs)])


def _preset_with(space, **fields):
    return dataclasses.replace(TINY, n_trials={"fnn": 1}, spaces={"fnn": space},
                               refit_random_states={"fnn": (0,)}, edge_margin=0.03, **fields)


@pytest.mark.parametrize("value, edge", [(1e-4, "lower"), (1.1e-4, "lower"), (1e-3, None),
                                         (0.9e-2, "upper"), (1e-2, "upper")])
def test_a_best_value_near_an_end_of_a_log_range_is_an_edge(value, edge):
    space = lambda trial, preset: {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)}  # noqa: E731
    dist = {"learning_rate": FloatDistribution(1e-4, 1e-2, log=True)}
    found = protocol.edges(_best({"learning_rate": value}, dist, best_epoch=1),
                           _preset_with(space, n_iter={"fnn": 10}), "fnn")
    assert bool(found) == (edge is not None)
    if edge:
        assert f"at the {edge} end of [0.0001, 0.01] (log)" in found[0]


def test_natural_limits_two_way_choices_and_the_epoch_cap():
    def space(trial, preset):
        return {"dropout": trial.suggest_float("dropout", 0.0, 0.5),
                "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
                "flag": trial.suggest_categorical("flag", [True, False]),
                "hidden_units": trial.suggest_int("hidden_units", 64, 1024, log=True)}
    dists = {"dropout": FloatDistribution(0.0, 0.5), "batch_size": CategoricalDistribution([32, 64, 128]),
             "flag": CategoricalDistribution([True, False]), "hidden_units": IntDistribution(64, 1024, log=True)}
    params = {"dropout": 0.0, "batch_size": 128, "flag": True, "hidden_units": 256}
    found = protocol.edges(_best(params, dists, best_epoch=10), _preset_with(space, n_iter={"fnn": 10}), "fnn")
    # dropout 0 cannot be widened, a two-way choice has no edge; the largest batch and the cap are edges.
    assert len(found) == 2
    assert "best `batch_size` = 128 is at the upper end of {32, 64, 128}" in found[0]
    assert found[1] == "best epoch 10 is the cap of 10 epochs"


def test_a_stated_resource_limit_is_a_caveat_not_an_edge():
    space = lambda trial, preset: {"random__n_components": trial.suggest_int("random__n_components", 256, 32768, log=True)}  # noqa: E731
    dist = {"random__n_components": IntDistribution(256, 32768, log=True)}
    study = _best({"random__n_components": 32000}, dist, best_epoch=1)
    open_ended = _preset_with(space, n_iter={"fnn": 10})
    limited = _preset_with(space, n_iter={"fnn": 10}, resource_limits={"random__n_components": (None, 32768)})
    assert protocol.edges(study, open_ended, "fnn")  # without the limit: an edge that blocks the look
    assert protocol.resource_limited(study, open_ended, "fnn") == []
    assert protocol.edges(study, limited, "fnn") == []
    assert protocol.resource_limited(study, limited, "fnn") == [
        "best `random__n_components` = 32000 is at the resource limit, the upper end of [256, 32768] (log)"]
    middle = _best({"random__n_components": 4096}, dist, best_epoch=1)
    assert protocol.resource_limited(middle, limited, "fnn") == []  # a limit only matters when reached
    assert protocol.digest(limited) != protocol.digest(open_ended)  # part of the protocol


# ----------------------------------------------------------------------------- locks

def test_check_ready_names_every_study_that_is_not_finished():
    lr_space = protocol.space_distributions(spaces.lr, LOCKED)
    one_trial = _study([dict(params={"C": 0.1}, distributions=lr_space, value=0.8)])
    with pytest.raises(NotReadyError) as info:
        protocol.check_ready(LOCKED, {"lr": one_trial, "pca-lr": None})
    message = str(info.value)
    assert "lr: 1 of 2 finished trials, 1 of at least 2 complete" in message
    assert "pca-lr: no study yet" in message and "rbmlib tune --preset locked" in message

    two = _study([dict(params={"C": c}, distributions=lr_space, value=v) for c, v in ((0.1, 0.8), (1.0, 0.7))])
    other = _study([dict(params={"C": c}, distributions=lr_space, value=v) for c, v in ((0.1, 0.8), (1.0, 0.7))])
    other.set_user_attr("protocol_digest", "0123456789ab")
    with pytest.raises(NotReadyError, match="pca-lr: tuned under protocol 0123456789ab, the code states"):
        protocol.check_ready(LOCKED, {"lr": two, "pca-lr": other})
    assert not TINY.preregistered and protocol.check_ready(TINY, {}) == protocol.digest(TINY)


def test_with_equal_finished_every_study_runs_to_the_most_that_any_has():
    equal = dataclasses.replace(LOCKED, equal_finished=True)
    assert protocol.finished_targets(LOCKED, {"lr": 5, "pca-lr": 1}) == {"lr": 2, "pca-lr": 2}
    assert protocol.finished_targets(equal, {"lr": 5, "pca-lr": 1}) == {"lr": 5, "pca-lr": 5}
    assert protocol.finished_targets(equal, {"lr": 1}) == {"lr": 2, "pca-lr": 2}  # never below n_trials
    lr_space = protocol.space_distributions(spaces.lr, LOCKED)
    pca_space = protocol.space_distributions(spaces.pca_lr2, LOCKED)
    three = _study([dict(params={"C": c}, distributions=lr_space, value=v)
                    for c, v in ((0.1, 0.8), (1.0, 0.7), (3.0, 0.6))])
    two = _study([dict(params={"pca__n_components": n, "clf__C": 1.0}, distributions=pca_space, value=v)
                  for n, v in ((20, 0.8), (40, 0.7))])
    protocol.check_ready(LOCKED, {"lr": three, "pca-lr": two})  # each has its own budget
    assert protocol.budget_problems(equal, {"lr": three, "pca-lr": two}) == [
        "pca-lr: 2 of 3 finished trials, 2 of at least 2 complete"]
    with pytest.raises(NotReadyError, match="pca-lr: 2 of 3 finished trials"):
        protocol.check_ready(equal, {"lr": three, "pca-lr": two})


def test_equal_finished_changes_protocol_2s_digest_and_no_other_presets():
    """Stated before protocol 2's test look; protocol 1 and the smoke preset keep their digests."""
    assert "equal_finished" in protocol.describe(PROTOCOL2)["preset"]
    assert "equal_finished" not in protocol.describe(PAPER)["preset"]
    assert protocol.digest(dataclasses.replace(PROTOCOL2, equal_finished=False)) != protocol.digest(PROTOCOL2)


@pytest.mark.usefixtures("tuning_results")
def test_a_protocol_that_looked_at_the_test_set_is_closed():
    protocol.check_open(LOCKED)  # no look yet
    ledger.append(LOCKED.name, {"digest": protocol.digest(LOCKED), "model": "lr", "seed": 0, "trial_number": 0,
                                "params": "{}", "test_accuracy": 0.8, "test_macro_f1": 0.8})
    with pytest.raises(ProtocolLockedError, match=r"locked protocol was scored on the test split \(1 looks"):
        protocol.check_open(LOCKED)
    ledger.append(TINY.name, {"digest": "x", "model": "lr", "seed": 0, "trial_number": 0, "params": "{}",
                              "test_accuracy": 0.8, "test_macro_f1": 0.8})
    protocol.check_open(TINY)  # not pre-registered: the smoke machinery stays open


def test_record_digest_keeps_the_history_of_a_widened_protocol():
    study = optuna.create_study(direction="maximize")
    first = protocol.record_digest(study, LOCKED)
    study.add_trial(create_trial(params={}, distributions={}, value=0.5))
    assert protocol.record_digest(study, LOCKED) == first  # unchanged: no new entry
    wider = dataclasses.replace(LOCKED, spaces={**LOCKED.spaces, "lr": spaces.lr2})
    second = protocol.record_digest(study, wider)
    assert study.user_attrs["protocol_digests"] == [{"digest": first, "from_trial": 0},
                                                    {"digest": second, "from_trial": 1}]
    assert study.user_attrs["protocol_digest"] == second


@pytest.mark.slow
@pytest.mark.usefixtures("tuning_results")
def test_the_locks_of_a_preregistered_protocol_end_to_end(fresh_mlflow_db, fashion_mnist):
    from rbmlib.tuning.refit import evaluate
    from rbmlib.tuning.study import tune

    paths.mlflow_db(LOCKED.name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(fresh_mlflow_db, paths.mlflow_db(LOCKED.name))
    tune("lr", LOCKED, show_progress_bar=False)
    with pytest.raises(NotReadyError, match="pca-lr: no study yet"):  # no test score while a model is tuned
        evaluate(["lr"], LOCKED)
    assert not paths.test_ledger(LOCKED.name).exists()
    tune("pca-lr", LOCKED, show_progress_bar=False)
    assert load_study("pca-lr", LOCKED).user_attrs["protocol_digest"] == protocol.digest(LOCKED)
    restated = dataclasses.replace(LOCKED, resource_limits={"C": (None, 1e4)})
    tune("lr", restated, show_progress_bar=False)  # at its budget: no trial, but the change is recorded
    history = load_study("lr", restated).user_attrs["protocol_digests"]
    assert history[-1] == {"digest": protocol.digest(restated), "from_trial": 2}
    tune("lr", LOCKED, show_progress_bar=False)  # and so is the change back

    evaluate(["lr", "pca-lr"], LOCKED, seeds=[0])
    looks = ledger.read(LOCKED.name)
    assert len(looks) == 2 and (looks["digest"] == protocol.digest(LOCKED)).all()
    with pytest.raises(ProtocolLockedError, match="its studies are closed"):
        tune("lr", LOCKED, n_trials=3, show_progress_bar=False)
    evaluate(["lr"], LOCKED, seeds=[0])  # already scored, predictions kept: nothing to do, no new look
    assert len(ledger.read(LOCKED.name)) == 2
    changed = dataclasses.replace(LOCKED, spaces={**LOCKED.spaces, "lr": spaces.lr2})
    with pytest.raises((ProtocolLockedError, NotReadyError), match="tuned under protocol|cannot change"):
        evaluate(["lr"], changed, seeds=[1])  # the rest of the seeds under a changed protocol: refused
    evaluate(["lr"], LOCKED, seeds=[1])  # the protocol as it was: its remaining seeds are scored
    assert len(ledger.read(LOCKED.name)) == 3


@pytest.mark.slow
@pytest.mark.usefixtures("tuning_results")
def test_tune_runs_a_study_on_to_the_count_of_the_study_with_the_most(fresh_mlflow_db, fashion_mnist, capsys,
                                                                       monkeypatch):
    from rbmlib.cli import SHORT_OF_BUDGET, main
    from rbmlib.tuning import presets
    from rbmlib.tuning.study import budget, tune

    equal = dataclasses.replace(LOCKED, name="equal", equal_finished=True,
                                spaces={"lr": spaces.lr, "pca-lr": _tiny_pca_lr})
    monkeypatch.setitem(presets.PRESETS, "equal", equal)  # for the command line
    paths.mlflow_db(equal.name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(fresh_mlflow_db, paths.mlflow_db(equal.name))
    tune("lr", equal, n_trials=3, show_progress_bar=False)  # more than its budget of 2
    assert budget(equal, "pca-lr") == (3, 2)
    tune("pca-lr", equal, show_progress_bar=False)
    assert protocol.counts(load_study("pca-lr", equal)) == (3, 3)
    protocol.check_ready(equal, {m: load_study(m, equal) for m in equal.models})
    assert main(["status", "--preset", "equal", "--budgets"]) == 0
    tune("pca-lr", equal, n_trials=4, show_progress_bar=False)
    assert main(["status", "--preset", "equal", "--budgets"]) == SHORT_OF_BUDGET
    assert "equal/lr: 3 of 4 finished trials" in capsys.readouterr().out
    # With an edge margin, the status says which best values are on an edge, or which is nearest one.
    monkeypatch.setitem(presets.PRESETS, "equal", dataclasses.replace(equal, edge_margin=0.03))
    assert main(["status", "--preset", "equal"]) == 0
    out = capsys.readouterr().out
    assert "within 3% of its range's width of an end" in out and "nearest an end: " in out


def _tiny_pca_lr(trial, preset):  # components that the tiny training subset always has
    return {"pca__n_components": trial.suggest_int("pca__n_components", 5, 50, log=True),
            "clf__C": trial.suggest_float("clf__C", 0.01, 10.0, log=True)}


def _tiny_pre_fnn(trial, preset):
    return {"rbm__n_components": trial.suggest_int("rbm__n_components", 8, 16, step=8),
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-2, log=True)}


def _tiny_random_lr(trial, preset):
    return {"random__n_components": trial.suggest_int("random__n_components", 8, 32, log=True),
            "random__weight_scale": trial.suggest_float("random__weight_scale", 1.0, 30.0, log=True),
            "clf__C": trial.suggest_float("clf__C", 0.01, 10.0, log=True)}


@pytest.mark.slow
@pytest.mark.usefixtures("tuning_results")
def test_the_controls_tune_and_refit_through_the_rbm_cache(fresh_mlflow_db, fashion_mnist, monkeypatch):
    """random-lr and pre-fnn (whose RBM comes from the cache, frozen) run the whole way."""
    from rbmlib.tuning.refit import evaluate
    from rbmlib.tuning.study import tune

    controls = dataclasses.replace(
        TINY, name="controls", n_trials={"random-lr": 2, "pre-fnn": 2},
        spaces={"random-lr": _tiny_random_lr, "pre-fnn": _tiny_pre_fnn},
        n_iter={"pre-fnn": 2}, refit_random_states={"random-lr": (0,), "pre-fnn": (0,)}, pruner="hyperband")
    paths.mlflow_db(controls.name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(fresh_mlflow_db, paths.mlflow_db(controls.name))
    transforms = []  # pre-fnn starts a network from the RBM's weights: it never needs the RBM's features
    with monkeypatch.context() as patch:
        patch.setattr(BernoulliRBM, "transform", lambda self, X: transforms.append(len(X)))
        for model in controls.models:
            study = tune(model, controls, show_progress_bar=False)
            assert sum(t.state == TrialState.COMPLETE for t in study.trials) >= 1
    assert transforms == []
    assert "rbm_cached" in load_study("pre-fnn", controls).trials[0].user_attrs  # the RBM went through the cache
    rows = evaluate(None, controls)
    assert set(rows["model"]) == {"random-lr", "pre-fnn"} and rows["test_accuracy"].between(0, 1).all()
