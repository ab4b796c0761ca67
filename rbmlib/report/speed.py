"""What the speed benchmark measured: its targets and its figure, for the script and the appendix.

``benchmarks/rbm_speed.py`` measures and writes ``results/benchmarks/rbm_speed.csv``;
this module only reads such a table, so the paper's appendix redraws the figure
from the committed numbers without re-running the benchmark (which needs an
idle machine to mean anything).

Throughput in flops always counts the 10 V H flops per sample of one CD-1 or
PCD-1 update (:func:`cd_flops_per_sample`), for every implementation, whatever
it actually executes: the table's ``gflops``, the targets' shares of the matmul
peak and the figure's arithmetic limits (peak / (10 V H)) use the same count.
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


PEERS = ("learnergy", "rbms")  # the PyTorch RBM libraries the benchmark compares with
# Colours and legend labels per implementation family (library and precision), the same in both panels.
_FAMILIES = [
    (("rbmlib", "float32"), "rbmlib, float32"),
    (("rbmlib", "bfloat16"), "rbmlib, bfloat16"),
    (("original", "float32"), "original formulation (autograd)"),
    (("scikit-learn", "float32"), "scikit-learn"),
    (("learnergy", "float32"), "learnergy"),
    (("rbms", "float32"), "rbms"),
]


def cd_flops_per_sample(n_hidden, n_visible: int = N_VISIBLE):
    """Flops of one CD-1 (or PCD-1) update per training sample: 10 V H.

    Five products' worth: P(h | v_data), then the negative phase's P(v | h) and
    P(h | v), each 2 V H per row, and the weight gradient <h v^T>_data -
    <h v^T>_model, one product over the data rows and the model rows stacked
    (2B rows, so 4 V H per sample). Sampling, biases and sigmoids are O(V + H).
    """
    return 10 * n_visible * n_hidden


def complete(table: pd.DataFrame) -> pd.DataFrame:
    """The table with its derived columns (re)computed: ``gflops`` at 10 V H, peaks and shares of them.

    Also fills the columns an older table lacks (``library``, ``algorithm``,
    ``precision``, ``note``, the bf16 peak), so a table written before the
    bf16 and peer rows existed reads the same way. Idempotent.
    """
    t = table.copy()
    name = t["implementation"].astype(str)
    if "library" not in t:
        t["library"] = name.str.split().str[0]
    if "algorithm" not in t:
        t["algorithm"] = np.where(name.str.contains("PCD-1"), "PCD-1", "CD-1")
    if "precision" not in t:
        t["precision"] = np.where(name.str.contains("bf16"), "bfloat16", "float32")
    t["precision"] = t["precision"].fillna("")
    t["note"] = t["note"].fillna("") if "note" in t else ""
    t["gflops"] = cd_flops_per_sample(t["n_components"]) * t["samples_per_s"] / 1e9
    if "matmul_peak_gflops" not in t:
        t["matmul_peak_gflops"] = t["matmul_gflops_at_shape"].max()
    if "bf16_matmul_peak_gflops" not in t:
        t["bf16_matmul_peak_gflops"] = (t["bf16_matmul_gflops_at_shape"].max()
                                        if "bf16_matmul_gflops_at_shape" in t else np.nan)
    bf16 = t["precision"] == "bfloat16"
    t["peak_gflops"] = np.where(bf16, t["bf16_matmul_peak_gflops"], t["matmul_peak_gflops"])
    t["fraction_of_peak"] = t["gflops"] / t["peak_gflops"]
    return t


def _row(t, library, algorithm, precision, h, b):
    """The measured row of one implementation and setting, or None (absent or not run)."""
    sel = t[(t.library == library) & (t.algorithm == algorithm) & (t.precision == precision)
            & (t.n_components == h) & (t.batch_size == b) & np.isfinite(t.samples_per_s)]
    return sel.iloc[0] if len(sel) else None


def _speed(t, library, algorithm, h, b, precision="float32") -> float:
    row = _row(t, library, algorithm, precision, h, b)
    return float(row["samples_per_s"]) if row is not None else np.nan


def _missing_bf16_units(t) -> str:
    """Why bf16 cannot be several times faster here ("" when the hardware has it or it is not recorded)."""
    device = str(t["device"].iloc[0]) if "device" in t else "cpu"
    if device.startswith("cpu") and "amx_bf16" in t and not _truthy(t["amx_bf16"].iloc[0]):
        return "no AMX on this CPU"
    if device.startswith("cuda") and "native_bf16" in t and not _truthy(t["native_bf16"].iloc[0]):
        return "no native bf16 on this GPU"
    return ""


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def targets(table: pd.DataFrame, *, echo: bool = False) -> pd.DataFrame:
    """The speed targets as ratios measured in one run: target, required, measured value, met.

    ``met`` is "yes", "no", or "n/a" where the run has nothing to compare. All
    flop counts are 10 V H per sample (:func:`cd_flops_per_sample`). With
    ``echo=True`` each target is also printed, one line each.
    """
    t = complete(table)
    rows = []
    cd32 = _row(t, "rbmlib", "CD-1", "float32", 1024, 256)
    name = "float32 CD-1 at H=1024, B=256: share of the float32 matmul peak (10 V H flops per sample)"
    if cd32 is None:
        rows.append((name, "≥ 85%", "not measured", "n/a"))
    else:
        share = cd32["gflops"] / cd32["matmul_peak_gflops"]
        measured = f"{share:.0%} ({cd32['gflops']:.0f} of {cd32['matmul_peak_gflops']:.0f} GFLOP/s)"
        rows.append((name, "≥ 85%", measured, _yes(share >= 0.85)))

    cd16 = _row(t, "rbmlib", "CD-1", "bfloat16", 1024, 256)
    name = "bf16 CD-1 at H=1024, B=256: times rbmlib's float32, and share of the bf16 matmul peak"
    if cd16 is None or cd32 is None:
        rows.append((name, "≥ 3× and ≥ 50%", "not measured", "n/a"))
    else:
        ratio = cd16["samples_per_s"] / cd32["samples_per_s"]
        share = cd16["gflops"] / cd16["bf16_matmul_peak_gflops"]
        measured = (f"{ratio:.1f}× float32, {share:.0%} of the bf16 peak "
                    f"({cd16['gflops']:.0f} of {cd16['bf16_matmul_peak_gflops']:.0f} GFLOP/s)")
        lacking = _missing_bf16_units(t)
        rows.append((name, "≥ 3× and ≥ 50%", f"{lacking}: measured {measured}" if lacking else measured,
                     _yes(ratio >= 3 and share >= 0.5)))

    ratio = _speed(t, "rbmlib", "PCD-1", 256, 64) / _speed(t, "scikit-learn", "PCD-1", 256, 64)
    name = "PCD-1 at H=256, B=64: times scikit-learn"
    rows.append((name, "≥ 3×", f"{ratio:.1f}×", _yes(ratio >= 3)) if np.isfinite(ratio)
                else (name, "≥ 3×", "not measured", "n/a"))

    for peer in PEERS:
        rows.append(_peer_target(t, peer))

    settings = t[["n_components", "batch_size"]].drop_duplicates().itertuples(index=False)
    ratios = [(_speed(t, "rbmlib", "CD-1", h, b) / _speed(t, "original", "CD-1", h, b), h, b)
              for h, b in settings]
    ratios = [r for r in ratios if np.isfinite(r[0])]
    name = "CD-1, worst setting: times the original formulation"
    if ratios:
        worst, h, b = min(ratios)
        rows.append((name, "≥ 2×", f"{worst:.1f}× (H={h}, B={b})", _yes(worst >= 2)))
    else:
        rows.append((name, "≥ 2×", "not measured", "n/a"))
    out = pd.DataFrame(rows, columns=["target", "required", "measured", "met"])
    if echo:
        for row in out.itertuples(index=False):
            print(f"{row.target}: {row.measured} (target {row.required}, met: {row.met})", flush=True)
    return out


def _peer_target(t, peer):
    """rbmlib (float32, same algorithm) over a peer at every setting the peer ran: the worst ratio and where."""
    name = f"rbmlib (float32) over {peer}, same algorithm, every setting {peer} runs: worst"
    rows = t[t.library == peer]
    ran = rows[np.isfinite(rows.samples_per_s)]
    if ran.empty:
        why = rows["note"].iloc[0] if len(rows) else "not in this run"
        return name, "> 1×", f"not measured: {why}", "n/a"
    ratios = [(_speed(t, "rbmlib", r.algorithm, r.n_components, r.batch_size) / r.samples_per_s,
               r.algorithm, r.n_components, r.batch_size) for r in ran.itertuples(index=False)]
    ratios = [r for r in ratios if np.isfinite(r[0])]
    if not ratios:
        return name, "> 1×", "not measured: no rbmlib row at the settings it ran", "n/a"
    worst, algorithm, h, b = min(ratios)
    measured = f"{worst:.1f}× ({algorithm}, H={h}, B={b}; {len(ratios)} settings)"
    for algorithm, skipped in rows[~np.isfinite(rows.samples_per_s)].groupby("algorithm", sort=False):
        measured += f"; {algorithm} not run at {len(skipped)} settings: {skipped['note'].iloc[0]}"
    return name, "> 1×", measured, _yes(worst > 1)


def _yes(flag) -> str:
    return "yes" if flag else "no"


def speed_figure(table: pd.DataFrame) -> Figure:
    """Training samples per second, CD-1 and PCD-1 side by side, log scale, with both arithmetic limits.

    One panel per algorithm, one group of bars per setting (H, B), one bar per
    implementation that ran (at most six per group); the marks are the float32
    and bf16 matmul peaks divided by the 10 V H flops of one update per sample.
    """
    import matplotlib.pyplot as plt

    t = complete(table)
    settings = t[["n_components", "batch_size"]].drop_duplicates().reset_index(drop=True)
    x = np.arange(len(settings))
    flops = cd_flops_per_sample(settings["n_components"].to_numpy())
    limits = [("float32", "matmul_peak_gflops", "k"), ("bf16", "bf16_matmul_peak_gflops", "0.55")]
    colours = {key: f"C{i}" for i, (key, _) in enumerate(_FAMILIES)}
    labels = dict(_FAMILIES)
    # The width of a page's text (about 6.7 in), so that the labels print at their size.
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 4.6), sharey=True, layout="constrained")
    handles = {}
    for ax, algorithm in zip(axes, ("CD-1", "PCD-1")):
        ran = t[(t.algorithm == algorithm) & np.isfinite(t.samples_per_s)]
        present = list(dict.fromkeys(zip(ran.library, ran.precision)))
        families = [key for key, _ in _FAMILIES if key in present] + [k for k in present if k not in dict(_FAMILIES)]
        width = 0.8 / max(1, len(families))
        for i, key in enumerate(families):
            mine = t[(t.algorithm == algorithm) & (t.library == key[0]) & (t.precision == key[1])]
            sub = settings.merge(mine, how="left", on=["n_components", "batch_size"])
            handles[key] = ax.bar(x - 0.4 + (i + 0.5) * width, sub["samples_per_s"], width,
                                  color=colours.get(key, f"C{len(colours) % 10}"))
        for label, column, colour in limits:
            if column in t and np.isfinite(t[column].iloc[0]):
                handles[label] = ax.scatter(x, t[column].iloc[0] * 1e9 / flops, marker="_", s=700,
                                            linewidths=2, color=colour, zorder=3)
        ax.set_xticks(x, [f"H={h}\nB={b}" for h, b in settings.itertuples(index=False)], fontsize=8)
        ax.set_title(algorithm)
        ax.set_yscale("log")
    axes[0].set_ylabel("training samples per second")
    order = [key for key, _ in _FAMILIES if key in handles]
    order += [key for key in handles if isinstance(key, tuple) and key not in order]
    order += [label for label, *_ in limits if label in handles]
    names = {key: labels.get(key, f"{key[0]}, {key[1]}") for key in order if isinstance(key, tuple)}
    names.update({label: f"arithmetic limit, {label} (matmul peak / 10 V H)" for label, *_ in limits})
    fig.legend([handles[k] for k in order], [names[k] for k in order], loc="outside lower center",
               ncol=2, fontsize=8, frameon=False)
    where = t["device_name"].iloc[0] if "device_name" in t else t["device"].iloc[0]
    fig.suptitle(f"RBM training throughput, one epoch ({where}, {t['threads'].iloc[0]} threads, "
                 f"torch {t['torch'].iloc[0]})", fontsize=10)
    return fig


def transform_sentence(transform: pd.DataFrame | None) -> str:
    """The feature-extraction cost at the largest size, in words."""
    if transform is None or transform.empty:
        return "The transform benchmark has not been run on this device."
    r = transform.iloc[0]
    n_hidden = int(r["n_components"]) if "n_components" in r else 4096
    # A second copy of the data, or of the output, would add at least its size to the growth.
    copies = r["peak_rss_growth_gib"] >= r["output_gib"] + r["input_gib"]
    return (f"Extracting {n_hidden:,} features from all 70,000 images took {r['seconds']:.1f} s; the process's "
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
    return out.rename(columns={"n_trials": "finished trials", "n_seeds": "seeds"}).set_index("model")
