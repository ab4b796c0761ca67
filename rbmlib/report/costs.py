"""What one protocol-2 trial costs, and how its logistic regression is solved: for the speed appendix.

Reads two committed benchmark tables (this module never measures):

* ``results/benchmarks/trial_cost.csv`` (``benchmarks/trial_cost.py``): one
  trial of each model at the middle of its protocol-2 space, in float32 and in
  bfloat16, one thread;
* ``results/benchmarks/lr_solvers.csv`` (``benchmarks/lr_solvers.py``): four
  ways to fit the logistic regression on one RBM's features, scored on the
  validation split.
"""

from __future__ import annotations

import pandas as pd

from rbmlib import paths


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
