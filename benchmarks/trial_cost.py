"""What one tuning trial of each protocol-2 model costs, in float32 and in bfloat16.

For each model, the parameters at the middle of its protocol-2 space (the
log-midpoint of a log range, the midpoint of a linear one, the first of a
choice) are trained on the full training split and scored on the validation
split, the way the objective does, and the pieces are timed:

* ``rbm_epoch_s``: one RBM epoch (the RBM models);
* ``epoch_s``: one network epoch, its validation scoring included (networks);
* ``fit_s``: everything else of a trial (features, logistic regression, PCA);
* ``trial_s``: the estimate of a whole trial, with the RBM's and network's
  epoch counts at the middle of their ranges (networks: ``EXPECTED_EPOCHS``,
  what early stopping and Hyperband leave of the cap on average; the study's
  own trial durations replace this estimate once it runs).

The protocol's budget follows: ``budget_h`` is the estimate for its number
of trials, on one chain; two chains (one per core) halve the wall time.

Run:  python benchmarks/trial_cost.py            (about 20 min; writes results/benchmarks/trial_cost.csv)
      python benchmarks/trial_cost.py --quick    (a 5,000-image subset: minutes, for a smoke run)
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import pandas as pd
import torch
from optuna.distributions import CategoricalDistribution

from rbmlib import data, metrics, paths
from rbmlib._device import cpu_capabilities
from rbmlib.models import get_model, make_model
from rbmlib.tuning.presets import PROTOCOL2
from rbmlib.tuning.protocol import space_distributions

OUT = paths.BENCHMARKS_DIR / "trial_cost.csv"
EXPECTED_EPOCHS = 12  # network epochs of an average trial under early stopping and Hyperband (an estimate)


def middle(dist):
    """The middle of a distribution: log-midpoint, midpoint, or the first choice."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[0]
    mid = math.exp((math.log(dist.low) + math.log(dist.high)) / 2) if dist.log else (dist.low + dist.high) / 2
    if isinstance(dist.low, int) and isinstance(dist.high, int):
        step = dist.step or 1
        return int(round((mid - dist.low) / step) * step + dist.low)
    return float(mid)


def time_trial(model, precision, X, y, X_val, y_val):
    """Seconds of the pieces of one trial at the middle of the space (see the module docstring)."""
    params = {k: middle(d) for k, d in space_distributions(PROTOCOL2.spaces[model], PROTOCOL2).items()}
    spec = get_model(model)
    fixed = PROTOCOL2.fixed_params(model)
    fixed.update({k: precision for k in spec.precision_params})
    row = {"model": model, "precision": precision, "params": params}
    n_rbm_epochs = params.get("rbm__n_iter", 0)
    if spec.has_epochs:
        fixed[spec.epochs_param] = 2  # two epochs timed; the first pays for warm-up
        fixed[f"{spec.classifier_prefix}early_stopping"] = False
    if spec.uses_rbm:
        params["rbm__n_iter"] = 1  # one RBM epoch timed
    est = make_model(model, random_state=0, **{**params, **fixed})
    start = time.perf_counter()
    net = est[-1] if spec.features else est
    if spec.has_epochs:
        if spec.features:  # rbm -> scale -> clf: features first
            F = est[:-1].fit_transform(X)
            F_val = est[:-1].transform(X_val)
            net.fit(F, y, eval_set=(F_val, y_val))
        else:
            net.fit(X, y, eval_set=(X_val, y_val))
        epoch_s = net.history_[-1]["seconds"]
    else:
        est.fit(X, y)
        metrics.evaluate(y_val, est.predict(X_val))
        epoch_s = 0.0
    total = time.perf_counter() - start
    rbm = (est.named_steps["rbm"] if spec.features else est.rbm_) if spec.uses_rbm else None
    rbm_epoch_s = rbm.history_[0]["seconds"] if rbm is not None else 0.0
    epochs = min(EXPECTED_EPOCHS, PROTOCOL2.n_iter.get(model, 0)) if spec.has_epochs else 0
    fit_s = max(0.0, total - rbm_epoch_s - 2 * epoch_s)
    row.update(rbm_epoch_s=rbm_epoch_s, epoch_s=epoch_s, fit_s=fit_s,
               trial_s=n_rbm_epochs * rbm_epoch_s + epochs * epoch_s + fit_s)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 5,000-image subset")
    parser.add_argument("--model", action="append", choices=PROTOCOL2.models)
    parser.add_argument("--out", type=Path, default=OUT,
                        help="CSV to write (two processes, one per core, each with some --model: then concatenate)")
    args = parser.parse_args(argv)
    subset = 5000 if args.quick else None
    X, y = data.load_split("train", subset=subset)
    X_val, y_val = data.load_split("val", subset=subset and 1000)
    rows = []
    for model in args.model or PROTOCOL2.models:
        for precision in ("float32", "bfloat16"):
            row = time_trial(model, precision, X, y, X_val, y_val)
            rows.append(row)
            print(f"{model:10s} {precision:9s} RBM epoch {row['rbm_epoch_s']:6.1f}s  epoch {row['epoch_s']:6.1f}s  "
                  f"rest {row['fit_s']:6.1f}s  trial ~{row['trial_s'] / 60:5.1f} min", flush=True)
    table = pd.DataFrame(rows)
    table["n_trials"] = table["model"].map(PROTOCOL2.n_trials)
    table["budget_h"] = table["trial_s"] * table["n_trials"] / 3600
    table["params"] = table["params"].map(str)
    caps = cpu_capabilities()
    table["machine"] = platform.processor() or platform.machine()
    table["avx512_bf16"], table["amx_bf16"] = bool(caps.get("avx512_bf16")), bool(caps.get("amx_bf16"))
    table["threads"], table["torch"], table["rows"] = torch.get_num_threads(), torch.__version__, len(X)
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    totals = table.groupby("precision")["budget_h"].sum()
    print("protocol 2, one chain: " + ", ".join(f"{p} {h:.1f} h" for p, h in totals.items()))


if __name__ == "__main__":
    main()
