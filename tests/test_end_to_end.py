"""RBM features + logistic regression on a real Fashion-MNIST subset."""

import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from rbmlib import BernoulliRBM, data, metrics

pytestmark = pytest.mark.slow  # real data (or servers and processes): seconds each


@pytest.fixture(scope="module")
def subset(fashion_mnist):
    train = data.load_split("train", subset=3000, download=False)
    val = data.load_split("val", subset=1000, download=False)
    return train, val


def test_rbm_features_beat_chance_by_far(subset):
    (X, y), (X_val, y_val) = subset
    rbm = BernoulliRBM(n_components=64, learning_rate=0.05, batch_size=32, n_iter=5, random_state=0)
    pipe = Pipeline([("rbm", rbm), ("clf", LogisticRegression(max_iter=500))]).fit(X, y)
    scores = metrics.evaluate(y_val, pipe.predict(X_val))
    # Chance is 0.10 on ten balanced classes; a 64-unit RBM on 3,000 images gets ~0.75.
    assert scores["accuracy"] > 0.65
    assert scores["macro_f1"] > 0.6
    # The RBM learned: reconstructions got better over its 5 epochs.
    errors = [record["reconstruction_error"] for record in rbm.history_]
    assert errors[-1] < errors[0]
