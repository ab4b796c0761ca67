"""Controls for the RBM's features: the RBM's feature map without the learning.

If a linear model does better on RBM features than on pixels, two explanations
compete: the RBM learned structure in the images, or any wide nonlinear
expansion of the pixels helps a linear model (random features, Rahimi & Recht
2008; extreme learning machines). :class:`RandomSigmoidFeatures` is the second
explanation alone: ``sigmoid(X W^T + b)``, the RBM's P(h=1|v), with W drawn at
random and never trained. An RBM that beats it at the same width and tuning
budget has learned something a random map does not have.

The linear counterpart, PCA followed by logistic regression, is
``sklearn.decomposition.PCA`` in a pipeline and needs no code here.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

# Rows per block in transform. The output is written in place, so blocks only
# bound the temporaries (a non-contiguous X is copied one block at a time).
_CHUNK_ROWS = 4096


class RandomSigmoidFeatures(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Random sigmoid features ``sigmoid(X W^T + b)``: an RBM's feature map with untrained weights.

    Parameters
    ----------
    n_components : int, default=256
        Number of features (the RBM's hidden units H).
    weight_scale : float, default=1.0
        The weights are drawn from N(0, weight_scale**2 / n_features), so a
        unit's input has a standard deviation of about ``weight_scale`` times the
        root-mean-square spread of one feature. On Fashion-MNIST scaled to
        [0, 1] that spread is 0.29: at 1.0 every unit works in the nearly linear
        middle of the sigmoid, and a scale near 10 brings the inputs to the
        range where it bends. Tune it as the RBM's parameters are tuned.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights. The same seed gives the same weights for float32 and
        float64 data (they are drawn in float64, then rounded).

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The random weights W, in the training data's dtype (as the RBM's).
    intercept_hidden_ : ndarray of shape (n_components,)
        Hidden biases ``b = -W @ mean(X_train)``: each unit's input is centred on
        the training data. With b = 0, a unit whose weights happen to sum away
        from zero would see the images' mean brightness as a constant offset
        and sit in a flat end of the sigmoid.
    n_features_in_ : int
        Number of features seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).random((100, 784), dtype=np.float32)
    >>> RandomSigmoidFeatures(512, weight_scale=10, random_state=0).fit_transform(X).shape
    (100, 512)
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "weight_scale": [Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_components=256, *, weight_scale=1.0, random_state=None):
        self.n_components = n_components
        self.weight_scale = weight_scale
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Draw the weights and centre the biases on X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (e.g. pixels in [0, 1]); only its column means are used.
        y : ignored

        Returns
        -------
        self : RandomSigmoidFeatures
        """
        X = self._validate(X, reset=True)
        rng = check_random_state(self.random_state)
        n_features = X.shape[1]
        W = rng.standard_normal((self.n_components, n_features)) * (self.weight_scale / np.sqrt(n_features))
        b = -W @ X.mean(axis=0, dtype=np.float64)  # (H,)
        self.components_ = W.astype(X.dtype)
        self.intercept_hidden_ = b.astype(X.dtype)
        return self

    def transform(self, X):
        """The features ``sigmoid(X W^T + b)``, in X's dtype (float32 stays float32).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        features : ndarray of shape (n_samples, n_components)
        """
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        W = self.components_.astype(X.dtype, copy=False)  # (H, V)
        b = self.intercept_hidden_.astype(X.dtype, copy=False)  # (H,)
        out = np.empty((X.shape[0], W.shape[0]), dtype=X.dtype)  # the only full-size array
        for first in range(0, X.shape[0], _CHUNK_ROWS):
            block = out[first:first + _CHUNK_ROWS]  # a view: every step below writes in place
            np.matmul(X[first:first + _CHUNK_ROWS], W.T, out=block)
            block += b
            expit(block, out=block)
        return out

    def _validate(self, X, *, reset):
        # Finite values only. The RBM's [0, 1] rule is not reused: its message names the
        # RBM, and nothing here needs the range (the caller scales pixels for both).
        return validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])

    @property
    def _n_features_out(self):
        """Number of output features, for ``get_feature_names_out``."""
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
