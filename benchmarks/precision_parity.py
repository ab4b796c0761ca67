"""Does bfloat16 change what the models learn? float32 against bf16 on the validation split.

The precision option (``precision="bfloat16"``) may become the study's default
only where it learns what float32 learns. Each part trains the same model with
the same seed in both precisions, on the training split, and scores it on the
validation split (never on the test split):

``rbm-lr``
    Logistic regression on the features of RBMs with 1,024 and 4,096 hidden
    units (PCD-1, the pipelines' RBM), 3 seeds: validation accuracy.
``ais``
    A 500-unit RBM (CD-1 and PCD-1 on binarised images, as the likelihood
    chapter trains it), 2 seeds: validation log-likelihood by AIS, with its
    standard error. AIS itself runs in float32 for both.
``nets``
    The FNN and CNN at the paper study's best parameters, a fixed number of
    epochs, 3 seeds: validation accuracy.

Rows are appended to ``results/benchmarks/precision_parity/<part>.csv`` as they
are measured, and a rerun skips the rows already there, so an interrupted run
resumes; parts may run at the same time, in separate processes. ``--summary`` prints the verdict per part from that file.

Run:  python benchmarks/precision_parity.py --part rbm-lr     (about 40 min on 1 thread of a 2-core CPU)
      python benchmarks/precision_parity.py --part ais        (about 20 min)
      python benchmarks/precision_parity.py --part nets       (about 40 min)
      python benchmarks/precision_parity.py --summary
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from rbmlib import BernoulliRBM, data, paths
from rbmlib._device import cpu_capabilities
from rbmlib.metrics import evaluate
from rbmlib.nets import CNNClassifier, FNNClassifier
from rbmlib.tuning.rbm_cache import fit_rbm

FILES = paths.BENCHMARKS_DIR / "precision_parity"  # one CSV per part: parts may run in parallel
CACHE = paths.CACHE_DIR / "parity"
PRECISIONS = ("float32", "bfloat16")
TOLERANCE_POINTS = 0.2  # accuracy: |mean bf16 - mean float32| over the seeds, in points

# The paper study's best trials (results/studies/{fnn,cnn}.db), at a fixed epoch count.
FNN_PARAMS = dict(hidden_units=400, learning_rate=9.995e-4, batch_size=147, dropout=0.2724, n_iter=10)
CNN_PARAMS = dict(filters1=21, filters2=75, kernel1=3, kernel2=3, learning_rate=7.384e-4,
                  dropout=0.2646, batch_size=64, n_iter=5)
RBM_PARAMS = dict(learning_rate=0.05, batch_size=256, n_iter=10)  # the paper preset's RBMs
LR_C = 1.0  # fixed, not tuned: the comparison is between precisions, at one C


def read_all() -> pd.DataFrame:
    tables = [pd.read_csv(f) for f in sorted(FILES.glob("*.csv"))]
    if not tables:
        raise SystemExit(f"No results in {FILES}/ yet: run a --part first.")
    return pd.concat(tables, ignore_index=True)


def done_keys(part: str) -> set:
    path = FILES / f"{part}.csv"
    if not path.exists():
        return set()
    table = pd.read_csv(path)
    return set(zip(table["part"], table["setting"], table["seed"], table["precision"]))


def append(row: dict) -> None:
    row = {**row, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "machine": platform.processor() or platform.machine(),
           "avx512_bf16": bool(cpu_capabilities().get("avx512_bf16")),
           "amx_bf16": bool(cpu_capabilities().get("amx_bf16"))}
    path = FILES / f"{row['part']}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(path, mode="a", header=not path.exists(), index=False)
    print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                    if k not in ("torch", "machine")), flush=True)


def part_rbm_lr(done):
    X, y = data.load_split("train")
    X_val, y_val = data.load_split("val")
    for n_components in (1024, 4096):
        for seed in (0, 1, 2):
            for precision in PRECISIONS:
                setting = f"H={n_components}"
                if ("rbm-lr", setting, seed, precision) in done:
                    continue
                start = time.perf_counter()
                rbm = BernoulliRBM(n_components, random_state=seed, precision=precision, **RBM_PARAMS)
                rbm, _ = fit_rbm(rbm, X, cache_dir=CACHE)
                rbm_seconds = sum(r["seconds"] for r in rbm.history_)
                F, F_val = rbm.transform(X), rbm.transform(X_val)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    clf = LogisticRegression(C=LR_C, max_iter=1000).fit(F, y)
                scores = evaluate(y_val, clf.predict(F_val))
                append({"part": "rbm-lr", "setting": setting, "seed": seed, "precision": precision,
                        "metric": "val_accuracy", "value": scores["accuracy"], "stderr": np.nan,
                        "rbm_seconds": rbm_seconds, "lr_iterations": int(clf.n_iter_[0]),
                        "lr_converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught),
                        "seconds": time.perf_counter() - start})


def part_ais(done):
    X, _ = data.load_split("train", binarize=0.5)
    X_val, _ = data.load_split("val", binarize=0.5)
    for variant, persistent in (("CD-1", False), ("PCD-1", True)):
        for seed in (0, 1):
            for precision in PRECISIONS:
                if ("ais", variant, seed, precision) in done:
                    continue
                start = time.perf_counter()
                rbm = BernoulliRBM(500, learning_rate=0.05, batch_size=100, n_iter=20, k=1,
                                   persistent=persistent, random_state=seed, precision=precision)
                rbm, _ = fit_rbm(rbm, X, cache_dir=CACHE)
                res = rbm.log_partition("ais", n_runs=100, data=X, random_state=0)
                append({"part": "ais", "setting": variant, "seed": seed, "precision": precision,
                        "metric": "val_log_likelihood", "value": rbm.log_likelihood(X_val, log_z=res),
                        "stderr": res.log_z_std, "rbm_seconds": sum(r["seconds"] for r in rbm.history_),
                        "seconds": time.perf_counter() - start})


def part_nets(done):
    X, y = data.load_split("train")
    X_val, y_val = data.load_split("val")
    for name, make in (("fnn", lambda s, p: FNNClassifier(**FNN_PARAMS, random_state=s, precision=p)),
                       ("cnn", lambda s, p: CNNClassifier(**CNN_PARAMS, random_state=s, precision=p))):
        for seed in (0, 1, 2):
            for precision in PRECISIONS:
                if ("nets", name, seed, precision) in done:
                    continue
                start = time.perf_counter()
                clf = make(seed, precision).fit(X, y, eval_set=(X_val, y_val))
                append({"part": "nets", "setting": name, "seed": seed, "precision": precision,
                        "metric": "val_accuracy", "value": clf.history_[-1]["val_accuracy"], "stderr": np.nan,
                        "epoch_seconds": float(np.mean([r["seconds"] for r in clf.history_])),
                        "seconds": time.perf_counter() - start})


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (part, setting): the mean of each precision over seeds, their difference and the verdict.

    Accuracies pass within ``TOLERANCE_POINTS``; log-likelihoods pass when the
    difference of the means is within twice its standard error (AIS's error and
    the seeds' spread, combined).
    """
    rows = []
    for (part, setting), sub in table.groupby(["part", "setting"], sort=False):
        means = sub.groupby("precision")["value"].mean()
        if not set(PRECISIONS) <= set(means.index):
            continue
        diff = means["bfloat16"] - means["float32"]
        paired = sub.pivot_table(index="seed", columns="precision", values="value").dropna()
        row = {"part": part, "setting": setting, "seeds": len(paired),
               "float32": means["float32"], "bfloat16": means["bfloat16"], "difference": diff}
        if sub["metric"].iloc[0] == "val_accuracy":
            row["tolerance"] = TOLERANCE_POINTS / 100
        else:  # AIS error of each mean, plus the spread of the paired differences over seeds
            ais = np.sqrt((sub.groupby("precision")["stderr"].apply(lambda s: np.mean(s ** 2))).sum())
            spread = (paired["bfloat16"] - paired["float32"]).std(ddof=1) / np.sqrt(len(paired)) if len(paired) > 1 else 0
            row["tolerance"] = 2 * float(np.hypot(ais, spread))
        row["parity"] = abs(diff) <= row["tolerance"]
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("rbm-lr", "ais", "nets"), action="append", default=[])
    parser.add_argument("--summary", action="store_true", help="print the verdicts from the CSV")
    args = parser.parse_args(argv)
    parts = {"rbm-lr": part_rbm_lr, "ais": part_ais, "nets": part_nets}
    for name in args.part:
        parts[name](done_keys(name))
    if args.summary or not args.part:
        print(summary(read_all()).to_string(index=False))


if __name__ == "__main__":
    main()
