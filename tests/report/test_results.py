"""rbmlib.report.results: the results section's tables and sentences, from a hand-made summary
and stored predictions (no tuning: every number here is known in advance)."""

import json

import numpy as np
import pandas as pd
import pytest
from tuning_helpers import TINY

from rbmlib import data, paths
from rbmlib.data import CLASS_NAMES
from rbmlib.report import results, tables
from rbmlib.tuning import ledger
from rbmlib.models import MODELS
from rbmlib.tuning.presets import PAPER

MODEL_NAMES = PAPER.models  # the models of protocol 1, whose results these tests mimic


def _summary(val, acc_mean, acc_std, n_seeds=3, best_trial=0):
    rows = []
    for model in MODEL_NAMES:
        rows.append({"model": model, "n_trials": 5, "n_pruned": 1, "best_trial": best_trial,
                     "best_val_accuracy": val[model], "best_val_macro_f1": val[model] - 0.01,
                     "test_accuracy_mean": acc_mean[model], "test_accuracy_std": acc_std[model],
                     "test_macro_f1_mean": acc_mean[model] - 0.002, "test_macro_f1_std": acc_std[model],
                     "n_seeds": n_seeds, "best_params": json.dumps({"C": 0.1}), "refit_params": "{}",
                     "tune_seconds": 10.0, "evaluate_seconds": 1.0})
    return pd.DataFrame(rows)


VAL = dict(zip(MODEL_NAMES, [0.85, 0.89, 0.92, 0.87, 0.88]))
# The test set ranks "fnn" above "cnn": the best model must still be chosen on validation.
MEAN = dict(zip(MODEL_NAMES, [0.845, 0.95, 0.91, 0.8455, 0.86]))
STD = dict(zip(MODEL_NAMES, [0.0, 0.003, 0.002, 0.001, 0.01]))


def test_results_table_sets_ours_beside_the_original():
    table = results.results_table(_summary(VAL, MEAN, STD)).set_index("Model")
    assert len(table) == 5
    lr = table.loc[MODELS["lr"].label]
    assert lr["Test"] == "84.50 ± 0.00" and lr["Original"] == "84.71"
    assert lr["Difference"] == "-0.21"
    assert table.loc[MODELS["cnn"].label, "Validation"] == "92.00"


def test_counts_that_every_model_shares_leave_the_table_for_the_headline():
    summary = _summary(VAL, MEAN, STD)  # 5 trials and 3 seeds each
    table = results.results_table(summary)
    assert "Trials" not in table and "Seeds" not in table
    assert results.headline_sentence(summary).endswith(
        " Every model was tuned with 5 finished trials and refitted with 3 seeds.")
    summary.loc[summary["model"] == "fnn", "n_seeds"] = 5  # protocol 1's seeds differed
    table = results.results_table(summary)
    assert "Seeds" in table and "Trials" not in table
    assert results.headline_sentence(summary).endswith(" Every model was tuned with 5 finished trials.")


def test_an_unevaluated_model_says_so_instead_of_a_number():
    mean = {**MEAN, "cnn": np.nan}
    std = {**STD, "cnn": np.nan}
    table = results.results_table(_summary(VAL, mean, std)).set_index("Model")
    assert table.loc[MODELS["cnn"].label, "Test"] == "not evaluated"


def test_a_control_has_no_original_score_and_can_be_the_best_model():
    summary = _summary(VAL, MEAN, STD)
    control = summary[summary["model"] == "lr"].assign(model="random-lr", best_val_accuracy=0.95)
    summary = pd.concat([summary, control], ignore_index=True)
    row = results.results_table(summary).set_index("Model").loc[MODELS["random-lr"].label]
    assert row["Original"] == "–" and row["Difference"] == ""
    headline = results.headline_sentence(summary)
    assert "the best of the six models" in headline and "a model the original study did not have" in headline


def test_best_model_is_chosen_on_validation_not_test():
    summary = _summary(VAL, MEAN, STD)
    assert results.best_model(summary) == "cnn"
    assert "CNN" in results.headline_sentence(summary) and "91.00%" in results.headline_sentence(summary)


def test_feature_effect_difference_and_standard_error():
    effect = results.feature_effect(_summary(VAL, MEAN, STD)).set_index("Model")
    assert list(effect.index) == ["rbm-lr", "rbm-fnn"]
    lr = effect.loc["rbm-lr"]
    assert lr["Classifier"] == "Logistic regression" and lr["What it adds"] == "RBM features"
    assert lr["Difference"] == pytest.approx(0.05)
    assert lr["SE"] == pytest.approx(100 * np.sqrt(0.001**2 / 3))
    fnn = effect.loc["rbm-fnn"]
    assert fnn["Difference"] == pytest.approx(-9.0)
    sentence = results.feature_effect_sentence(effect.reset_index())
    # Numbers only: the verdicts are the paired rule's (rbmlib.report.paired), not this sentence's.
    assert "logistic regression scores" in sentence and "with RBM features, a difference of +0.05 points" in sentence
    assert "a difference of -9.00 points" in sentence
    assert not any(word in sentence for word in ("help", "hurt", "clear"))


def test_the_controls_are_compared_with_the_same_classifier_on_pixels_and_named_by_what_they_add():
    summary = _summary(VAL, MEAN, STD)
    extra = [summary[summary["model"] == base].assign(model=model)
             for model, base in (("random-lr", "lr"), ("pca-lr", "lr"), ("pre-fnn", "fnn"))]
    effect = results.feature_effect(pd.concat([summary, *extra], ignore_index=True)).set_index("Model")
    assert list(effect.index) == ["rbm-lr", "rbm-fnn", "random-lr", "pca-lr", "pre-fnn"]
    assert effect.loc["random-lr", "What it adds"] == "random features"
    assert effect.loc["pca-lr", "What it adds"] == "PCA features"
    assert effect.loc["pre-fnn", "Classifier"] == "Feed-forward network"
    assert effect.loc["pre-fnn", "What it adds"] == "an RBM-initialised hidden layer"
    assert effect.loc["random-lr", "Difference"] == pytest.approx(0.0)


def test_before_the_test_look_the_sentences_give_validation_only():
    unscored = _summary(VAL, {m: np.nan for m in MEAN}, {m: np.nan for m in STD}, n_seeds=0)
    headline = results.headline_sentence(unscored)
    assert "CNN on pixels, with 92.00% validation accuracy, not scored on the test split yet" in headline
    assert "nan" not in headline
    assert results.feature_effect(unscored).empty and "Model" in results.feature_effect(unscored)
    assert results.feature_effect_sentence(results.feature_effect(unscored)).startswith("No classifier has been")
    nothing = "no model scored on the test split yet"
    no_seeds = results.seeds_figure(pd.DataFrame(columns=["model", "seed", "test_accuracy"]))
    assert no_seeds.axes[0].texts[0].get_text() == nothing
    assert results.per_class_f1_figure(pd.DataFrame(index=CLASS_NAMES)).axes[0].texts[0].get_text() == nothing


def test_the_per_class_f1_axis_starts_at_zero():
    f1 = pd.DataFrame({"lr": np.linspace(0.6, 0.97, 10), "cnn": np.linspace(0.78, 0.99, 10)},
                      index=pd.Index(data.CLASS_NAMES, name="class"))
    ax = results.per_class_f1_figure(f1).axes[0]
    assert ax.get_ylim() == (0.0, 1.0)
    heights = sorted(p.get_height() for p in ax.patches)
    assert heights[0] == pytest.approx(0.6) and all(p.get_y() == 0 for p in ax.patches)


def test_per_class_scores_and_confusion_come_from_the_stored_predictions(tmp_path, monkeypatch, fashion_mnist):
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    _, y_test = data.load_split("test", subset=TINY.test_subset)
    summary = _summary(VAL, MEAN, STD)
    for model in ("lr", "cnn"):
        for seed in TINY.refit_random_states[model]:
            pred = y_test.copy()
            if model == "lr":  # lr gets every shirt wrong; cnn is perfect
                pred[y_test == data.CLASS_NAMES.index("Shirt")] = 0
            path = paths.predictions_file(TINY.name, model, 0, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, pred.astype(np.int8))
    f1 = results.per_class_f1(TINY, summary[summary["model"].isin(["lr", "cnn"])])
    assert list(f1.columns) == ["lr", "cnn"] and (f1["cnn"] == 1).all()
    assert f1.loc["Shirt", "lr"] == 0 and f1.loc["Trouser", "lr"] == 1
    assert "shirt" in results.per_class_sentence(f1).split("easiest")[0]
    fig = results.confusion_figure(TINY, summary, "cnn")
    assert "3 seeds" in fig.axes[0].get_title()
    unscored = results.confusion_figure(TINY, summary, "fnn")  # a protocol still tuning: says so
    assert unscored.axes[0].texts[0].get_text() == "Feed-forward network (pixels): not scored on the test split yet"


def test_every_look_at_the_test_set_is_grouped_in_order_and_second_looks_are_named(tmp_path, monkeypatch):
    from rbmlib.tuning import ledger

    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    looks = [("lr", 3, 0, 0.84), ("lr", 3, 1, 0.86), ("rbm-lr", 0, 0, 0.80), ("rbm-lr", 9, 0, 0.88),
             ("lr", 3, 0, 0.84)]
    for model, trial, seed, accuracy in looks:
        ledger.append("tiny", {"model": model, "seed": seed, "trial_number": trial, "params": f"{{\"t\": {trial}}}",
                               "test_accuracy": accuracy, "test_macro_f1": accuracy})
    table = results.test_looks(TINY)
    # One commit here: the repeated lr look falls into the first group (same commit, trial, params).
    assert table["Model"].tolist() == ["lr", "rbm-lr", "rbm-lr"] and table["Look"].tolist() == [1, 1, 2]
    assert table["Seeds"].tolist() == ["0, 1, 0", "0", "0"]
    assert table["Test accuracy (%)"].tolist() == [84.67, 80.0, 88.0]
    sentence = results.test_looks_sentence(table)
    assert sentence.startswith("The ledger holds 5 scored refits in 3 groups.")
    assert "Logistic regression on RBM features were scored on a second best trial" in sentence


def test_a_later_protocol_lists_the_looks_of_the_earlier_ones_first(tmp_path, monkeypatch):
    import dataclasses

    from rbmlib.tuning import ledger, presets

    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    earlier = dataclasses.replace(TINY, label="protocol 8")
    later = dataclasses.replace(TINY, name="later", label="protocol 9")
    monkeypatch.setitem(presets.PRESETS, "later", later)
    for seed in (0, 1):
        ledger.append("tiny", {"model": "lr", "seed": seed, "trial_number": 3, "params": "{}",
                               "test_accuracy": 0.84, "test_macro_f1": 0.84})
    table = results.test_looks([earlier, later])
    assert list(table.columns)[0] == "Protocol" and table["Protocol"].tolist() == ["protocol 8"]
    assert table["Trial"].tolist() == [3]  # an integer, though the later ledger is empty
    labels = [results.protocol_label(p) for p in (earlier, later)]
    assert results.test_looks_sentence(table, labels) == ("The ledger of protocol 8 holds 2 scored refits in 1 group. "
                                                          "Protocol 9 has not scored the test split yet.")
    ledger.append("later", {"model": "lr", "seed": 0, "trial_number": 5, "params": "{}",
                            "test_accuracy": 0.85, "test_macro_f1": 0.85})
    both = results.test_looks([earlier, later])
    assert both["Protocol"].tolist() == ["protocol 8", "protocol 9"] and both["Look"].tolist() == [1, 1]
    assert "Protocol" not in results.test_looks(TINY)  # one protocol: the table as before


def test_a_later_protocol_shows_the_results_an_earlier_one_reported(tmp_path, monkeypatch):
    import dataclasses

    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    earlier = dataclasses.replace(TINY, label="protocol 8")
    path = paths.summary_csv(earlier.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    _summary(VAL, MEAN, STD).to_csv(path, index=False)
    table = results.earlier_results([earlier])
    assert list(table.columns)[:2] == ["Protocol", "Model"] and len(table) == len(MODEL_NAMES)
    assert (table["Protocol"] == "protocol 8").all()
    assert table.set_index("Model").loc[MODELS["lr"].label, "Test"] == "84.50 ± 0.00"
    assert results.earlier_results([]).empty


def test_few_labels_looks_are_one_group_per_model_and_n(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    for model, trial in (("lr", None), ("rbm-lr", 4)):
        for seed, C in ((0, 0.1), (1, 10.0)):
            ledger.append("tiny", {"model": f"few-labels/{model}/n=10", "seed": seed, "trial_number": trial,
                                   "params": f'{{"C": {C}}}', "test_accuracy": 0.5, "test_macro_f1": 0.5,
                                   "source": "rbmlib few-labels"})
    table = results.test_looks(TINY)
    assert table["Model"].tolist() == ["few-labels/lr/n=10", "few-labels/rbm-lr/n=10"]
    assert table["Seeds"].tolist() == ["0, 1", "0, 1"] and table["Look"].tolist() == [1, 1]
    assert table["Trial"].tolist() == ["", 4]
    assert results.test_looks_sentence(table) == "The ledger holds 4 scored refits in 2 groups."
    md = tables.to_markdown(table, index=False, floatfmt=".2f")
    assert "nan" not in md and "<NA>" not in md
