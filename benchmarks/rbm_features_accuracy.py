"""Reference point: logistic regression on the features of a 256-unit RBM, ours vs scikit-learn's.

Fixed settings, chosen before looking at any score (no tuning, so the test set
is used once, only to report): 256 hidden units, 10 epochs, batch 64,
learning rate 0.05, persistent CD-1 (scikit-learn's algorithm), logistic
regression with C=1 run to convergence. Both RBMs train on all 60,000 training
images and are scored on the 10,000 test images.

Run:  python benchmarks/rbm_features_accuracy.py
"""

from __future__ import annotations

import time

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import BernoulliRBM as SklearnRBM
from sklearn.pipeline import Pipeline

from rbmlib import BernoulliRBM, data, metrics, paths

SETTINGS = dict(n_components=256, learning_rate=0.05, batch_size=64, n_iter=10, random_state=0)


def score(rbm, X, y, X_test, y_test):
    pipe = Pipeline([("rbm", rbm), ("clf", LogisticRegression(C=1.0, max_iter=2000))])
    start = time.perf_counter()
    pipe.fit(X, y)
    seconds = time.perf_counter() - start
    return {**metrics.evaluate(y_test, pipe.predict(X_test)), "fit_seconds": seconds,
            "lr_iterations": int(pipe.named_steps["clf"].n_iter_[0])}


def main():
    X, y = data.load_split("trainval")
    X_test, y_test = data.load_split("test")
    rows = []
    for name, rbm in [("rbmlib", BernoulliRBM(**SETTINGS)), ("scikit-learn", SklearnRBM(**SETTINGS))]:
        result = {"rbm": name, **SETTINGS, **score(rbm, X, y, X_test, y_test)}
        print(result, flush=True)
        rows.append(result)
    paths.BENCHMARKS_DIR.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(paths.BENCHMARKS_DIR / "rbm_features_accuracy.csv", index=False)


if __name__ == "__main__":
    main()
