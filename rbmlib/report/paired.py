"""The four paired comparisons stated before the test look, and the rule that decides each.

Each comparison "a vs b" is judged on the same test images, from the stored
predictions of the refit seeds of both models (:func:`rbmlib.stats.compare`;
seed i of a is paired with seed i of b). The verdict is "a better" when all of
these hold, "b better" when their mirror images all hold, and "no detectable
difference" otherwise:

* the 95% paired bootstrap interval over images lies above 0 (``ci_low > 0``);
* the difference exceeds :data:`N_SE` standard errors, images and seeds
  together (``difference > 2 * se_total``);
* a wins every seed pair (``pairs_a_better == n_seeds``);
* the largest exact McNemar p-value over the pairs is below :data:`ALPHA`
  divided by the number of comparisons (Bonferroni over the four).

A verdict carries a caveat when either study ended with a best value on an edge
of its range (:func:`rbmlib.tuning.protocol.edges`) or its best trial's lbfgs did
not converge (user attribute ``converged`` False, recorded by the logistic
regressions). A comparison with a model that the preset lacks (protocol 1 has no
``random-lr`` and no ``pre-fnn``) is reported as such, as is one whose models
have not been scored on the test split yet.

>>> table = compare_models("paper", summary, studies)   # one row per comparison
>>> paired_table(table)                                  # the report's table
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from optuna.trial import TrialState

from rbmlib import stats
from rbmlib.report.results import test_labels
from rbmlib.tuning import protocol
from rbmlib.tuning.presets import PROTOCOL2, get_preset

#: The pre-stated comparisons, (a, b): what RBM features add to logistic regression over
#: pixels and over random features of the same form, and to a network as input or as start.
COMPARISONS = (("rbm-lr", "lr"), ("rbm-lr", "random-lr"), ("rbm-fnn", "fnn"), ("pre-fnn", "fnn"))
ALPHA = 0.05  # family-wise level of the McNemar tests, split equally over COMPARISONS
N_SE = 2  # a difference must exceed this many total standard errors
CONFIDENCE = 0.95  # of the paired bootstrap interval

A_BETTER, B_BETTER, NO_DIFFERENCE = "a better", "b better", "no detectable difference"
NOT_IN_PRESET, NOT_EVALUATED = "not in this preset", "not evaluated yet"


def verdict(record: dict, n_comparisons: int = len(COMPARISONS)) -> str:
    """:data:`A_BETTER`, :data:`B_BETTER` or :data:`NO_DIFFERENCE` for one :func:`rbmlib.stats.compare` record.

    Every condition is a strict inequality, so a NaN (one seed: no seed standard
    error) never counts as evidence.
    """
    level = ALPHA / n_comparisons
    diff, se, n = record["difference"], record["se_total"], record["n_seeds"]
    significant = record["mcnemar_p_max"] < level
    if record["ci_low"] > 0 and diff > N_SE * se and record["pairs_a_better"] == n and significant:
        return A_BETTER
    if record["ci_high"] < 0 and -diff > N_SE * se and record["pair_max"] < 0 and significant:
        return B_BETTER  # pair_max < 0: b wins every seed pair
    return NO_DIFFERENCE


def caveats(study, preset, model: str) -> list[str]:
    """Why ``model``'s verdicts need a caveat: best values on an edge or at a resource limit, an lbfgs that did not converge.

    The paper preset predates the edge check (``edge_margin`` None); its
    studies are held to protocol 2's margin, the project's one definition of
    "on the edge".
    """
    if study is None or not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    preset = get_preset(preset)
    if preset.edge_margin is None:
        preset = dataclasses.replace(preset, edge_margin=PROTOCOL2.edge_margin)
    found = protocol.edges(study, preset, model) + protocol.resource_limited(study, preset, model)
    if study.best_trial.user_attrs.get("converged") is False:
        found.append(f"lbfgs of the best trial (trial {study.best_trial.number}) did not converge")
    return found


def compare_models(preset, summary: pd.DataFrame, studies: dict, *, y_true=None,
                   n_resamples: int = 10_000, random_state: int = 0) -> pd.DataFrame:
    """Every comparison of :data:`COMPARISONS` with its verdict, from the stored test predictions.

    Parameters
    ----------
    preset : str or Preset
    summary : DataFrame
        ``summary.csv`` (its ``best_trial`` names the predictions to read).
    studies : dict of model name -> optuna.Study or None
        For the caveats; a model missing here is not checked.
    y_true : array-like, optional
        The test labels (default: the preset's test split).
    n_resamples, random_state
        Of the paired bootstrap (:func:`rbmlib.stats.compare`).

    Returns
    -------
    DataFrame
        One row per comparison: ``a``, ``b``, ``verdict`` (one of the module's
        verdict strings), ``winner`` (a model, or ""), ``caveats`` (a list of
        "model: why"), ``seeds_expected`` and, where compared, the fields of
        :func:`rbmlib.stats.compare`.
    """
    preset = get_preset(preset)
    rows = summary.dropna(subset=["best_trial"]).set_index("model")
    y_true = test_labels(preset) if y_true is None else np.asarray(y_true)
    records = []
    for a, b in COMPARISONS:
        record = {"a": a, "b": b, "winner": "", "caveats": [], "n_seeds": 0,
                  "seeds_expected": min(len(preset.refit_random_states.get(m, ())) for m in (a, b))}
        if a not in preset.models or b not in preset.models:
            records.append({**record, "verdict": NOT_IN_PRESET})
            continue
        preds = {m: _predictions(preset, rows, m) for m in (a, b)}
        seeds = sorted(set(preds[a]) & set(preds[b]))
        if not seeds or len(seeds) < record["seeds_expected"]:
            records.append({**record, "verdict": NOT_EVALUATED, "n_seeds": len(seeds)})
            continue
        record.update(stats.compare(y_true, [preds[a][s] for s in seeds], [preds[b][s] for s in seeds],
                                    n_resamples=n_resamples, confidence=CONFIDENCE, random_state=random_state))
        record["verdict"] = verdict(record)
        record["winner"] = {A_BETTER: a, B_BETTER: b}.get(record["verdict"], "")
        record["caveats"] = [f"{m}: {why}" for m in (a, b) for why in caveats(studies.get(m), preset, m)]
        records.append(record)
    return pd.DataFrame(records)


def _predictions(preset, rows: pd.DataFrame, model: str) -> dict[int, np.ndarray]:
    """``{seed: predictions}`` of the summary's best trial of ``model`` (empty: not scored)."""
    from rbmlib.tuning.refit import read_predictions

    if model not in rows.index:
        return {}
    return read_predictions(preset, model, int(rows.loc[model, "best_trial"]), preset.refit_random_states[model])


def _points(value: float) -> str:
    return f"{value * 100:+.2f}"


def paired_table(comparisons: pd.DataFrame) -> pd.DataFrame:
    """The report's table of :func:`compare_models`: differences in points, the verdict in words.

    Headers of a word or two, which the notebook's caption explains ("Interval": the
    :data:`CONFIDENCE` paired bootstrap interval; "McNemar p": the largest over the seed
    pairs), so that the numbers keep their natural widths (as ``results.results_table``).
    """
    rows = []
    for r in comparisons.to_dict("records"):
        compared = r["verdict"] in (A_BETTER, B_BETTER, NO_DIFFERENCE)
        rows.append({
            "Comparison": f"{r['a']} vs {r['b']}",
            "Seeds": f"{int(r['n_seeds'])}" if compared else "",
            "a − b": _points(r["difference"]) if compared else "",
            "Interval": f"{_points(r['ci_low'])} to {_points(r['ci_high'])}" if compared else "",
            "SE": f"{r['se_total'] * 100:.2f}" if compared else "",
            "Won by a": f"{int(r['pairs_a_better'])} of {int(r['n_seeds'])}" if compared else "",
            "McNemar p": f"{r['mcnemar_p_max']:.2g}" if compared else "",
            "Verdict": _verdict_words(r),
            "Caveat": ", ".join(sorted({c.split(":")[0] for c in r["caveats"]})),
        })
    return pd.DataFrame(rows)


def _verdict_words(r: dict) -> str:
    if r["winner"]:
        return f"{r['winner']} better"
    if r["verdict"] == NOT_EVALUATED:
        return f"{NOT_EVALUATED} ({int(r['n_seeds'])} of {int(r['seeds_expected'])} seeds)"
    return r["verdict"]


def rule_sentence(n_comparisons: int = len(COMPARISONS)) -> str:
    """The decision rule in words, from this module's constants (for the Methods)."""
    pairs = "; ".join(f"{a} vs {b}" for a, b in COMPARISONS)
    return (f"Each of the {n_comparisons} pre-stated comparisons ({pairs}) is judged on the same test "
            f"images from the stored predictions of every refit seed of both models, seed paired with "
            f"seed. The first model is declared better when the {CONFIDENCE:.0%} paired bootstrap interval "
            f"of the accuracy difference (resampling images) lies above zero, the difference exceeds "
            f"{N_SE} standard errors that count both the images and the seeds, it wins every seed pair, "
            f"and the largest exact McNemar p-value over the pairs is below {ALPHA:g}/{n_comparisons} = "
            f"{ALPHA / n_comparisons:g} (Bonferroni over the {n_comparisons}); the second model is declared "
            f"better under the mirror-image conditions, and otherwise there is no detectable difference. "
            f"A verdict carries a caveat when either model's study ended with a best value on an edge of "
            f"its range (or at a resource limit that the protocol states) or a best epoch at its cap, or "
            f"when its best logistic regression did not converge.")


def paired_sentence(comparisons: pd.DataFrame) -> str:
    """The verdicts of :func:`compare_models` in words, each with its numbers and caveats."""
    parts = []
    for r in comparisons.to_dict("records"):
        name = f"{r['a']} against {r['b']}"
        if r["verdict"] == NOT_IN_PRESET:
            parts.append(f"{name} is not part of this preset")
        elif r["verdict"] == NOT_EVALUATED:
            parts.append(f"{name} has not been scored on the test set yet")
        else:
            words = {A_BETTER: f"{r['a']} is better", B_BETTER: f"{r['b']} is better",
                     NO_DIFFERENCE: "there is no detectable difference"}[r["verdict"]]
            parts.append(f"for {name}, {words} ({_points(r['difference'])} points, {CONFIDENCE:.0%} interval "
                         f"{_points(r['ci_low'])} to {_points(r['ci_high'])}, {int(r['pairs_a_better'])} of "
                         f"{int(r['n_seeds'])} seed pairs won by {r['a']}, largest McNemar p {r['mcnemar_p_max']:.2g})"
                         + (f", with a caveat: {'; '.join(r['caveats'])}" if r["caveats"] else ""))
    text = "Under the pre-stated rule, " + "; ".join(parts) + "."
    return text[0].upper() + text[1:]
