"""Logistic regression on RBM features: which solver, at equal validation accuracy.

Logistic regression on thousands of RBM features is a large share of an
rbm-lr or random-lr trial. This compares, on the features of one RBM
(fixed settings, trained on the training split; scored on validation only):

* ``sklearn``: scikit-learn's lbfgs on the float32 features (it keeps float32);
* ``sklearn-standardised``: the same after ``StandardScaler``;
* ``torch-autograd``: full-batch ``torch.optim.LBFGS`` (strong Wolfe line
  search), the loss and its gradient by autograd;
* ``torch-manual``: the same optimiser, the gradient written out, with the
  weight gradient computed as ``G.T @ X`` (n_classes x n_features), the product
  orientation that the CPU kernels run fast (autograd's ``X.T @ G`` runs about
  10x slower on one thread for a 50,000-row X and 10 classes).

All minimise scikit-learn's objective, mean log-loss + ||W||^2 / (2 C n), to
the same gradient tolerance (1e-4, max-abs) within 1,000 iterations.

The solvers are compared at equal ``C``. Whether standardising the features
helps once ``C`` is tuned for each is a separate question: ``--grid`` fits
scikit-learn's lbfgs on raw and on standardised features over a grid of ``C``
each and writes ``results/benchmarks/lr_standardising.csv`` (validation only).

Run:  python benchmarks/lr_solvers.py          (about 10 min on one thread; writes results/benchmarks/lr_solvers.csv)
      python benchmarks/lr_solvers.py --grid   (about 20 min on one thread)
      python benchmarks/lr_solvers.py --quick  (5,000 images, 256 units: a smoke run)
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from rbmlib import BernoulliRBM, data, metrics, paths
from rbmlib.tuning.rbm_cache import fit_rbm

OUT = paths.BENCHMARKS_DIR / "lr_solvers.csv"
GRID_OUT = paths.BENCHMARKS_DIR / "lr_standardising.csv"
# Each grid spans the other's optimum by a decade or more: standardised features are
# larger in scale, so the same fit needs a C roughly 100x smaller (measured at 0.01 and 1).
GRID = {"raw": [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
        "standardised": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]}
MAX_ITER, TOL = 1000, 1e-4
RBM = dict(n_components=1024, learning_rate=0.05, batch_size=256, n_iter=10, random_state=0)


def sklearn_lr(F, y, C, standardise=False):
    lr = LogisticRegression(C=C, max_iter=MAX_ITER, tol=TOL)
    model = make_pipeline(StandardScaler(), lr) if standardise else lr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(F, y)
    return model.predict, int(lr.n_iter_[0])


def torch_lr(F, y, C, manual=True):
    X = torch.from_numpy(F)  # (n, d)
    n, d = X.shape
    Y = torch.nn.functional.one_hot(torch.from_numpy(y.astype(np.int64)), 10).to(X.dtype)  # (n, 10)
    W = torch.zeros(d + 1, 10, dtype=X.dtype, requires_grad=not manual)  # last row: intercepts
    opt = torch.optim.LBFGS([W], lr=1, max_iter=MAX_ITER, tolerance_grad=TOL, tolerance_change=1e-12,
                            history_size=10, line_search_fn="strong_wolfe")

    def closure():
        if manual:
            with torch.no_grad():
                logits = torch.addmm(W[-1], X, W[:-1])  # (n, 10)
                loss = (torch.logsumexp(logits, 1) - (logits * Y).sum(1)).mean() + (W[:-1] ** 2).sum() / (2 * C * n)
                G = (torch.softmax(logits, 1) - Y) / n  # (n, 10)
                grad = torch.empty_like(W)
                grad[:-1] = torch.mm(G.T, X).T + W[:-1] / (C * n)  # G.T @ X: the fast orientation
                grad[-1] = G.sum(0)
                W.grad = grad
            return loss
        opt.zero_grad()
        logits = torch.addmm(W[-1], X, W[:-1])
        loss = torch.nn.functional.cross_entropy(logits, Y.argmax(1)) + (W[:-1] ** 2).sum() / (2 * C * n)
        loss.backward()
        return loss

    opt.step(closure)
    weights = W.detach().numpy()
    return (lambda G: (G @ weights[:-1] + weights[-1]).argmax(1)), int(opt.state[W]["n_iter"])


SOLVERS = {
    "sklearn": lambda F, y, C: sklearn_lr(F, y, C),
    "sklearn-standardised": lambda F, y, C: sklearn_lr(F, y, C, standardise=True),
    "torch-manual": lambda F, y, C: torch_lr(F, y, C, manual=True),
    "torch-autograd": lambda F, y, C: torch_lr(F, y, C, manual=False),
}


def grid(F, y, F_val, y_val):
    """Validation accuracy of lbfgs on raw and on standardised features over each one's grid of C."""
    rows = []
    for preprocessing, Cs in GRID.items():
        for C in Cs:
            start = time.perf_counter()
            predict, n_iter = sklearn_lr(F, y, C, standardise=preprocessing == "standardised")
            row = {"preprocessing": preprocessing, "C": C, "n_features": F.shape[1], "n_train": len(F),
                   "n_iter": n_iter, "converged": n_iter < MAX_ITER,
                   "seconds": round(time.perf_counter() - start, 2),
                   "val_accuracy": metrics.evaluate(y_val, predict(F_val))["accuracy"],
                   "threads": torch.get_num_threads()}
            print(row, flush=True)
            rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--grid", action="store_true", help="raw against standardised features, C tuned for each")
    parser.add_argument("--C", type=float, nargs="+", default=[0.01, 1.0])
    args = parser.parse_args()
    subset = 5000 if args.quick else None
    X, y = data.load_split("train", subset=subset)
    X_val, y_val = data.load_split("val", subset=subset and 1000)
    rbm, _ = fit_rbm(BernoulliRBM(**{**RBM, "n_components": 256 if args.quick else 1024}), X)
    F, F_val = rbm.transform(X), rbm.transform(X_val)  # (n, H) float32
    if args.grid:
        rows = grid(F, y, F_val, y_val)
        if not args.quick:
            pd.DataFrame(rows).to_csv(GRID_OUT, index=False)
            print(f"wrote {GRID_OUT.relative_to(paths.ROOT)}")
        return
    rows = []
    for C in args.C:
        for name, solve in SOLVERS.items():
            if name == "torch-autograd" and C != args.C[0]:
                continue  # several times the others' cost: measured at the first C only
            start = time.perf_counter()
            predict, n_iter = solve(F, y, C)
            seconds = time.perf_counter() - start
            row = {"solver": name, "C": C, "n_features": F.shape[1], "n_train": len(F), "n_iter": n_iter,
                   "converged": n_iter < MAX_ITER, "seconds": round(seconds, 2),
                   "val_accuracy": metrics.evaluate(y_val, predict(F_val))["accuracy"],
                   "threads": torch.get_num_threads()}
            print(row, flush=True)
            rows.append(row)
    if not args.quick:
        paths.BENCHMARKS_DIR.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(OUT, index=False)
        print(f"wrote {OUT.relative_to(paths.ROOT)}")


if __name__ == "__main__":
    main()
