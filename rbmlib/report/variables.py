"""The numbers that the article's prose quotes, ``{{< var name >}}``, from a preset's committed results.

Quarto reads them from ``_variables.yml`` in the project root, which
:func:`write_variables` writes (``python -m rbmlib.report --write-variables``,
and every build of the report). They are read through the functions that draw
the results' tables and figures, so that prose and tables cannot disagree, and
a test holds the committed file to what this module writes from the committed
results.
"""

from __future__ import annotations

from pathlib import Path

from rbmlib import paths
from rbmlib.tuning.presets import get_preset

RENDERED_PRESET = paths.RENDERED_PRESET
#: Quarto reads a project's ``_variables.yml`` for its ``{{< var name >}}`` shortcodes.
VARIABLES_FILE = "_variables.yml"


def manuscript_variables(preset=RENDERED_PRESET) -> dict[str, str]:
    """The numbers that the article's prose quotes (``{{< var name >}}``), as text, from a preset's results.

    Read from the preset's committed ``summary.csv`` through the functions that
    draw the results section (:mod:`rbmlib.report.results`), so that prose and
    tables cannot disagree. Names use ``_`` for the ``-`` of model names:

    ``best_model``, ``best_test_accuracy``, ``best_test_accuracy_std``, ``best_n_seeds``, ``best_original_accuracy``
        The model with the best validation accuracy (as it reads in a sentence),
        its mean test accuracy (%) and sample standard deviation over its seeds,
        and the original study's reported accuracy for it.
    ``best_uses_rbm_features``
        "uses" or "does not use": whether that model reads RBM features.
    ``<model>_test_accuracy``, ``<model>_n_seeds``
        Every evaluated model's mean test accuracy (%) and number of seeds.
    ``<features model>_minus_<pixels model>``, ``..._se``
        Test accuracy on features minus on pixels, same classifier (points,
        signed), and its standard error over seeds (``results.feature_effect``).
    ``<a>_vs_<b>_verdict``
        The paired rule's verdict on each comparison of :data:`rbmlib.report.paired.COMPARISONS`
        as words that end in a preposition ("detectably more accurate than",
        "not detectably different from", ...), or "not compared with" where the preset lacks a model.
    ``<a>_vs_<b>_difference``, ``<a>_vs_<b>_interval``
        Where compared: the paired difference in test accuracy (points, signed)
        and its 95% paired bootstrap interval ("+0.12 to +0.80").
    ``few_labels_<n>_rbm_lr_minus_<b>``, ``..._se``
        Where the preset has the few-labels study: RBM features minus pixels
        (``lr``) or random features (``random_lr``) with ``n`` labels per class
        (points, signed, mean over seeds) and the standard error of the per-seed differences.
    ``n_models``
        Models in the summary.
    ``trial_budget``, ``min_complete``, ``n_refit_seeds``
        Where every model shares them: finished trials per study (with
        ``equal_finished``, as many as the study with the most), the floor of
        complete trials among them ("0": none), and refit seeds per model.
    ``fit_machines``
        What the scored fits (refits and few-labels fits) ran on, to follow
        "ran": "on one set-up (AMD EPYC, 1 thread, bfloat16 native, torch
        2.14.1)", or each set-up with its number of fits where they differ.

    Raises
    ------
    FileNotFoundError
        If the preset has no ``summary.csv`` yet (``rbmlib summary``).
    """
    import pandas as pd

    from rbmlib.models import MODELS
    from rbmlib.report import results

    summary = pd.read_csv(paths.summary_csv(preset))
    rows = summary.set_index("model")
    best = results.best_model(summary)
    name = {model: model.replace("-", "_") for model in rows.index}
    variables = {
        "n_models": str(len(rows)),
        "best_model": results._in_sentence(best),
        "best_uses_rbm_features": "uses" if MODELS[best].uses_rbm else "does not use",
        "best_test_accuracy": f"{rows.loc[best, 'test_accuracy_mean'] * 100:.2f}",
        "best_test_accuracy_std": f"{rows.loc[best, 'test_accuracy_std'] * 100:.2f}",
        "best_n_seeds": str(int(rows.loc[best, "n_seeds"])),
        "best_original_accuracy": (f"{results.ORIGINAL_STUDY.loc[best, 'accuracy']:.2f}"
                                   if best in results.ORIGINAL_STUDY.index else "not reported"),
    }
    for model, row in rows.iterrows():
        variables[f"{name[model]}_test_accuracy"] = f"{row['test_accuracy_mean'] * 100:.2f}"
        variables[f"{name[model]}_n_seeds"] = str(int(row["n_seeds"]))
    for _, r in results.feature_effect(summary).iterrows():
        model = r["Model"]
        key = f"{name[model]}_minus_{name[MODELS[model].baseline]}"
        variables[key] = _signed(r["Difference"])
        variables[f"{key}_se"] = f"{r['SE']:.2f}"
    variables.update(_budget_variables(preset))
    variables.update(_paired_variables(preset, summary))
    variables.update(_few_labels_variables(preset))
    variables["fit_machines"] = _fit_machines(preset)
    return variables


def _signed(points: float) -> str:
    # The minus sign, not a hyphen: the PDF sets a bare "-1.47" in running text as a hyphen.
    return f"{points:+.2f}".replace("-", "\N{MINUS SIGN}")


def _budget_variables(preset) -> dict[str, str]:
    """``trial_budget``, ``min_complete``, ``n_refit_seeds`` of :func:`manuscript_variables`, where uniform."""
    from rbmlib.tuning import protocol
    from rbmlib.tuning.study import finished_counts

    preset = get_preset(preset)
    targets = protocol.finished_targets(preset, finished_counts(preset))
    shared = {"trial_budget": set(targets.values()), "min_complete": {preset.min_complete},
              "n_refit_seeds": {len(preset.refit_random_states[m]) for m in preset.models}}
    return {key: str(values.pop()) for key, values in shared.items() if len(values) == 1}


def _paired_variables(preset, summary) -> dict[str, str]:
    """``<a>_vs_<b>_verdict``, ``_difference``, ``_interval`` of :func:`manuscript_variables`,
    from the paired comparisons of notebook 05."""
    from rbmlib.report import paired, search

    studies = search.read_studies(get_preset(preset).models, preset)
    words = {paired.A_BETTER: "detectably more accurate than", paired.B_BETTER: "detectably less accurate than",
             paired.NO_DIFFERENCE: "not detectably different from"}
    variables = {}
    for r in paired.compare_models(preset, summary, studies).to_dict("records"):
        key = f"{r['a']}_vs_{r['b']}".replace("-", "_")
        variables[f"{key}_verdict"] = words.get(r["verdict"], "not compared with")
        if r["verdict"] in words:
            variables[f"{key}_difference"] = _signed(r["difference"] * 100)
            variables[f"{key}_interval"] = f"{_signed(r['ci_low'] * 100)} to {_signed(r['ci_high'] * 100)}"
    return variables


def _few_labels_variables(preset) -> dict[str, str]:
    """``few_labels_<n>_rbm_lr_minus_<b>`` (and ``_se``) of :func:`manuscript_variables`."""
    from rbmlib.report.few_labels import paired_differences
    from rbmlib.tuning.few_labels import applies_to, read_results

    if not applies_to(get_preset(preset).models):
        return {}
    results = read_results(preset)
    variables = {}
    for baseline in ("lr", "random-lr"):
        if results.empty or not {"rbm-lr", baseline} <= set(results["model"]):
            continue
        for n, row in paired_differences(results, "rbm-lr", baseline).iterrows():
            key = f"few_labels_{int(n)}_rbm_lr_minus_{baseline.replace('-', '_')}"
            variables[key] = _signed(row["difference"])
            variables[f"{key}_se"] = f"{row['standard_error']:.2f}"
    return variables


def _fit_machines(preset) -> str:
    """``fit_machines`` of :func:`manuscript_variables`: the ``machine`` column of the refits and few-labels fits."""
    import pandas as pd

    from rbmlib.tuning.few_labels import read_results
    from rbmlib.tuning.refit import read_evaluation

    machines = pd.concat([read_evaluation(preset)["machine"], read_results(preset)["machine"]]).dropna()
    if machines.empty:
        return "on set-ups that were not recorded"
    counts = machines.str.replace("; ", ", ").value_counts()  # most fits first; commas inside a sentence
    if len(counts) == 1:
        return f"on one set-up ({counts.index[0]})"
    parts = [f"{machine} ({n} fit{'s' if n != 1 else ''})" for machine, n in counts.items()]
    last = " and " if len(parts) == 2 else "; and "  # the parts hold commas of their own
    return f"on {len(parts)} set-ups: " + "; ".join(parts[:-1]) + last + parts[-1]


def variables_text(preset=RENDERED_PRESET) -> str:
    """``_variables.yml`` as :func:`write_variables` writes it: a header, then :func:`manuscript_variables`."""
    import yaml

    header = (f"# Generated by `python -m rbmlib.report` from the {preset} preset's results "
              f"({paths.summary_csv(preset).relative_to(paths.ROOT).as_posix()});\n"
              "# do not edit: index.qmd quotes these as {{< var name >}} (rbmlib.report.variables.manuscript_variables).\n")
    return header + yaml.safe_dump(manuscript_variables(preset), sort_keys=False, allow_unicode=True)


def write_variables(preset=RENDERED_PRESET) -> Path:
    """Write ``_variables.yml`` in the project root from the preset's results; returns its path."""
    path = Path(paths.ROOT) / VARIABLES_FILE
    path.write_text(variables_text(preset))
    return path
