"""What the speed benchmark measured: its targets and its figure, for the script and the appendix.

``benchmarks/rbm_speed.py`` measures and writes ``results/benchmarks/rbm_speed.csv``;
this module only reads such a table, so the paper's appendix redraws the figure
from the committed numbers without re-running the benchmark (which needs an
idle machine to mean anything).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rbmlib import paths

N_VISIBLE = 784


def benchmark_stem(device: str) -> str:
    """File stem of a device type's benchmark outputs: ``rbm_speed`` on the CPU, ``rbm_speed_cuda``, ..."""
    return "rbm_speed" if device == "cpu" else f"rbm_speed_{device}"


def read_benchmark(device: str = "cpu") -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The committed throughput table and the transform-cost row (None if absent) of a device type."""
    stem = benchmark_stem(device)
    folder = paths.BENCHMARKS_DIR
    table_path = folder / f"{stem}.csv"
    if not table_path.exists():
        raise FileNotFoundError(f"{table_path} does not exist: run `make bench` (python benchmarks/rbm_speed.py).")
    transform = folder / f"{stem}_transform.csv"
    return pd.read_csv(table_path), (pd.read_csv(transform) if transform.exists() else None)


def _speed(table, impl, h, b) -> float:
    sel = table[(table.implementation == impl) & (table.n_components == h) & (table.batch_size == b)]
    return float(sel["samples_per_s"].iloc[0]) if len(sel) else np.nan


def targets(table: pd.DataFrame) -> pd.DataFrame:
    """The speed targets as ratios measured in one run: target, measured value, met or not."""
    rows = []
    cd = table[(table.implementation == "rbmlib CD-1") & (table.n_components == 1024) & (table.batch_size == 256)]
    if len(cd):
        # The target counts 8 V H flops per sample (four products); CD-1 performs five:
        # one for P(h | v_data), one each for the negative phase's P(v | h) and P(h | v),
        # and two for the weight gradient, <h v^T> over the data rows and over the
        # model rows (stacked into one product of 2B rows). The share is given both ways.
        frac = float(cd["fraction_of_peak"].iloc[0])
        rows.append(("CD-1 at 1024 hidden units, batch 256: share of the matmul peak", "≥ 75%",
                     f"{frac:.0%} (of the 10 V H flops CD-1 performs: {frac * 10 / 8:.0%})",
                     _yes(frac >= 0.75)))
    ratio = _speed(table, "rbmlib PCD-1", 256, 64) / _speed(table, "scikit-learn PCD-1", 256, 64)
    if np.isfinite(ratio):
        rows.append(("PCD-1 at 256 hidden units, batch 64: times scikit-learn", "≥ 3×", f"{ratio:.1f}×", _yes(ratio >= 3)))
    settings = table[["n_components", "batch_size"]].drop_duplicates().itertuples(index=False)
    worst = min(_speed(table, "rbmlib CD-1", h, b) / _speed(table, "original (autograd CD-1)", h, b)
                for h, b in settings)
    rows.append(("CD-1, worst setting: times the original formulation", "≥ 2×", f"{worst:.1f}×", _yes(worst >= 2)))
    return pd.DataFrame(rows, columns=["target", "required", "measured", "met"])


def _yes(flag) -> str:
    return "yes" if flag else "no"


def speed_figure(table: pd.DataFrame) -> Figure:
    """Training samples per second of each implementation and setting, log scale, with the arithmetic limit."""
    import matplotlib.pyplot as plt

    settings = table[["n_components", "batch_size"]].drop_duplicates().reset_index(drop=True)
    names = list(dict.fromkeys(table["implementation"]))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(names)
    x = np.arange(len(settings))
    for i, name in enumerate(names):
        sub = settings.merge(table[table.implementation == name], how="left")
        ax.bar(x + i * width, sub["samples_per_s"], width, label=name)
    # One CD-1 step costs about 8 * V * H flops per sample: the peak allows peak / (8 V H) samples/s.
    limit = table["matmul_peak_gflops"].iloc[0] * 1e9 / (8 * N_VISIBLE * settings["n_components"])
    ax.scatter(x + 0.4 - width / 2, limit, marker="_", s=600, color="k", label="arithmetic limit (matmul peak)")
    ax.set_xticks(x + 0.4 - width / 2, [f"H={h}\nB={b}" for h, b in settings.itertuples(index=False)])
    ax.set_yscale("log")
    ax.set_ylabel("training samples per second")
    ax.set_title(f"RBM training throughput ({table['device'].iloc[0]}, {table['threads'].iloc[0]} threads, "
                 f"torch {table['torch'].iloc[0]})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def transform_sentence(transform: pd.DataFrame | None) -> str:
    """The feature-extraction cost at the largest size, in words."""
    if transform is None or transform.empty:
        return "The transform benchmark has not been run on this device."
    r = transform.iloc[0]
    # A second copy of the data, or of the output, would add at least its size to the growth.
    copies = r["peak_rss_growth_gib"] >= r["output_gib"] + r["input_gib"]
    return (f"Extracting 4,096 features from all 70,000 images took {r['seconds']:.1f} s; the process's "
            f"peak memory grew by {r['peak_rss_growth_gib']:.2f} GiB for an output of {r['output_gib']:.2f} GiB "
            f"(input {r['input_gib']:.2f} GiB), "
            + ("so part of the data or output was held twice." if copies else
               "less than the output plus a second copy of the input: the data was not copied."))


def pipeline_costs(summary: pd.DataFrame) -> pd.DataFrame:
    """Compute time of each model's tuning and final evaluation, in minutes, from ``summary.csv``."""
    out = summary[["model", "n_trials", "tune_seconds", "evaluate_seconds", "n_seeds"]].copy()
    out["tuning (min)"] = out.pop("tune_seconds") / 60
    out["evaluation (min)"] = out.pop("evaluate_seconds") / 60
    out["total (min)"] = out["tuning (min)"] + out["evaluation (min)"]
    return out.rename(columns={"n_trials": "trials", "n_seeds": "seeds"}).set_index("model")
