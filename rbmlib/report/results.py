"""The results section: tables, figures and sentences from ``summary.csv`` and the stored predictions.

Everything here reads what ``rbmlib.tuning.refit`` wrote (per-seed rows,
test predictions, the summary); nothing refits or re-tunes. The best model is
the one with the best *validation* accuracy, so the test set still decides
nothing.

>>> summary = tuning.summarize("paper")
>>> results_table(summary)               # ours beside the original study's numbers
>>> feature_effect(summary)              # what RBM (or control) features change, per classifier
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rbmlib import data, metrics, paths
from rbmlib.data import CLASS_NAMES
from rbmlib.models import MODEL_NAMES, MODELS
from rbmlib.tuning import few_labels, ledger
from rbmlib.tuning.refit import current_rows, read_evaluation, read_predictions
from rbmlib.tuning.presets import get_preset

#: The original study's reported test scores (its results table: accuracy in
#: percent, macro F1), chosen on the test set after 5-epoch training. They are
#: the published values we compare against, not outputs of this project.
ORIGINAL_STUDY = pd.DataFrame(
    {"accuracy": [84.71, 88.06, 91.29, 87.14, 86.95], "macro_f1": [0.846, 0.879, 0.913, 0.871, 0.869]},
    index=pd.Index(["lr", "fnn", "cnn", "rbm-lr", "rbm-fnn"], name="model"),
)



def _mean_std(mean, std, scale=1.0, digits=2) -> str:
    if pd.isna(mean):
        return "not evaluated"
    if pd.isna(std):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def results_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy (%) and macro F1 of each model (mean ± sample std over seeds) beside the original's.

    Parameters
    ----------
    summary : DataFrame
        ``summary.csv`` (``rbmlib.tuning.refit.SUMMARY_COLUMNS``).

    Returns
    -------
    DataFrame
        One row per model in ``MODEL_NAMES`` order that the summary holds; the
        original's columns are "–" for a model it did not have (the controls).
        Headers of one or two short words, which the caption explains
        ("Validation": the study's best validation accuracy, "Test": test accuracy,
        both in %, "F1": macro F1, "Original": the original study's scores,
        "Difference": Test minus Original in points), so that the numbers' columns
        keep their natural widths and the model names get the rest of the page
        (Typst shares the width equally among columns wider than a fair share).
        "Trials" (finished) and "Seeds" only where they differ between models
        (protocol 1): a column of one number would only narrow the others, and
        :func:`headline_sentence` states it instead.
    """
    s = summary.set_index("model")
    rows = []
    missing = pd.Series({"accuracy": np.nan, "macro_f1": np.nan})
    for model in [m for m in MODEL_NAMES if m in s.index]:
        r = s.loc[model]
        o = ORIGINAL_STUDY.loc[model] if model in ORIGINAL_STUDY.index else missing
        both = pd.notna(r["test_accuracy_mean"]) and pd.notna(o["accuracy"])
        rows.append({
            "Model": MODELS[model].label,
            "Trials": int(r["n_trials"]),
            "Validation": f"{r['best_val_accuracy'] * 100:.2f}",
            "Test": _mean_std(r["test_accuracy_mean"], r["test_accuracy_std"], 100),
            "Test F1": _mean_std(r["test_macro_f1_mean"], r["test_macro_f1_std"], 1, 3),
            "Seeds": int(r["n_seeds"]),
            "Original": f"{o['accuracy']:.2f}" if pd.notna(o["accuracy"]) else "–",
            "Original F1": f"{o['macro_f1']:.3f}" if pd.notna(o["macro_f1"]) else "–",
            "Difference": f"{r['test_accuracy_mean'] * 100 - o['accuracy']:+.2f}" if both else "",
        })
    return pd.DataFrame(rows).drop(columns=[column for column, count in _SHARED_COLUMNS.items()
                                            if _shared(summary, count) is not None])


#: Columns of :func:`results_table` dropped where every model has the same count (see there), and that count.
_SHARED_COLUMNS = {"Trials": "n_trials", "Seeds": "n_seeds"}


def _shared(summary: pd.DataFrame, count: str) -> int | None:
    """The value of ``count`` that every model of ``summary`` shares; None where they differ or there is one."""
    values = summary[count].dropna().astype(int).unique()
    return int(values[0]) if len(summary) > 1 and len(values) == 1 else None


def _shared_counts(summary: pd.DataFrame) -> str:
    """" Every model ... N finished trials ... S seeds." for the counts :func:`results_table` leaves out."""
    trials, seeds = _shared(summary, "n_trials"), _shared(summary, "n_seeds")
    parts = ([f"tuned with {trials} finished trials"] if trials is not None else []) + \
            ([f"refitted with {seeds} seeds"] if seeds else [])
    return f" Every model was {' and '.join(parts)}." if parts else ""


def best_model(summary: pd.DataFrame) -> str:
    """The model with the best validation accuracy (ties: the earlier in ``MODEL_NAMES``)."""
    s = summary.dropna(subset=["best_val_accuracy"]).set_index("model")
    order = [m for m in MODEL_NAMES if m in s.index]
    return max(order, key=lambda m: (s.loc[m, "best_val_accuracy"], -order.index(m)))


def seed_scores(preset, summary: pd.DataFrame) -> pd.DataFrame:
    """Per-seed test rows of each model's current best trial (the ones the summary averages)."""
    ev = read_evaluation(preset)
    parts = [current_rows(ev, preset, m, t, p)
             for m, t, p in zip(summary["model"], summary["best_trial"], summary["refit_params"])]
    return pd.concat(parts, ignore_index=True) if parts else ev.iloc[:0]


def _predictions(preset, summary, model) -> dict[int, np.ndarray]:
    row = summary.set_index("model").loc[model]
    return read_predictions(preset, model, int(row["best_trial"]), get_preset(preset).refit_random_states[model])


def test_labels(preset) -> np.ndarray:
    """The labels of the preset's test images, in the order of the stored predictions."""
    return data.load_split("test", subset=get_preset(preset).test_subset)[1]


def per_class_f1(preset, summary: pd.DataFrame) -> pd.DataFrame:
    """F1 of every class (rows) for every evaluated model (columns), mean over seeds."""
    y_test = test_labels(preset)
    columns = {}
    for model in [m for m in MODEL_NAMES if m in set(summary["model"])]:
        preds = _predictions(preset, summary, model)
        if preds:
            columns[model] = np.mean([metrics.per_class_f1(y_test, p, labels=range(len(CLASS_NAMES)))
                                      for p in preds.values()], axis=0)
    return pd.DataFrame(columns, index=pd.Index(CLASS_NAMES, name="class"))


def confusion_figure(preset, summary: pd.DataFrame, model: str) -> Figure:
    """Confusion matrix of ``model`` on the test set, summed over its seeds, rows normalised to 1.

    Before ``model`` is scored (a protocol still tuning) the figure says so instead.
    """
    from sklearn.metrics import ConfusionMatrixDisplay

    y_test = test_labels(preset)
    preds = _predictions(preset, summary, model)
    if not preds:
        return _not_scored(f"{MODELS[model].label}: not scored on the test split yet")
    y_true = np.concatenate([y_test] * len(preds))
    y_pred = np.concatenate(list(preds.values()))
    display = ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=range(len(CLASS_NAMES)), display_labels=CLASS_NAMES,
        normalize="true", values_format=".2f", cmap="Blues", colorbar=False, xticks_rotation=45)
    display.ax_.set_title(f"{MODELS[model].label}, {len(preds)} seeds")
    display.figure_.set_size_inches(7.5, 6.5)
    display.figure_.tight_layout()
    return display.figure_


def per_class_f1_figure(f1: pd.DataFrame) -> Figure:
    """Grouped bars: per-class F1 of each model."""
    import matplotlib.pyplot as plt

    if f1.empty or not len(f1.columns):
        return _not_scored("no model scored on the test split yet")
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(f1.columns), 1)
    x = np.arange(len(f1.index))
    for i, model in enumerate(f1.columns):
        ax.bar(x + (i - (len(f1.columns) - 1) / 2) * width, f1[model], width, label=MODELS[model].label)
    ax.set_xticks(x, f1.index, rotation=30, ha="right")
    ax.set_ylabel("F1 on the test set")
    ax.set_ylim(0.0, 1.0)  # bars from zero: a bar's length is its score, the classes' gaps not magnified
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(fontsize="small", ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.3))
    fig.tight_layout()
    return fig


def _not_scored(text: str) -> Figure:
    """A one-line figure in place of a test-set figure that has nothing to draw yet (a protocol still tuning)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 1.0))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    return fig


def seeds_figure(scores: pd.DataFrame) -> Figure:
    """Test accuracy of every refit seed, per model: the spread the table's ± summarises."""
    import matplotlib.pyplot as plt

    models = [m for m in MODEL_NAMES if m in set(scores["model"])]
    if not models:
        return _not_scored("no model scored on the test split yet")
    fig, ax = plt.subplots(figsize=(7, 3))
    for i, model in enumerate(models):
        acc = scores.loc[scores["model"] == model, "test_accuracy"].to_numpy() * 100
        ax.scatter(acc, np.full(len(acc), i), alpha=0.7)
        ax.scatter([acc.mean()], [i], marker="|", s=400, color="black")
    ax.set_yticks(range(len(models)), [MODELS[m].label for m in models])
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy (%) of each seed; bar: mean")
    fig.tight_layout()
    return fig


def reads(model: str) -> str:
    """What a model adds to the same classifier on pixels, as a sentence names it ("RBM features")."""
    spec = MODELS[model]
    return f"{spec.features} features" if spec.features else "an RBM-initialised hidden layer"


def feature_effect(summary: pd.DataFrame) -> pd.DataFrame:
    """Per model with a baseline: test accuracy of the classifier on pixels, on what the model adds, the difference.

    One row per model of the summary whose ``baseline`` (the same classifier on
    pixels) is there too, both scored on the test split, in the registry's
    order: the RBM pipelines and, in protocol 2, the controls. The difference's
    uncertainty is the standard error of a difference of two means over
    independent seeds:
    ``sqrt(s1²/n1 + s2²/n2)``.
    """
    s = summary.set_index("model")
    rows = []
    for model, spec in MODELS.items():
        pixels = spec.baseline
        if pixels is None or pixels not in s.index or model not in s.index:
            continue
        if not (s.loc[pixels, "n_seeds"] > 0 and s.loc[model, "n_seeds"] > 0):
            continue  # not scored yet (a protocol still tuning)
        a, b = s.loc[pixels], s.loc[model]
        diff = b["test_accuracy_mean"] - a["test_accuracy_mean"]
        se = np.sqrt(np.nansum([a["test_accuracy_std"] ** 2 / a["n_seeds"], b["test_accuracy_std"] ** 2 / b["n_seeds"]]))
        rows.append({"Model": model, "Classifier": MODELS[pixels].classifier, "What it adds": reads(model),
                     "Pixels": a["test_accuracy_mean"] * 100, "With it": b["test_accuracy_mean"] * 100,
                     "Difference": diff * 100, "SE": se * 100,
                     "Pixels F1": a["test_macro_f1_mean"], "With it F1": b["test_macro_f1_mean"]})
    return pd.DataFrame(rows, columns=_EFFECT_COLUMNS)


_EFFECT_COLUMNS = ["Model", "Classifier", "What it adds", "Pixels", "With it", "Difference",
                   "SE", "Pixels F1", "With it F1"]


def _effect(diff, se) -> int:
    """+1, -1 or 0: a difference beyond two standard errors either way, or neither."""
    return 1 if diff > 2 * se else -1 if diff < -2 * se else 0


def _in_sentence(model: str) -> str:
    """A model's label inside a sentence: lower case, but "CNN" stays an acronym, and "(pixels)"
    reads "on pixels" ("the logistic regression on pixels beats ...")."""
    label = MODELS[model].label
    return _in_prose(label.removesuffix(" (pixels)") + " on pixels" if label.endswith(" (pixels)") else label)


def _in_prose(label: str) -> str:
    """A label inside a sentence: lower case, but the acronyms stay."""
    return label.lower().replace("cnn", "CNN").replace("rbm", "RBM")


def feature_effect_sentence(effect: pd.DataFrame) -> str:
    """One clause per row of :func:`feature_effect`: the classifier on pixels and with what the model adds.

    Descriptive only: whether a difference counts is the paired rule's verdict
    (:mod:`rbmlib.report.paired`), so this sentence does not judge, and cannot contradict it.
    """
    parts = [f"{r['Classifier'].lower()} scores {r['Pixels']:.2f}% on pixels and "
             f"{r['With it']:.2f}% with {r['What it adds']}, a difference of "
             f"{r['Difference']:+.2f} points (standard error over seeds "
             f"{r['SE']:.2f})" for _, r in effect.iterrows()]
    if not parts:
        return "No classifier has been evaluated both on pixels and with features yet."
    return "On the test set, " + "; ".join(parts) + "."


def headline_sentence(summary: pd.DataFrame) -> str:
    """The answer in one sentence: the best model (by validation) and its test score."""
    best = best_model(summary)
    r = summary.set_index("model").loc[best]
    params = json.loads(r["best_params"])
    original = (f"the original study reported {ORIGINAL_STUDY.loc[best, 'accuracy']:.2f}%"
                if best in ORIGINAL_STUDY.index else "a model the original study did not have")
    score = (f"with {r['test_accuracy_mean'] * 100:.2f}% test accuracy (mean of {int(r['n_seeds'])} seeds; "
             f"{original})" if r["n_seeds"] > 0 else
             f"with {r['best_val_accuracy'] * 100:.2f}% validation accuracy, not scored on the test split yet")
    return (f"Chosen on validation accuracy, the best of the {_count(len(summary))} models is the "
            f"{_in_sentence(best)}, {score}; its tuned parameters are "
            + ", ".join(f"{k} = {_fmt(v)}" for k, v in params.items()) + "." + _shared_counts(summary))


def _count(n: int) -> str:
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[n] if n < len(words) else f"{n:,}"


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def per_class_sentence(f1: pd.DataFrame) -> str:
    """Which classes every model finds hardest and easiest, from the per-class F1 table."""
    if f1.empty:
        return "No test predictions are stored yet."
    mean = f1.mean(axis=1).sort_values()
    hard, easy = mean.index[:3], mean.index[-3:][::-1]
    lo, hi = f1.loc[hard[0]].min(), f1.loc[hard[0]].max()
    return (f"Averaged over the models, the hardest classes are {_names(hard)} "
            f"(F1 of {hard[0]} between {lo:.2f} and {hi:.2f} across models) and the easiest "
            f"{_names(easy)} (mean F1 {mean[easy[-1]]:.2f} or more).")


def _names(items) -> str:
    items = [str(i).lower() for i in items]
    return ", ".join(items[:-1]) + f" and {items[-1]}" if len(items) > 1 else items[0]


def conclusion_sentence(summary: pd.DataFrame, comparisons: pd.DataFrame) -> str:
    """The answer to the study's question, for the conclusion: the pre-stated rule's verdicts, then the best model.

    Parameters
    ----------
    summary : DataFrame
        ``summary.csv``, for the best model (chosen on validation).
    comparisons : DataFrame
        :func:`rbmlib.report.paired.compare_models`: its ``verdict``, ``winner``
        and ``caveats`` are reported as they are, so this sentence cannot say
        more than the rule decided.
    """
    from rbmlib.report import paired  # here: paired reads this module's test labels

    judged = comparisons[comparisons["verdict"].isin((paired.A_BETTER, paired.B_BETTER, paired.NO_DIFFERENCE))]
    if judged.empty:
        return "No pre-stated comparison has been scored on the test set yet."
    verdicts = []
    for r in judged.to_dict("records"):
        diff = r["difference"] * 100  # a minus b
        if r["winner"]:
            loser = r["b"] if r["winner"] == r["a"] else r["a"]
            words = f"the {_in_sentence(r['winner'])} beats the {_in_sentence(loser)} by {abs(diff):.2f} points"
        else:
            words = (f"the {_in_sentence(r['a'])} and the {_in_sentence(r['b'])} do not detectably differ "
                     f"(a difference of {diff:+.2f} points)")
        verdicts.append(words + (f", with a caveat ({'; '.join(r['caveats'])})" if r["caveats"] else ""))
    text = "On the test set, under the pre-stated rule, " + "; ".join(verdicts) + "."
    if summary["best_val_accuracy"].notna().any():
        best = best_model(summary)
        text += (f" The best model overall, chosen on validation, is the {_in_sentence(best)}, which "
                 + ("uses" if MODELS[best].uses_rbm else "does not use") + " RBM features.")
    return text


def earlier_results(presets) -> pd.DataFrame:
    """:func:`results_table` of each earlier protocol, from its committed ``summary.csv``, with a
    ``Protocol`` column first (empty without ``presets``): what those protocols reported, so that a
    later paper still shows every test score it saw."""
    tables = [results_table(pd.read_csv(paths.summary_csv(get_preset(p).name))).assign(Protocol=protocol_label(p))
              for p in presets]
    if not tables:
        return pd.DataFrame(columns=["Protocol"])
    table = pd.concat(tables, ignore_index=True)
    return table[["Protocol", *[c for c in table.columns if c != "Protocol"]]]


def test_looks(presets) -> pd.DataFrame:
    """Every look at the test split from the ledgers, one row per (commit, model, trial, parameters).

    Parameters
    ----------
    presets : str, Preset or list of them
        The protocols whose ledgers to read, earliest first: a protocol's paper
        lists the looks of the protocols before it too. With more than one,
        a ``Protocol`` column comes first.

    Rows are in the order the looks were recorded, protocol by protocol;
    ``Seeds`` lists the refits scored together, ``Test accuracy (%)`` is their
    mean and ``Look`` counts the looks at a model within its protocol.
    """
    presets = [get_preset(p) for p in ([presets] if isinstance(presets, str) or not
                                       isinstance(presets, (list, tuple)) else presets)]
    frames = [_looks(p).assign(Protocol=protocol_label(p)) for p in presets]
    # An empty frame would turn the trial numbers into floats.
    table = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
    columns = ["Protocol", *_LOOK_COLUMNS] if len(presets) > 1 else _LOOK_COLUMNS
    return table[columns]


_LOOK_COLUMNS = ["Recorded", "Commit", "Model", "Trial", "Seeds", "Test accuracy (%)", "Look"]


def protocol_label(preset) -> str:
    """How the paper names a preset's protocol: its ``label`` ("protocol 1"), else its name."""
    preset = get_preset(preset)
    return preset.label or preset.name


def _looks(preset) -> pd.DataFrame:
    """:func:`test_looks` of one protocol."""
    looks = ledger.read(preset.name)
    looks["first"] = range(len(looks))
    # A few-labels look chooses its own C for each seed: its seeds are one group all the same.
    few = looks["model"].str.startswith(few_labels.LEDGER_PREFIX)
    looks["setup"] = looks["params"].mask(few, "few labels")
    groups = looks.groupby(["commit", "model", "trial_number", "setup"], sort=False, dropna=False)
    table = groups.agg(first=("first", "min"), time=("time", "first"), seeds=("seed", list),
                       accuracy=("test_accuracy", "mean")).reset_index().sort_values("first")
    table["round"] = table.groupby("model").cumcount() + 1
    return pd.DataFrame({
        "Recorded": table["time"].str[:16].str.replace("T", " "),
        "Commit": table["commit"],
        "Model": table["model"],  # the registry's short names: the labels would not fit a page
        "Trial": ["" if pd.isna(t) else int(t) for t in table["trial_number"]],  # none: few labels on pixels
        "Seeds": [", ".join(map(str, s)) for s in table["seeds"]],
        "Test accuracy (%)": (table["accuracy"] * 100).round(2),
        "Look": table["round"],
    })


def test_looks_sentence(looks: pd.DataFrame, protocols=None) -> str:
    """How often each model's test score was looked at, and which models were scored again on other
    parameters: per protocol when ``looks`` (from :func:`test_looks`) has a ``Protocol`` column,
    naming each of ``protocols`` (its labels, in order) that has no look yet."""
    if "Protocol" not in looks:
        return _looks_sentence(looks, "The ledger holds") if len(looks) else "The test split has not been scored yet."
    protocols = list(dict.fromkeys(looks["Protocol"])) if protocols is None else list(protocols)
    parts = []
    for protocol in protocols:
        group = looks[looks["Protocol"] == protocol]
        parts.append(_looks_sentence(group, f"The ledger of {protocol} holds") if len(group)
                     else f"{protocol[0].upper()}{protocol[1:]} has not scored the test split yet.")
    return " ".join(parts)


def _looks_sentence(looks: pd.DataFrame, opening: str) -> str:
    looks = looks.assign(Model=[MODELS[m].label if m in MODELS else m for m in looks["Model"]])
    per_model = looks.groupby("Model", sort=False)
    again = [m for m, g in per_model if g["Trial"].nunique() > 1]
    repeated = [m for m, g in per_model if len(g) > g["Trial"].nunique()]
    n_fits = sum(len(s.split(", ")) for s in looks["Seeds"])
    text = (f"{opening} {n_fits} scored refit{'s' * (n_fits != 1)} in {len(looks)} "
            f"group{'s' * (len(looks) != 1)}.")
    if again:
        text += (f" {_sentence_start(again)} were scored on a second best trial after their first test "
                 "scores had been seen, so their final rows were selected partly on the test set.")
    if repeated:
        text += f" {_sentence_start(repeated)} were scored twice with the same parameters."
    return text


def _sentence_start(labels) -> str:
    words = [_in_prose(label) for label in labels]
    joined = ", ".join(words[:-1]) + f" and {words[-1]}" if len(words) > 1 else words[0]
    return joined[0].upper() + joined[1:]
