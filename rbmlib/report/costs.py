"""What the pipeline cost, what one protocol-2 trial costs, and how its logistic regression is solved.

For the speed appendix. How long a preset's studies and refits kept the machine
busy comes from their own records (:func:`busy_intervals`: trial times in the
studies, refit times in ``evaluation.csv`` and the ledger). The rest reads two
committed benchmark tables (this module never measures):

* ``results/benchmarks/trial_cost.csv`` (``benchmarks/trial_cost.py``): one
  trial of each model at the middle of its protocol-2 space, in float32 and in
  bfloat16, one thread;
* ``results/benchmarks/lr_solvers.csv`` (``benchmarks/lr_solvers.py``): four
  ways to fit the logistic regression on one RBM's features, scored on the
  validation split.
"""

from __future__ import annotations

import datetime

import optuna
import pandas as pd
from optuna.trial import TrialState

from rbmlib import paths
from rbmlib.tuning import progress

#: A pause longer than this between two stretches of work separates two sessions.
SESSION_GAP = pd.Timedelta(minutes=30)


def read_table(name: str) -> pd.DataFrame:
    """A committed benchmark table, ``results/benchmarks/<name>.csv``."""
    path = paths.BENCHMARKS_DIR / f"{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path.relative_to(paths.ROOT)} does not exist: "
                                f"run `python benchmarks/{name}.py` to measure it.")
    return pd.read_csv(path)


def trial_cost_table(cost: pd.DataFrame) -> pd.DataFrame:
    """Seconds per trial of each model in float32 and bfloat16, the speed-up, and hours per study.

    One row per model (in the benchmark's order); the study's hours are its
    budget of trials at the bfloat16 cost of one trial at the space's middle.
    """
    wide = cost.pivot_table(index="model", columns="precision", values="trial_s", sort=False)
    budget = cost.drop_duplicates("model").set_index("model")["n_trials"]
    out = pd.DataFrame({
        "float32 trial (s)": wide["float32"],
        "bfloat16 trial (s)": wide["bfloat16"],
        "bfloat16 speed-up": wide["float32"] / wide["bfloat16"],
        "trials": budget,
        "study at bfloat16 (h)": budget * wide["bfloat16"] / 3600,
    })
    out.index.name = "model"
    return out


_SOLVERS = {  # benchmark name -> what the table calls it
    "sklearn": "scikit-learn lbfgs",
    "sklearn-standardised": "scikit-learn lbfgs, standardised features",
    "torch-manual": "torch L-BFGS, gradient written out",
    "torch-autograd": "torch L-BFGS, autograd",
}


def lr_solver_table(solvers: pd.DataFrame) -> pd.DataFrame:
    """Iterations, convergence, seconds and validation accuracy of each solver at each ``C``."""
    out = solvers.assign(solver=solvers["solver"].map(_SOLVERS).fillna(solvers["solver"]),
                         converged=solvers["converged"].map({True: "yes", False: "no"}))
    out = out[["C", "solver", "n_iter", "converged", "seconds", "val_accuracy"]]
    return out.rename(columns={"n_iter": "iterations", "seconds": "seconds (1 thread)",
                               "val_accuracy": "validation accuracy"}).set_index(["C", "solver"])


def standardising_sentence(solvers: pd.DataFrame) -> str:
    """What standardising the RBM features did to scikit-learn's lbfgs, at each ``C`` measured."""
    raw = solvers[solvers["solver"] == "sklearn"].set_index("C")
    std = solvers[solvers["solver"] == "sklearn-standardised"].set_index("C")
    common = raw.index.intersection(std.index)
    if common.empty:
        return "The solver benchmark has no C at which both raw and standardised features were fitted."
    n_features = int(solvers["n_features"].iloc[0])
    parts = []
    for C in sorted(common):
        r, s = raw.loc[C], std.loc[C]
        gain = 100 * (s["val_accuracy"] - r["val_accuracy"])
        stopped = "" if bool(s["converged"]) else f", and it stopped at the limit of {int(s['n_iter']):,} unconverged"
        parts.append(f"at C = {C:g}, {gain:+.1f} points of validation accuracy "
                     f"({100 * r['val_accuracy']:.1f}% raw, {100 * s['val_accuracy']:.1f}% standardised) "
                     f"for {s['n_iter'] / r['n_iter']:.1f} times the iterations{stopped}")
    return (f"On the features of a {n_features:,}-unit RBM, standardising them changed scikit-learn's lbfgs "
            + "; ".join(parts) + ".")


def best_C_table(grid: pd.DataFrame) -> pd.DataFrame:
    """The best ``C`` on validation for raw and for standardised features (``lr_standardising.csv``).

    One row per preprocessing: the grid searched, the best C, its validation
    accuracy, iterations and whether lbfgs converged; ``on an edge`` says
    whether the best C is an end of its grid (the grid would then be too narrow);
    ``largest converged C`` is the largest C of the grid whose fit converged
    (NaN if none did).
    """
    rows = {}
    for preprocessing, g in grid.groupby("preprocessing", sort=False):
        g = g.sort_values("C")
        best = g.loc[g["val_accuracy"].idxmax()]
        rows[preprocessing] = {
            "C searched": f"{g['C'].min():g} to {g['C'].max():g}",
            "best C": best["C"],
            "validation accuracy": best["val_accuracy"],
            "iterations": int(best["n_iter"]),
            "converged": "yes" if bool(best["converged"]) else "no",
            "on an edge": "yes" if best["C"] in (g["C"].min(), g["C"].max()) else "no",
            "largest converged C": g.loc[g["converged"].astype(bool), "C"].max(),
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "features"
    return out


def tuned_standardising_sentence(grid: pd.DataFrame) -> str:
    """Raw against standardised features with ``C`` tuned for each, in validation accuracy points."""
    best = best_C_table(grid)
    if not {"raw", "standardised"} <= set(best.index):
        return "The grid benchmark lacks raw or standardised features."
    raw, std = best.loc["raw"], best.loc["standardised"]
    gain = 100 * (std["validation accuracy"] - raw["validation accuracy"])
    n_features = int(grid["n_features"].iloc[0])
    edge = [name for name, row in best.iterrows() if row["on an edge"] == "yes"]
    caveat = f" (the best C of {' and '.join(edge)} features is an end of its grid)" if edge else ""
    converged = {name: "converged" if row["converged"] == "yes" else "unconverged" for name, row in best.iterrows()}
    return (f"With C tuned on the validation split for each, logistic regression on the {n_features:,} "
            f"features of the same RBM reached {100 * raw['validation accuracy']:.2f}% on raw features "
            f"(C = {raw['best C']:g}, {converged['raw']}) and {100 * std['validation accuracy']:.2f}% on "
            f"standardised ones (C = {std['best C']:g}, {converged['standardised']}): a difference of "
            f"{gain:+.2f} points{caveat}. The largest C at which lbfgs converged within its iteration limit "
            f"was {raw['largest converged C']:g} on raw features and {std['largest converged C']:g} on "
            "standardised ones.")


# ----------------------------------------------------------------------------- machine time

def busy_intervals(studies: dict, evaluation: pd.DataFrame, looks: pd.DataFrame,
                   heartbeats: dict | None = None) -> pd.DataFrame:
    """When each trial and each scored refit ran: what kept the machine busy.

    Parameters
    ----------
    studies : dict of model name -> optuna.Study or None
    evaluation : DataFrame
        The preset's ``evaluation.csv`` rows (``seconds`` of each refit).
    looks : DataFrame
        The preset's test-set ledger (``time`` each refit was scored, with its offset).
        Rows recovered from the repository's history (``source``) carry the time of a
        commit, not of a refit, and are left out.
    heartbeats : dict of model name -> {trial number: datetime}, optional
        :func:`rbmlib.tuning.progress.last_heartbeats` of each study: a failed trial
        ran from its start to its last heartbeat (:func:`~rbmlib.tuning.progress.trial_spans`).

    Returns
    -------
    DataFrame with columns model, kind ("trial", "failed trial" or "refit"), start, end
        Local times, as Optuna stores a trial's, sorted by start.
    """
    rows = [{"model": model, "kind": "failed trial" if t.state == TrialState.FAIL else "trial",
             "start": start, "end": end}
            for model, study in studies.items() if study is not None
            for t, start, end in progress.trial_spans(study, (heartbeats or {}).get(model))]
    looks = looks[looks["source"].isna()] if "source" in looks else looks
    if len(looks) and len(evaluation):
        local = datetime.datetime.now().astimezone().tzinfo
        scored = looks.assign(end=pd.to_datetime(looks["time"]).dt.tz_convert(local).dt.tz_localize(None))
        refits = scored.merge(evaluation, on=["model", "seed", "trial_number"])
        rows += [{"model": r.model, "kind": "refit", "end": r.end,
                  "start": r.end - pd.Timedelta(seconds=float(r.seconds))} for r in refits.itertuples()]
    out = pd.DataFrame(rows, columns=["model", "kind", "start", "end"])
    return out.astype({"start": "datetime64[us]", "end": "datetime64[us]"}).sort_values("start", ignore_index=True)


def read_busy_intervals(preset) -> pd.DataFrame:
    """:func:`busy_intervals` of a preset, from its committed studies, evaluation rows and ledger."""
    from rbmlib.report.search import read_studies
    from rbmlib.tuning import ledger
    from rbmlib.tuning.presets import get_preset
    from rbmlib.tuning.refit import read_evaluation

    preset = get_preset(preset)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study opened
    try:
        studies = read_studies(preset.models, preset)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return busy_intervals(studies, read_evaluation(preset), ledger.read(preset.name),
                          progress.read_heartbeats(preset, studies))


def lanes(intervals: pd.DataFrame) -> pd.Series:
    """Each interval's lane: the first whose last job has ended, else a new one (greedy, by start).

    As many lanes as jobs ever ran at once: on this project's machines the two
    chains of ``make tune``, which share models, so a lane is a chain's share of the work.
    """
    ends, lane = [], []
    for start, end in zip(intervals["start"], intervals["end"]):
        free = next((i for i, last in enumerate(ends) if last <= start), None)
        if free is None:
            free = len(ends)
            ends.append(end)
        ends[free] = max(ends[free], end)
        lane.append(free)
    return pd.Series(lane, index=intervals.index, name="lane", dtype=int)


def sessions(intervals: pd.DataFrame, gap: pd.Timedelta = SESSION_GAP) -> pd.DataFrame:
    """The stretches of time when anything ran, split where nothing ran for longer than ``gap``.

    One row per session: start, end, and hours of elapsed time.
    """
    spans = []
    for start, end in zip(intervals["start"], intervals["end"]):
        if spans and start - spans[-1][1] <= gap:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    out = pd.DataFrame(spans, columns=["start", "end"])
    return out.assign(hours=(out["end"] - out["start"]).dt.total_seconds() / 3600)


def machine_time_sentence(intervals: pd.DataFrame, preset: str) -> str:
    """Elapsed time, stretches of work, compute and each lane's (chain's) busy time of a preset's runs."""
    if intervals.empty:
        return f"No trial or refit of the {preset} preset has finished yet."
    hours = (intervals["end"] - intervals["start"]).dt.total_seconds() / 3600
    per_lane = hours.groupby(lanes(intervals)).sum()
    runs = sessions(intervals)
    kinds = intervals["kind"].value_counts()
    done = [f"{kinds[k]:,} {k}{'s' if kinds[k] > 1 else ''}" for k in ("trial", "failed trial", "refit") if k in kinds]
    done = " and ".join([", ".join(done[:-1]), done[-1]] if len(done) > 1 else done)
    stretches = "one stretch" if len(runs) == 1 else f"{len(runs)} stretches"
    split = ("" if len(per_lane) == 1 else
             f", {' and '.join(_duration(h) for h in per_lane)} in each of the {len(per_lane)} processes that "
             "ran side by side (the chains of `make tune`, one thread each)")
    return (f"The {done} of the {preset} preset ran for {_duration(runs['hours'].sum())} "
            f"of elapsed time, in {stretches} without a pause of over {SESSION_GAP.total_seconds() / 60:.0f} "
            f"minutes; their compute adds up to {_duration(hours.sum())}{split}. A failed trial, most often "
            "one cut short by the end of a session, counts up to its last heartbeat.")


def _duration(hours: float) -> str:
    """Hours as a reader would say them: "17.7 hours", "25 minutes", "40 seconds"."""
    if hours >= 1:
        return f"{hours:.1f} hours"
    return f"{hours * 60:.0f} minutes" if hours * 60 >= 1 else f"{hours * 3600:.0f} seconds"
