"""Curves drawn from the trials of a study: networks' validation accuracy per epoch, and the
validation curve of logistic regression on RBM features.

Both read only what the Optuna studies stored (the per-epoch validation
accuracy each network reported to the pruner, each trial's parameters and
score), so they look at the validation split alone. Each returns one figure
with a panel per model or per parameter, so that a study that is missing or has
no trial yet gives a panel that says so instead of an error.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator
from optuna.trial import TrialState

from rbmlib.models import MODELS
from rbmlib.report.plots import untangle_xticks

_WIDTH = 6.5  # inches: the text width of the PDF page, as the tuning strips
_PANEL_HEIGHT = 2.1
_STYLE = {  # pruned trials lighter than complete ones; the best trial on top of both
    TrialState.PRUNED: {"color": "0.6", "alpha": 0.45, "lw": 0.8, "ls": "--"},
    TrialState.COMPLETE: {"color": "C0", "alpha": 0.55, "lw": 1.0},
}
_BEST = {"color": "C3", "lw": 2.0}


def _grid(n_panels: int, *, sharey=False):
    """A row of up to three panels, else two columns; returns the figure and its axes in order."""
    ncols = n_panels if n_panels <= 3 else 2
    nrows = -(-n_panels // ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, sharey=sharey, layout="constrained",
                             figsize=(_WIDTH, _PANEL_HEIGHT * nrows + 0.4))
    axes = list(axes.flat)
    for ax in axes[n_panels:]:
        ax.axis("off")
    return fig, axes[:n_panels]


def _say(ax, text: str) -> None:
    """An empty panel that states why it is empty (its ticks hidden, not removed: a shared
    axis would lose them everywhere)."""
    ax.tick_params(left=False, labelleft=False, bottom=False, labelbottom=False)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=8, wrap=True)


def learning_curves(studies: dict) -> Figure:
    """Validation accuracy per epoch of every finished trial of each network's study.

    Parameters
    ----------
    studies : dict of model name -> optuna.Study or None
        The models in the order of the panels; only those that train in epochs
        (``Model.has_epochs``) are drawn. None: the study does not exist yet.

    Returns
    -------
    Figure
        One panel per network: complete trials as solid lines, pruned ones
        lighter and dashed (they stop at the epoch the pruner stopped them),
        and the best trial (by validation accuracy) thick, with a dot at the
        epoch the final refit trains for. Failed trials are left out. The
        axis starts just below the lowest accuracy of a complete trial, so a
        pruned trial that starts lower leaves the frame.
    """
    models = [m for m in studies if MODELS[m].has_epochs]
    fig, axes = _grid(max(len(models), 1))
    if not models:
        _say(axes[0], "no network among the models")
        return fig
    ncols = axes[0].get_gridspec().ncols
    for i, (ax, model) in enumerate(zip(axes, models)):
        ax.set_title(textwrap.fill(MODELS[model].label, 30), fontsize=8)  # three panels share 6.5 inches
        _learning_panel(ax, studies[model])
        if i >= len(models) - ncols:
            ax.set_xlabel("epoch")
        if i % ncols == 0:
            ax.set_ylabel("validation accuracy")
    handles = [Line2D([], [], **_STYLE[TrialState.COMPLETE], label="complete trial"),
               Line2D([], [], **_STYLE[TrialState.PRUNED], label="pruned trial"),
               Line2D([], [], **_BEST, marker="o", ms=4, label="best trial (dot: its best epoch)")]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False, fontsize=8)
    return untangle_xticks(fig)


def _learning_panel(ax, study) -> None:
    trials = [] if study is None else [
        t for t in study.get_trials(deepcopy=False, states=tuple(_STYLE)) if t.intermediate_values]
    if not trials:
        _say(ax, "no study yet" if study is None else "no finished trial yet")
        return
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    for t in sorted(trials, key=lambda t: t.state == TrialState.COMPLETE):  # pruned underneath
        if t is not best:
            ax.plot(*_curve(t), **_STYLE[t.state])
    if best is not None:
        ax.plot(*_curve(best), **_BEST, zorder=3)
        epoch = best.user_attrs.get("best_epoch")
        if epoch in best.intermediate_values:
            ax.plot([epoch], [best.intermediate_values[epoch]], "o", color=_BEST["color"], ms=5, zorder=4)
    if complete:
        _floor_at_complete(ax, complete, trials)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.grid(alpha=0.3)


def _floor_at_complete(ax, complete, trials) -> None:
    """Start the axis just below the lowest accuracy of a complete trial.

    A pruned trial that learns slowly starts far lower (0.2 where the
    complete ones start at 0.8) and would squeeze every curve that matters
    into a strip at the top; it leaves the frame instead.
    """
    low = min(min(t.intermediate_values.values()) for t in complete)
    high = max(max(t.intermediate_values.values()) for t in trials)
    floor = low - 0.05 * (high - low)
    if any(min(t.intermediate_values.values()) < floor for t in trials):
        ax.set_ylim(bottom=floor)


def _curve(trial):
    epochs = sorted(trial.intermediate_values)
    return epochs, [trial.intermediate_values[e] for e in epochs]


#: The RBM's parameters against which the validation curve of logistic regression is drawn.
LR_CURVE_PARAMS = (("rbm__n_components", "hidden units (log scale)", "log"), ("rbm__n_iter", "RBM epochs", "linear"))


def lr_validation_curve(study, model: str = "rbm-lr") -> Figure:
    """Validation accuracy of ``model``'s complete trials against the RBM's size and epochs.

    Parameters
    ----------
    study : optuna.Study or None
        The study of a logistic regression on RBM features (None: not there yet).
    model : str
        Its name in the registry, for the title.

    Returns
    -------
    Figure
        One panel per parameter of :data:`LR_CURVE_PARAMS`: a dot per trial
        (colour: the trial's classifier ``clf__C``, on a log scale, because
        the RBM's features are only as good as the regularisation chosen
        with them), the best trial ringed. A parameter that the study did
        not tune but fixed (the paper preset trains every RBM for 10 epochs)
        gets a panel saying so, with its value from the study's own record
        (``fixed_params``).
    """
    fig, axes = _grid(len(LR_CURVE_PARAMS), sharey=True)
    fig.suptitle(MODELS[model].label, fontsize=9)
    complete = [] if study is None else study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    fixed = {} if study is None else study.user_attrs.get("fixed_params", {})
    points = None
    for ax, (name, label, scale) in zip(axes, LR_CURVE_PARAMS):
        ax.set_xlabel(label)
        trials = [t for t in complete if name in t.params]
        if not trials:
            _say(ax, f"{name} was fixed at {fixed[name]} in every trial" if fixed.get(name) is not None
                 else "no study yet" if study is None else f"no complete trial with {name} yet")
            continue
        points = _validation_panel(ax, trials, name, scale, best=study.best_trial)
    axes[0].set_ylabel("validation accuracy")
    if points is not None:
        fig.colorbar(points, ax=axes, label="clf__C (log)", aspect=15, pad=0.02)
        best = Line2D([], [], marker="o", ms=9, mfc="none", mec=_BEST["color"], mew=1.5, ls="",
                      label=f"best trial ({study.best_trial.number})")
        fig.legend(handles=[best], loc="outside lower center", frameon=False, fontsize=8)
    return untangle_xticks(fig)


def _validation_panel(ax, trials, name, scale, *, best):
    from matplotlib.colors import LogNorm

    x = [t.params[name] for t in trials]
    c = [t.params.get("clf__C", 1.0) for t in trials]
    points = ax.scatter(x, [t.value for t in trials], c=c, cmap="viridis", s=18, zorder=2,
                        norm=LogNorm(vmin=min(c), vmax=max(c) if max(c) > min(c) else min(c) * 10))
    if name in best.params:
        ax.scatter([best.params[name]], [best.value], s=90, facecolors="none", edgecolors=_BEST["color"],
                   linewidths=1.5, zorder=3)
    if scale == "log":  # hidden units: powers of two, written out (2048, not 2x10^3)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
        if min(x) == max(x):
            ax.set_xlim(min(x) / 1.5, max(x) * 1.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    ax.grid(alpha=0.3)
    return points
