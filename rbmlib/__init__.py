"""rbmlib: RBM features for Fashion-MNIST, with scikit-learn's estimator API."""

from rbmlib.rbm import BernoulliRBM

__all__ = ["BernoulliRBM"]
__version__ = "0.1.0"
