"""rbmlib.report.paired: the pre-stated decision rule on synthetic predictions whose answer is known."""

import dataclasses
import json

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import create_trial
from tuning_helpers import TINY

from rbmlib import paths, stats
from rbmlib.report import paired, results
from rbmlib.tuning.presets import PAPER, PROTOCOL2
from rbmlib.tuning.protocol import space_distributions

N_TEST = 2000
RNG = np.random.default_rng(0)
Y = RNG.integers(0, 10, N_TEST)
# Protocol 2's models and seeds, under a name of its own: its files go under the test's results folder.
P2 = dataclasses.replace(PROTOCOL2, name="p2-test", refit_random_states={m: (0, 1, 2) for m in PROTOCOL2.models})


def _preds(accuracy, seed):
    """Predictions right on about ``accuracy`` of the images (a wrong one is the next class)."""
    wrong = np.random.default_rng(seed).random(N_TEST) > accuracy
    return np.where(wrong, (Y + 1) % 10, Y)


def _compare(acc_a, acc_b, seeds=(0, 1, 2)):
    a = [_preds(acc, 10 + s) for s, acc in zip(seeds, np.broadcast_to(acc_a, len(seeds)))]
    b = [_preds(acc, 20 + s) for s, acc in zip(seeds, np.broadcast_to(acc_b, len(seeds)))]
    return stats.compare(Y, a, b, n_resamples=2000)


def test_a_clearly_better_model_is_declared_better_and_the_mirror_image_too():
    assert paired.verdict(_compare(0.90, 0.80)) == paired.A_BETTER
    assert paired.verdict(_compare(0.80, 0.90)) == paired.B_BETTER


def test_a_small_difference_is_no_detectable_difference():
    record = _compare(0.850, 0.845)
    assert abs(record["difference"]) < 0.02 and paired.verdict(record) == paired.NO_DIFFERENCE


def test_losing_one_seed_pair_is_enough_to_decide_nothing():
    # Far better on average, but seed 2 of a is worse than seed 2 of b.
    record = _compare([0.95, 0.95, 0.70], [0.80, 0.80, 0.80])
    assert record["ci_low"] > 0 and record["pairs_a_better"] == 2
    assert paired.verdict(record) == paired.NO_DIFFERENCE


def _record(**changes):
    clear = {"difference": 0.02, "ci_low": 0.01, "ci_high": 0.03, "se_total": 0.005, "n_seeds": 5,
             "pairs_a_better": 5, "pair_max": 0.03, "mcnemar_p_max": 0.001}
    return {**clear, **changes}


@pytest.mark.parametrize("changes, expected", [
    ({}, paired.A_BETTER),
    ({"mcnemar_p_max": 0.02}, paired.NO_DIFFERENCE),  # below 0.05, but not below 0.05 / 4
    ({"mcnemar_p_max": 0.012}, paired.A_BETTER),
    ({"se_total": 0.011}, paired.NO_DIFFERENCE),  # 0.02 is less than two standard errors
    ({"se_total": float("nan")}, paired.NO_DIFFERENCE),  # one seed: no seed error, no verdict
    ({"ci_low": -0.001}, paired.NO_DIFFERENCE),
    ({"pairs_a_better": 4}, paired.NO_DIFFERENCE),
    ({"difference": -0.02, "ci_low": -0.03, "ci_high": -0.01, "pairs_a_better": 0, "pair_max": -0.01},
     paired.B_BETTER),
    ({"difference": -0.02, "ci_low": -0.03, "ci_high": -0.01, "pairs_a_better": 0, "pair_max": 0.001},
     paired.NO_DIFFERENCE),  # b loses one pair
])
def test_each_condition_of_the_rule(changes, expected):
    assert paired.verdict(_record(**changes)) == expected


def test_the_rule_in_words_states_the_constants():
    text = paired.rule_sentence()
    assert "0.05/4 = 0.0125" in text and "2 standard errors" in text and "95% paired bootstrap" in text
    assert all(f"{a} vs {b}" in text for a, b in paired.COMPARISONS)


def _summary(models, best_trial=0):
    return pd.DataFrame([{"model": m, "best_trial": best_trial, "best_val_accuracy": 0.8 + 0.01 * i,
                          "best_params": json.dumps({})} for i, m in enumerate(models)])


def _store(preset, model, accuracy, seeds=(0, 1, 2), trial=0):
    for s in seeds:
        path = paths.predictions_file(preset.name, model, trial, s)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, _preds(accuracy, sum(map(ord, model)) * 10 + s).astype(np.int8))


def _study(params, distributions, value=0.9, **user_attrs):
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(params=params, distributions=distributions, value=value, user_attrs=user_attrs))
    return study


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    return tmp_path


def test_compare_models_reads_the_stored_predictions_and_says_what_it_could_not_compare(results_dir):
    _store(P2, "lr", 0.80)
    _store(P2, "rbm-lr", 0.90)
    _store(P2, "random-lr", 0.895)
    _store(P2, "fnn", 0.90)
    _store(P2, "rbm-fnn", 0.80, seeds=(0, 1))  # one refit short
    # pre-fnn: tuned, not scored
    table = paired.compare_models(P2, _summary(P2.models), {}, y_true=Y, n_resamples=1000).set_index(["a", "b"])
    assert table.loc[("rbm-lr", "lr"), "verdict"] == paired.A_BETTER
    assert table.loc[("rbm-lr", "lr"), "winner"] == "rbm-lr" and table.loc[("rbm-lr", "lr"), "n_seeds"] == 3
    assert table.loc[("rbm-lr", "random-lr"), "verdict"] == paired.NO_DIFFERENCE
    assert table.loc[("rbm-fnn", "fnn"), "verdict"] == paired.NOT_EVALUATED
    assert table.loc[("pre-fnn", "fnn"), "verdict"] == paired.NOT_EVALUATED
    shown = paired.paired_table(table.reset_index()).set_index("Comparison")
    assert shown.loc["rbm-lr vs lr", "Verdict"] == "rbm-lr better"
    assert shown.loc["rbm-lr vs lr", "Won by a"] == "3 of 3"
    assert shown.loc["rbm-fnn vs fnn", "Verdict"] == "not evaluated yet (2 of 3 seeds)"
    assert shown.loc["pre-fnn vs fnn", "a − b"] == ""


def test_models_missing_from_a_preset_give_a_row_saying_so(results_dir):
    for model in TINY.models:
        _store(TINY, model, 0.85)
    table = paired.compare_models(TINY, _summary(TINY.models), {}, y_true=Y, n_resamples=500).set_index(["a", "b"])
    assert table.loc[("rbm-lr", "random-lr"), "verdict"] == paired.NOT_IN_PRESET
    assert table.loc[("pre-fnn", "fnn"), "verdict"] == paired.NOT_IN_PRESET
    assert table.loc[("rbm-lr", "lr"), "verdict"] in (paired.A_BETTER, paired.B_BETTER, paired.NO_DIFFERENCE)
    assert "pre-fnn against fnn is not part of this preset" in paired.paired_sentence(table.reset_index())


def test_a_best_value_on_an_edge_or_an_unconverged_lbfgs_is_a_caveat(results_dir):
    _store(P2, "lr", 0.80)
    _store(P2, "rbm-lr", 0.90)
    # rbm-lr's best RBM is as large as protocol 2's present range allows (read from the protocol, which
    # a widening moves), and its lbfgs stopped at max_iter.
    top = space_distributions(P2.spaces["rbm-lr"], P2)["rbm__n_components"].high
    rbm_lr = _study({"rbm__n_components": top, "clf__C": 1.0},
                    {"rbm__n_components": IntDistribution(256, top, log=True),
                     "clf__C": FloatDistribution(1e-4, 1e3, log=True)}, converged=False)
    lr = _study({"C": 1.0}, {"C": FloatDistribution(1e-4, 1e3, log=True)}, converged=True)
    caveats = paired.caveats(rbm_lr, P2, "rbm-lr")
    assert any(f"`rbm__n_components` = {top} is at the upper end" in c for c in caveats)
    assert any("did not converge" in c for c in caveats)
    assert paired.caveats(lr, P2, "lr") == []
    table = paired.compare_models(P2, _summary(P2.models), {"lr": lr, "rbm-lr": rbm_lr}, y_true=Y, n_resamples=500)
    row = table.set_index(["a", "b"]).loc[("rbm-lr", "lr")]
    assert row["verdict"] == paired.A_BETTER and all(c.startswith("rbm-lr: ") for c in row["caveats"])
    assert paired.paired_table(table).loc[0, "Caveat"] == "rbm-lr"
    assert "with a caveat: rbm-lr: best `rbm__n_components`" in paired.paired_sentence(table)
    conclusion = results.conclusion_sentence(_summary(P2.models), table)
    assert "logistic regression on RBM features beats the logistic regression on pixels by" in conclusion
    assert f"with a caveat (rbm-lr: best `rbm__n_components` = {top}" in conclusion


def test_the_paper_preset_is_held_to_protocol_2s_edge_margin():
    assert PAPER.edge_margin is None
    lr = _study({"C": 9.9}, {"C": FloatDistribution(1e-3, 10, log=True)})
    assert [c for c in paired.caveats(lr, PAPER, "lr") if "upper end" in c]


def test_the_conclusion_says_no_more_than_the_verdicts(results_dir):
    _store(P2, "lr", 0.850)
    _store(P2, "rbm-lr", 0.851)
    _store(P2, "fnn", 0.90)
    _store(P2, "rbm-fnn", 0.80)
    summary = _summary(P2.models)
    table = paired.compare_models(P2, summary, {}, y_true=Y, n_resamples=500)
    conclusion = results.conclusion_sentence(summary, table)
    assert ("the logistic regression on RBM features and the logistic regression on pixels do not "
            "detectably differ") in conclusion
    assert "the feed-forward network on pixels beats the feed-forward network on RBM features by" in conclusion
    assert "pre-fnn" not in conclusion and "random" not in conclusion  # not compared: not concluded
    assert "The best model overall, chosen on validation, is the RBM-initialised" in conclusion
    nothing = paired.compare_models(P2, summary.iloc[:0], {}, y_true=Y)
    assert results.conclusion_sentence(summary, nothing).startswith("No pre-stated comparison")
