"""rbmlib: RBM features for Fashion-MNIST, with scikit-learn's estimator API.

``from rbmlib import BernoulliRBM`` imports torch; ``import rbmlib`` alone (as the
command line does before it knows what to run) does not.
"""

__all__ = ["BernoulliRBM"]
__version__ = "0.1.0"


def __getattr__(name):
    if name == "BernoulliRBM":
        from rbmlib.rbm import BernoulliRBM

        return BernoulliRBM
    raise AttributeError(f"module 'rbmlib' has no attribute {name!r}")
