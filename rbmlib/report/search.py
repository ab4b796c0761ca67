"""Figures and tables of a study, drawn with Optuna's matplotlib plots (the slices here).

The tuning notebook calls these once per model (:func:`panels`); each returns
one matplotlib figure titled with the model, so a labelled cell can show one
figure per model. The notebook stacks a kind's figures as the panels of one
figure, the original study's five models in one and protocol 2's three
controls in another, which the PDF must fit on one page: each figure is
therefore a strip of :data:`STRIP` inches, whatever the number of parameters
it shows (two strips for the slices of many parameters).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator
from optuna.trial import TrialState

from rbmlib.models import MODELS
from rbmlib.report.plots import untangle_xticks
from rbmlib.tuning.presets import get_preset
from rbmlib.tuning.protocol import space_distributions

_PLOTS = optuna.visualization.matplotlib

#: Width and height (inches) of every figure of this module. The tuning notebook
#: stacks the five studies' figures of a kind as the panels of one figure; five
#: strips this tall, with their sub-captions and the caption, fit the text of
#: the PDF's A4 page (margins in _quarto.yml), and in HTML they stay short.
STRIP = (6.5, 1.15)
#: Share of the data's span left free above and below the markers of a strip: a
#: marker is about a tenth of a strip's height.
_Y_MARGIN = 0.15
#: Least gap, in pixels, between two x tick labels of a slices strip (``untangle_xticks``).
_LABEL_GAP = 6.0
#: The most slices that share one strip's row; more take two rows, in a figure
#: this much of a strip taller (a little less than two strips, so that the five
#: models' slices, one of them in two rows, still fit the page).
SLICES_PER_ROW = 8
SECOND_ROW = 0.8
_TICK_SIZE = 7
#: The most importance bars in one column of a strip; more are drawn in two columns.
IMPORTANCES_PER_COLUMN = 5
_LABEL_SIZE = 7.5
_TITLE_SIZE = 8


@contextmanager
def _strip_style():
    """Figures made inside are :data:`STRIP`-sized, with constrained layout, and Optuna's
    style change (it calls ``plt.style.use("ggplot")``) ends with the block."""
    with plt.rc_context({"figure.figsize": STRIP, "figure.constrained_layout.use": True}):
        yield


def _figure(ax, title: str, *, n_rows: int = 1) -> Figure:
    """The figure of ``ax`` as a :data:`STRIP` (``n_rows`` strips tall) titled ``title``, with small print.

    Called inside :func:`_strip_style`. Optuna's generic titles ("Slice Plot",
    "Hyperparameter Importances", ...) are dropped; constrained layout keeps
    tick labels, axis labels, legend and colour bar inside the strip. The
    figure is drawn once here, so that ticks made on drawing take these sizes.
    """
    ax = ax.flat[0] if hasattr(ax, "flat") else ax  # plot_slice returns an array of axes
    fig = ax.figure
    for each in fig.axes:
        for loc in ("center", "left"):
            if each.get_title(loc=loc).endswith(("Plot", "Importances")):
                each.set_title("", loc=loc)
        each.tick_params(labelsize=_TICK_SIZE)
        each.xaxis.label.set_size(_LABEL_SIZE)
        each.yaxis.label.set_size(_LABEL_SIZE)
        if each.get_legend() is not None:
            for text in each.get_legend().get_texts():
                text.set_fontsize(_TICK_SIZE)
    fig.set_size_inches(STRIP[0], STRIP[1] * (1 + SECOND_ROW * (n_rows - 1)))
    fig.set_layout_engine("constrained", h_pad=0.01, w_pad=0.02)
    fig.suptitle(title, fontsize=_TITLE_SIZE)
    fig.draw_without_rendering()
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
    return [] if study is None else study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def read_studies(models, preset) -> dict:
    """``{model: study}`` of the preset's stored studies (None where there is none yet).

    Opens, and neither creates nor runs, anything: for a preset whose studies
    another command is still running (``make tune PRESET=protocol2``).
    """
    from rbmlib.tuning.study import load_studies

    return load_studies(preset, list(models))


def panels(draw, studies: dict, models, **kwargs) -> list[Figure]:
    """``draw(study, label, **kwargs)`` for each of ``models``: the panels of one tuning figure.

    A model that ``studies`` lacks (not among the models of this run: protocol
    1 has no controls) gets a strip that says so, so that each panel keeps its
    model's sub-caption whatever the run's models.
    """
    return [draw(studies[m], MODELS[m].label, **kwargs) if m in studies
            else _say(MODELS[m].label, "not among the models of this run") for m in models]


def _say(title: str, text: str) -> Figure:
    """A :data:`STRIP` that says why it has nothing to draw, so a cell keeps one figure per model."""
    with _strip_style():
        fig, ax = plt.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=_LABEL_SIZE)
        return _figure(ax, title)


def history(study: optuna.Study | None, title: str) -> Figure:
    """Validation accuracy of each complete trial and the best so far."""
    if not _complete(study):
        return _say(title, "no study yet" if study is None else "no complete trial yet")
    with _quiet(), _strip_style():
        ax = _PLOTS.plot_optimization_history(study, target_name="validation accuracy")
        if ax.get_legend() is not None:  # beside the axes, where it hides no trial
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.set_ylabel("validation\naccuracy")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.margins(y=_Y_MARGIN)  # no marker cut in half at the top or bottom
        return _figure(ax, title)


def slices(study: optuna.Study, title: str) -> Figure:
    """Validation accuracy against each hyperparameter: one panel per parameter, side by side.

    Drawn here rather than with Optuna's ``plot_slice``, whose panels keep
    their width as parameters are added, so that up to :data:`SLICES_PER_ROW`
    parameters share one :data:`STRIP` in Optuna's style: each panel is named
    above it, a log-scaled parameter is drawn on a log axis, a categorical one
    at evenly spaced positions, each with a few short tick labels, and the
    colour of a point is its trial's number. More parameters take two strips'
    height, in two rows.
    """
    complete = _complete(study)
    names = sorted({name for t in complete for name in t.params})
    if not names:
        return _say(title, "no study yet" if study is None else "no complete trial yet")
    n_rows = 1 if len(names) <= SLICES_PER_ROW else 2
    n_cols = -(-len(names) // n_rows)
    with _strip_style(), plt.style.context("ggplot"):
        fig, grid = plt.subplots(n_rows, n_cols, sharey=True, squeeze=False)
        axes = list(grid.flat)
        for spare in axes[len(names):]:  # an odd number in two rows leaves the last place empty
            spare.set_visible(False)
        n_ticks = 3 if n_cols > 3 else 5
        last = max(t.number for t in complete)
        for ax, name in zip(axes, names):
            trials = [t for t in complete if name in t.params]
            x = _slice_axis(ax, trials[-1].distributions[name], [t.params[name] for t in trials], n_ticks)
            points = ax.scatter(x, [t.value for t in trials], c=[t.number for t in trials], cmap="Blues",
                                vmin=0, vmax=max(last, 1), edgecolors="grey", linewidths=0.5, s=14)
            ax.set_title(name.replace("__", "__\n") if n_cols > 4 else name, fontsize=_TICK_SIZE)
        for row in grid:
            row[0].set_ylabel("validation\naccuracy")
        for ax in axes:  # no marker cut in half at an edge (log and choice axes have set limits)
            ax.margins(x=0.12, y=_Y_MARGIN)
        bar = fig.colorbar(points, ax=axes[:len(names)], label="trial", pad=0.01, aspect=12 * n_rows)
        bar.locator = MaxNLocator(nbins=3, integer=True)  # a few whole trial numbers, not 2.5
        bar.update_ticks()
        # Neighbouring panels' end labels ("0.32" and "20") must not read as one.
        return untangle_xticks(_figure(axes[0], title, n_rows=n_rows), pad=_LABEL_GAP)


def _slice_axis(ax, dist, values, n_ticks: int) -> list:
    """Set up ``ax``'s x axis for a parameter drawn from ``dist``; returns the x of each value."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        choices = list(dist.choices)
        every = max(1, -(-len(choices) // n_ticks))  # at most n_ticks labels
        ax.set_xticks(range(0, len(choices), every), [str(c) for c in choices[::every]])
        ax.set_xlim(-0.5, len(choices) - 0.5)
        return [choices.index(v) if v in choices else float("nan") for v in values]
    low, high = min(values), max(values)
    if getattr(dist, "log", False):
        ax.set_xscale("log")
        span = (high / low) ** 0.08 if high > low else 1.5
        ax.set_xlim(low / span, high * span)
        powers = [10.0 ** k for k in range(int(np.ceil(np.log10(low))), int(np.floor(np.log10(high))) + 1)]
        if len(powers) >= 2:  # two decades or more: powers of ten, thinned to n_ticks
            ticks = powers[::max(1, -(-len(powers) // n_ticks))]
        else:
            ticks = sorted({float(f"{v:.1g}") for v in np.geomspace(low, high, n_ticks)})
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(ticks, [_short(t) for t in ticks])
    else:
        integer = isinstance(dist, optuna.distributions.IntDistribution)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=n_ticks - 1, integer=integer))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _short(v)))
    return values


def _short(value: float) -> str:
    """A tick label of at most about five characters: ``0.05``, ``512``, ``2e-4``."""
    text = f"{value:g}"
    if len(text) > 5:
        text = f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return text


def importances(study: optuna.Study, title: str, *, random_state: int = 0) -> Figure:
    """fANOVA importances of the hyperparameters for validation accuracy (seeded), as bars.

    Optuna computes them (``get_param_importances``); they are drawn here, not
    with its ``plot_param_importances``, so that a study of many parameters
    (protocol 2's RBM models tune ten) keeps its labels legible in a strip: up
    to :data:`IMPORTANCES_PER_COLUMN` bars in a column, more in two columns
    side by side on one scale, the most important at the top left. With fewer
    than two complete trials there is nothing to compare: the figure says so
    instead of failing, so the notebook's cell always has one figure.
    """
    complete = _complete(study)
    tuned = sorted({k for t in complete for k in t.params})
    if study is None:
        return _say(title, "no study yet")
    if len(complete) < 2 or len(tuned) < 2:
        return _say(title, f"{len(complete)} complete trial(s): too few to rank the parameters" if len(complete) < 2
                    else f"one parameter tuned ({', '.join(tuned)}): nothing to rank")
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=random_state)
    with _quiet():
        ranked = optuna.importance.get_param_importances(_on_last_ranges(study), evaluator=evaluator)
    names = list(ranked)  # most important first
    per_column = -(-len(names) // (1 if len(names) <= IMPORTANCES_PER_COLUMN else 2))
    with _strip_style():
        fig, axes = plt.subplots(1, -(-len(names) // per_column), sharex=True, squeeze=False)
        for ax, first in zip(axes.flat, range(0, len(names), per_column)):
            column = names[first:first + per_column]
            rows = np.arange(per_column)[::-1][:len(column)]  # top down; every column as tall
            values = [ranked[name] for name in column]
            ax.barh(rows, values, height=0.7)
            ax.set_yticks(rows, column)
            ax.set_ylim(-0.6, per_column - 0.4)
            for row, value in zip(rows, values):
                ax.text(value, row, f" {value:.2f}" if value >= 0.005 else " <0.01", va="center",
                        fontsize=_TICK_SIZE)
            ax.set_xlabel("importance for validation accuracy")
        axes[0, 0].set_xlim(0, max(ranked.values()) * 1.25 or 1)  # room for the value beside the longest bar
        return _figure(axes, title)


def _on_last_ranges(study: optuna.Study) -> optuna.Study:
    """An in-memory copy of ``study``'s complete trials, each parameter on its last trial's range.

    Optuna ranks only the parameters whose distribution is the same in every
    trial, so a range widened during the study (protocol 2's random-lr, protocol 1's
    clf__C) would drop out of the ranking. Every value drawn from an earlier,
    narrower range lies in the widened one, so the copy holds them all there.
    """
    complete = _complete(study)
    last = {}
    for trial in complete:  # in trial order: the last range of each parameter wins
        last.update(trial.distributions)
    copy = optuna.create_study(direction=study.direction)
    copy.add_trials([optuna.trial.create_trial(
        params=t.params, distributions={k: last[k] for k in t.params}, value=t.value) for t in complete])
    return copy


def trials_table(studies: dict[str, optuna.Study], heartbeats: dict | None = None) -> pd.DataFrame:
    """Per model: trials finished, complete, pruned and failed, the best trial, and compute time.

    ``lbfgs converged`` says whether the best trial's logistic regression met
    its convergence criterion within ``max_iter`` (empty for the networks). A
    study given as None (not there yet) is a row of zeros. ``compute (min)`` is
    :func:`rbmlib.tuning.progress.compute_seconds`, with a failed trial up to its last
    heartbeat (``heartbeats``: :func:`~rbmlib.tuning.progress.read_heartbeats`), as in ``summary.csv``.
    """
    from rbmlib.tuning.progress import compute_seconds

    rows = []
    for model, study in studies.items():
        trials = [] if study is None else study.get_trials(deepcopy=False)
        count = {s: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        seconds = 0.0 if study is None else compute_seconds(study, (heartbeats or {}).get(model))
        best = study.best_trial if count[TrialState.COMPLETE] else None
        rows.append({"model": model, "complete": count[TrialState.COMPLETE], "pruned": count[TrialState.PRUNED],
                     "failed": count[TrialState.FAIL], "best trial": best.number if best else None,
                     "best validation accuracy": best.value if best else None,
                     "lbfgs converged": _yes_no(best.user_attrs.get("converged")) if best else "",
                     "compute (min)": seconds / 60})
    table = pd.DataFrame(rows)
    table["best trial"] = table["best trial"].astype("Int64")  # a number, blank where no trial is complete
    return table


def best_positions_table(studies: dict[str, optuna.Study], preset) -> pd.DataFrame:
    """Per model and tuned parameter: the best value, its range, where it lies, and whether that is an edge.

    ``position`` runs from 0% (the lower end) to 100% (the upper), on the log
    scale for a log range (blank for a choice); ``edge`` names the end a best
    value lies at or within the margin of (``protocol.positions``): the
    preset's ``edge_margin``, or protocol 2's for a preset without one, with
    "(resource limit)" where the preset states that end as one. A network's
    best epoch is set against its cap. Studies without a complete trial have
    no rows.
    """
    from rbmlib.tuning import protocol

    preset = get_preset(preset)
    margin = _edge_margin(preset)
    rows = []
    for model, study in studies.items():
        if study is None or not _complete(study):
            continue
        for r in protocol.positions(study, preset, model, margin=margin):
            dist = r["distribution"]  # described as in the search-space table ("3 to 5", not "[3, 5]")
            rows.append({"model": model, "parameter": r["parameter"], "best": _value_text(r["best"]),
                         "range": r["range"] if dist is None else _describe(dist),
                         "position": "" if r["position"] is None else f"{100 * r['position']:.0f}%",
                         "edge": (f"{r['edge']} end" + (" (resource limit)" if r["limit"] else ""))
                                 if r["edge"] else ""})
    return pd.DataFrame(rows, columns=["model", "parameter", "best", "range", "position", "edge"])


def edges_sentence(table: pd.DataFrame, preset) -> str:
    """Which best values lie on an edge of their range (from :func:`best_positions_table`), or that none
    does; then the one of the others nearest an end, which a reader would check first."""
    margin = _edge_margin(get_preset(preset))
    if table.empty:
        return "No study has a complete trial yet."
    on_edge = table[table["edge"] != ""]
    within = f"within {100 * margin:g}% of {'its' if len(on_edge) <= 1 else 'their'} range's width of an end"
    nearest = _nearest_end(table[table["edge"] == ""], others=not on_edge.empty)
    if on_edge.empty:
        studies = table["model"].nunique()
        return (f"No best value of the {studies} {'study' if studies == 1 else 'studies'} lies {within}, "
                f"and no network's best epoch is its cap.{nearest}")
    listed = "; ".join(f"{r.model}: {r.parameter} = {r.best} ({r.edge} of {r.range})" for r in on_edge.itertuples())
    count = "One best value lies" if len(on_edge) == 1 else f"{len(on_edge)} best values lie"
    return f"{count} {within} or at a cap: {listed}.{_limited(on_edge)}{nearest}"


def _limited(on_edge: pd.DataFrame) -> str:
    """What the edges of ``on_edge`` at a stated resource limit mean, and the others (to widen)."""
    limited = on_edge["edge"].str.contains("resource limit")
    if not limited.any():
        return ""
    meaning = "that the protocol states: not widened, and a caveat of the model's verdicts"
    if limited.all():
        return f" {'That one is' if len(on_edge) == 1 else 'Each is'} at a resource limit {meaning}."
    names = " and ".join(f"{m}'s" for m in on_edge.loc[limited, "model"])
    rest = (~limited).sum()
    return (f" {names} {'is' if limited.sum() == 1 else 'are'} at a resource limit {meaning}; "
            f"{'the other means' if rest == 1 else 'the others mean'} widening the range and searching on.")


def _nearest_end(rows: pd.DataFrame, others: bool) -> str:
    """" The nearest an end: ..." among ``rows`` that have a position ("" if none); ``others``: after a list of edges."""
    placed = rows[rows["position"] != ""]
    if placed.empty:
        return ""
    position = placed["position"].str.rstrip("%").astype(float)  # "97%" -> 97.0
    r = placed.loc[(position - 50).abs().idxmax()]
    return (f" {'Of the others, the' if others else 'The'} nearest an end: {r['model']}: {r['parameter']} "
            f"= {r['best']}, at {r['position']} of {r['range']}.")


def _edge_margin(preset) -> float:
    """The preset's edge margin, or protocol 2's for a preset without one (protocol 1 judged by it)."""
    from rbmlib.tuning.presets import PROTOCOL2

    return preset.edge_margin if preset.edge_margin is not None else PROTOCOL2.edge_margin


def _value_text(value) -> str:
    """A best value in a table: ``4,310``, ``0.053``, ``True``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:.3g}"


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
    from rbmlib.tuning import protocol

    preset = get_preset(preset)
    targets = protocol.finished_targets(
        preset, {m: protocol.counts(s)[0] for m, s in (studies or {}).items() if s is not None})
    rows = []
    for model, space in preset.spaces.items():
        fixed = ", ".join(f"{k} = {v}" for k, v in preset.fixed_params(model).items() if v is not None)
        study = (studies or {}).get(model)
        searched = [f"{k}: {_describe(d)}" + (_earlier_ranges(study, k, d) if study else "")
                    for k, d in space_distributions(space, preset).items()]
        rows.append({"model": model, "trial budget": _budget(preset, model, targets),
                     "searched": "; ".join(searched), "fixed": fixed or "none"})
    return pd.DataFrame(rows)


def _budget(preset, model: str, targets: dict[str, int]) -> str:
    """``"30 finished, 15 of them complete"``: the trials a study runs (``rbmlib.tuning.protocol.shortfall``);
    with ``equal_finished``, as many as the study with the most: ``"41 finished (at least 30), ..."``."""
    n, target = preset.n_trials[model], targets[model]
    text = f"{target} finished" + (f" (at least {n})" if preset.equal_finished else "")
    return text + (f", {preset.min_complete} of them complete" if preset.min_complete else "")


def _earlier_ranges(study: optuna.Study, name: str, current) -> str:
    """`` (trials 0-6: 0.001 to 10 (log))`` for trials that drew ``name`` from another range."""
    other: dict[str, list[int]] = {}
    for t in study.get_trials(deepcopy=False):
        dist = t.distributions.get(name)
        if dist is not None and dist != current:
            other.setdefault(_describe(dist), []).append(t.number)
    return "".join(f" (trials {_numbers(n)}: {d})" for d, n in other.items())


def _numbers(numbers: list[int]) -> str:
    """Trial numbers with each run of three or more consecutive ones as a range: ``0-27, 29``."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)


def _describe(dist) -> str:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return "one of " + ", ".join(map(str, dist.choices))
    step = getattr(dist, "step", None)
    step = None if step in (None, 1) else step
    return (f"{dist.low:g} to {dist.high:g}" + (" (log)" if dist.log else "")
            + (f", step {step:g}" if step is not None else ""))
