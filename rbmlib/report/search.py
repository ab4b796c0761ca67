"""Figures and tables of a study, drawn with Optuna's matplotlib plots.

The tuning notebook calls these once per model; each returns one matplotlib
figure titled with the model, so a labelled cell can show one figure per model.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import optuna
import pandas as pd
from matplotlib.figure import Figure
from optuna.trial import TrialState

from rbmlib.tuning import spaces
from rbmlib.tuning.presets import get_preset

_PLOTS = optuna.visualization.matplotlib


def _figure(ax, title: str, *, tight: bool = True) -> Figure:
    """The figure of Optuna's axes, its generic plot title replaced by ``title``.

    ``tight=False`` keeps Optuna's own layout (the slice plot's shared colour
    bar takes its room from every panel, which ``tight_layout`` would undo).
    """
    ax = ax.flat[0] if hasattr(ax, "flat") else ax  # plot_slice returns an array of axes
    fig = ax.figure
    for each in fig.axes:
        if each.get_title().endswith("Plot"):  # "Slice Plot", "Optimization History Plot", ...
            each.set_title("")
    fig.suptitle(title)
    if not tight:
        return fig
    with warnings.catch_warnings():  # colour bars and long tick labels: best effort is fine
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    return fig


@contextmanager
def _quiet():
    """Optuna marks its matplotlib plots experimental and warns on every call; a parameter
    that took one value in every trial draws a harmless singular-limits warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Attempting to set identical", category=UserWarning)
        yield


def _complete(study) -> list:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def history(study: optuna.Study, title: str) -> Figure:
    """Validation accuracy of each complete trial and the best so far."""
    with _quiet():
        return _figure(_PLOTS.plot_optimization_history(study, target_name="validation accuracy"), title)


def slices(study: optuna.Study, title: str) -> Figure:
    """Validation accuracy against each hyperparameter (one panel per parameter)."""
    with _quiet():
        return _figure(_PLOTS.plot_slice(study, target_name="validation accuracy"), title, tight=False)


def importances(study: optuna.Study, title: str, *, random_state: int = 0) -> Figure:
    """fANOVA importances of the hyperparameters for validation accuracy (seeded).

    With fewer than two complete trials there is nothing to compare: the figure
    says so instead of failing, so the notebook's cell always has one figure.
    """
    import matplotlib.pyplot as plt

    complete = _complete(study)
    if len(complete) < 2 or len({k for t in complete for k in t.params}) < 2:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{len(complete)} complete trial(s): too few to rank the parameters",
                ha="center", va="center")
        return _figure(ax, title)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=random_state)
    with _quiet():
        return _figure(_PLOTS.plot_param_importances(study, evaluator=evaluator,
                                                     target_name="validation accuracy"), title)


def trials_table(studies: dict[str, optuna.Study]) -> pd.DataFrame:
    """Per model: trials finished, complete, pruned and failed, the best trial, and compute time.

    ``lbfgs converged`` says whether the best trial's logistic regression met
    its convergence criterion within ``max_iter`` (empty for the networks).
    """
    rows = []
    for model, study in studies.items():
        trials = study.get_trials(deepcopy=False)
        count = {s: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        seconds = sum(t.duration.total_seconds() for t in trials if t.duration is not None)
        best = study.best_trial if count[TrialState.COMPLETE] else None
        rows.append({"model": model, "complete": count[TrialState.COMPLETE], "pruned": count[TrialState.PRUNED],
                     "failed": count[TrialState.FAIL], "best trial": best.number if best else None,
                     "best validation accuracy": best.value if best else None,
                     "lbfgs converged": _yes_no(best.user_attrs.get("converged")) if best else "",
                     "compute (min)": seconds / 60})
    return pd.DataFrame(rows)


def _yes_no(flag) -> str:
    return "" if flag is None else ("yes" if flag else "no")


def search_space_table(preset, studies: dict[str, optuna.Study] | None = None) -> pd.DataFrame:
    """Per model: its trial budget, each tuned parameter's range and the preset's fixed settings.

    Read from the search-space functions themselves, by asking a throwaway
    in-memory study for one trial and describing the distributions it drew
    from, so the table cannot drift from what the studies searched. Given the
    ``studies``, a range that some of their trials drew from instead (a range
    widened part way through a study) is shown after the present one, with
    those trials' numbers, as the studies recorded them.
    """
    preset = get_preset(preset)
    rows = []
    for model, space in spaces.SPACES.items():
        fixed = ", ".join(f"{k} = {v}" for k, v in preset.fixed_params(model).items() if v is not None)
        study = (studies or {}).get(model)
        searched = [f"{k}: {_describe(d)}" + (_earlier_ranges(study, k, d) if study else "")
                    for k, d in space_distributions(space, preset).items()]
        rows.append({"model": model, "trials": preset.n_trials[model],
                     "searched": "; ".join(searched), "fixed": fixed or "none"})
    return pd.DataFrame(rows)


def _earlier_ranges(study: optuna.Study, name: str, current) -> str:
    """`` (trials 0-6: 0.001 to 10 (log))`` for trials that drew ``name`` from another range."""
    other: dict[str, list[int]] = {}
    for t in study.get_trials(deepcopy=False):
        dist = t.distributions.get(name)
        if dist is not None and dist != current:
            other.setdefault(_describe(dist), []).append(t.number)
    return "".join(f" (trials {_numbers(n)}: {d})" for d, n in other.items())


def _numbers(numbers: list[int]) -> str:
    """``0-6`` for a run of consecutive numbers, otherwise ``0, 2, 5``."""
    if numbers == list(range(numbers[0], numbers[-1] + 1)) and len(numbers) > 2:
        return f"{numbers[0]}-{numbers[-1]}"
    return ", ".join(map(str, numbers))


def space_distributions(space, preset) -> dict:
    """``{parameter: optuna distribution}`` that a search-space function suggests from."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    space(trial, preset)
    return dict(trial.distributions)


def _describe(dist) -> str:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return "one of " + ", ".join(map(str, dist.choices))
    step = getattr(dist, "step", None)
    step = None if step in (None, 1) else step
    return (f"{dist.low:g} to {dist.high:g}" + (" (log)" if dist.log else "")
            + (f", step {step:g}" if step is not None else ""))
