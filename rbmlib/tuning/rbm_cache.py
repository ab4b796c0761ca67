"""Train an RBM once per (parameters, data, seed) and reuse it.

An RBM's features depend only on its parameters, its training data and its
seed, so trials that draw the same RBM (the RBM grid in ``spaces`` is coarse on
purpose), the two RBM models, and a resumed evaluation can share one training.

What is cached is the trained weights (``.npz``), not the features: for 8192
hidden units the features of 60,000 images take 2 GB as float32, the weights
25 MB, and recomputing the features from them takes seconds, while training
takes many minutes. Within one process the last features are also kept in
memory (:class:`FeatureCache`), so consecutive trials with one RBM skip even that.

A long training also leaves a checkpoint every :data:`CHECKPOINT_S` seconds
(``<key>.partial.npz``): an RBM of 16,384 hidden units trained for 200 epochs
takes longer than a working session, so a trial cut at a session's end and
retried goes on from its last checkpoint, to the very RBM an uninterrupted
fit gives (:meth:`rbmlib.rbm.BernoulliRBM._training_state`), instead of
starting over and being cut again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline

from rbmlib import paths

#: Seconds of training between two checkpoints of an RBM fit (:func:`fit_rbm`).
CHECKPOINT_S = 300.0

# Arguments that do not change what the RBM learns; the device and the precision
# enter the key as what they resolve to ("auto" on a GPU machine and "cuda" are the same run).
_IGNORED = ("callback", "verbose", "device", "precision")
# Arguments added after RBMs were cached: left out of the key at their default,
# so that the keys of those RBMs stay valid.
_LATER_DEFAULTS = {"sample_visible": False}


def data_fingerprint(X: np.ndarray) -> str:
    """A short hash of an array's shape, dtype and bytes (a 157 MB split takes ~0.2 s)."""
    X = np.ascontiguousarray(X)
    h = hashlib.blake2b(digest_size=12)
    h.update(f"{X.shape}{X.dtype}".encode())
    h.update(memoryview(X).cast("B"))
    return h.hexdigest()


def rbm_key(rbm, X_fingerprint: str) -> str:
    """Cache key of an unfitted RBM on data with fingerprint ``X_fingerprint``.

    The key holds the device and the torch thread count too: matrix products
    round differently on another device or with another number of threads, and
    sampling turns that into a different RBM (same seed, 1 vs 2 threads:
    weights apart by more than their own size). For the same reason it holds
    the precision the RBM resolves to; float32 adds nothing, so keys made before
    the precision option existed still find their RBMs.
    """
    params = {k: v for k, v in sorted(rbm.get_params().items())
              if k not in _IGNORED and not (k in _LATER_DEFAULTS and v == _LATER_DEFAULTS[k])}
    if not isinstance(params.get("random_state"), (int, np.integer, type(None))):
        raise ValueError("Cached RBMs need an int random_state (or None) to be reproducible.")
    import torch

    from rbmlib._device import resolve_device, resolve_precision

    device = resolve_device(rbm.device)
    setup = {"params": params, "data": X_fingerprint, "device": device.type,
             "threads": torch.get_num_threads()}
    precision = resolve_precision(rbm.precision, device)
    if precision != "float32":
        setup["precision"] = precision
    text = json.dumps(setup, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def fit_rbm(rbm, X, *, key: str | None = None, cache_dir: Path | None = None,
            checkpoint_s: float | None = None):
    """Fit ``rbm`` on ``X``, or load the weights of an identical earlier fit.

    A fit that an earlier process left unfinished goes on from its checkpoint
    (see the module); the checkpoint is removed once the RBM is cached, or if it diverges.

    Parameters
    ----------
    rbm : rbmlib.BernoulliRBM
        Unfitted; its ``callback`` (e.g. a progress bar) runs only when it trains.
    X : ndarray of shape (n_samples, n_features)
    key : str, optional
        ``rbm_key(rbm, data_fingerprint(X))``, if the caller has it already.
    cache_dir : path-like, optional
        Default ``paths.CACHE_DIR / "rbm"``.
    checkpoint_s : float, optional
        Seconds of training between two checkpoints (written after an epoch);
        default :data:`CHECKPOINT_S`.

    Returns
    -------
    rbm : BernoulliRBM
        Fitted (``rbm`` itself) or loaded (a new object with the same parameters).
    cached : bool
        True if it was loaded.

    Raises
    ------
    FloatingPointError
        If training diverges (nothing is cached then).
    """
    from rbmlib.rbm import BernoulliRBM

    key = key or rbm_key(rbm, data_fingerprint(X))
    path = _path(key, cache_dir)
    if path.exists():
        with np.load(path) as f:
            params = {k: v for k, v in rbm.get_params().items() if k != "n_components"}
            loaded = BernoulliRBM.from_params(
                f["components"], f["intercept_hidden"], f["intercept_visible"], **params
            )
            loaded.history_ = json.loads(str(f["history"]))
        return loaded, True
    partial = _partial_path(key, cache_dir)
    state = _read_checkpoint(partial)
    callback = rbm.callback
    every_s = CHECKPOINT_S if checkpoint_s is None else checkpoint_s
    rbm.set_params(callback=_Checkpointer(partial, every_s, callback))
    try:
        rbm.fit(X) if state is None else rbm._resume(X, state)
    except FloatingPointError:
        partial.unlink(missing_ok=True)  # it would diverge again at the same epoch
        raise
    finally:
        rbm.set_params(callback=callback)
    _save(path, components=rbm.components_, intercept_hidden=rbm.intercept_hidden_,
          intercept_visible=rbm.intercept_visible_, history=json.dumps(rbm.history_))
    partial.unlink(missing_ok=True)
    return rbm, False


def checkpointed_epochs(key: str, cache_dir: Path | None = None) -> int:
    """Epochs of the RBM of cache key ``key`` that a checkpoint holds (0 for none; see the module)."""
    try:
        with np.load(_partial_path(key, cache_dir)) as f:  # reads the history alone
            return len(json.loads(str(f["history"])))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return 0  # none, or unreadable: :func:`fit_rbm` trains from the start


class _Checkpointer:
    """RBM callback: every ``every_s`` seconds of training, save the fit's state to ``path``; then ``callback``."""

    def __init__(self, path: Path, every_s: float, callback=None):
        self.path, self.every_s, self.callback = path, every_s, callback
        self.last = time.monotonic()

    def __call__(self, rbm, record) -> bool:
        if record["epoch"] < rbm.n_iter and time.monotonic() - self.last >= self.every_s:
            _save(self.path, **rbm._training_state())
            self.last = time.monotonic()
        return bool(self.callback is not None and self.callback(rbm, record))


def _save(path: Path, **arrays) -> None:
    """``np.savez`` to ``path``: written then renamed, so that a job killed while saving leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.part.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _read_checkpoint(path: Path) -> dict | None:
    """The training state saved at ``path``, or None if there is none or it cannot be read (then trained afresh)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as f:
            return {name: f[name] for name in f.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        warnings.warn(f"The RBM checkpoint {path.name} cannot be read ({exc}); training from the start.",
                      stacklevel=3)
        return None


def is_cached(key: str, cache_dir: Path | None = None) -> bool:
    """Whether the RBM of cache key ``key`` (:func:`rbm_key`) is trained already (:func:`fit_rbm` loads it)."""
    return _path(key, cache_dir).exists()


def _path(key: str, cache_dir: Path | None) -> Path:
    return Path(paths.CACHE_DIR / "rbm" if cache_dir is None else cache_dir) / f"{key}.npz"


def _partial_path(key: str, cache_dir: Path | None) -> Path:
    return _path(key, cache_dir).with_suffix(".partial.npz")


def rbm_step(estimator):
    """The RBM that ``estimator`` trains first (a pipeline's ``rbm`` step, or its ``rbm`` parameter), or None."""
    if isinstance(estimator, Pipeline):
        return estimator.named_steps.get("rbm")
    return getattr(estimator, "rbm", None)


def _fit_and_transform(rbm, X, X_val, *, cache_dir=None):
    """The default feature source of :func:`fit_feature_steps`: the disk cache, then ``transform``."""
    fitted, _ = fit_rbm(rbm, X, cache_dir=cache_dir)
    return fitted, fitted.transform(X), None if X_val is None else fitted.transform(X_val)


def fit_feature_steps(pipeline, X, *, X_val=None, features=None, cache_dir=None):
    """Fit every step of an RBM pipeline except its classifier; return the classifier's inputs.

    The RBM (step ``rbm``, first) is trained through the cache, and the fitted
    (or loaded) RBM is put back into ``pipeline``; the steps between it and the
    classifier (``rbm-fnn``'s scaler) are fitted on the features of X and
    applied to those of X_val. Fit ``pipeline[-1]`` on the result and the
    pipeline predicts end to end. The objective and the final refit both fit
    their pipelines through here.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        ``rbm -> [...] -> clf``, unfitted.
    X : ndarray of shape (n_samples, n_features)
    X_val : ndarray of shape (n_val, n_features), optional
    features : callable, optional
        ``features(rbm, X, X_val) -> (fitted_rbm, F, F_val)``, for a caller that
        keeps features in memory too (the objective); default: :func:`fit_rbm` and ``transform``.
    cache_dir : path-like, optional
        For the default ``features``.

    Returns
    -------
    F : ndarray of shape (n_samples, n_out)
    F_val : ndarray of shape (n_val, n_out) or None
    """
    if features is None:
        features = partial(_fit_and_transform, cache_dir=cache_dir)
    fitted, F, F_val = features(pipeline.named_steps["rbm"], X, X_val)
    pipeline.steps[0] = ("rbm", fitted)
    if len(pipeline) > 2:  # an empty Pipeline cannot be fitted, so only when there are middle steps
        middle = pipeline[1:-1]  # a slice shares its steps with the pipeline
        F = middle.fit_transform(F)
        F_val = None if F_val is None else middle.transform(F_val)
    return F, F_val


def attach_rbm(estimator, X, *, fit=None, cache_dir=None):
    """Give an estimator that starts from an RBM (its ``rbm`` parameter) one trained through the cache.

    For :class:`rbmlib.nets.PretrainedFNNClassifier`: the RBM is fitted (or
    loaded) here and handed over frozen, so the network's ``fit`` uses it as it
    is instead of training it again.

    Parameters
    ----------
    estimator : estimator with an unfitted ``rbm`` parameter
    X : ndarray of shape (n_samples, n_features)
    fit : callable, optional
        ``fit(rbm) -> fitted_rbm``, for a caller with a cache of its own (the
        objective); default :func:`fit_rbm` with ``cache_dir``.

    Returns
    -------
    fitted_rbm : BernoulliRBM
    """
    from sklearn.frozen import FrozenEstimator

    fitted = fit(estimator.rbm) if fit is not None else fit_rbm(estimator.rbm, X, cache_dir=cache_dir)[0]
    estimator.set_params(rbm=FrozenEstimator(fitted))
    return fitted


class FeatureCache:
    """The RBM features of the last RBM used, in memory, keyed like :func:`fit_rbm`.

    Holds one entry: two different large RBMs' features would not fit in memory anyway.
    """

    def __init__(self):
        self._key, self._value = None, None

    def get(self, key):
        """The cached value for ``key``, or None."""
        return self._value if key == self._key else None

    def clear(self):
        """Drop the entry (before computing the next one, so that both never sit in memory)."""
        self._key, self._value = None, None

    def put(self, key, value):
        """Remember ``value`` under ``key``, replacing the previous entry."""
        self._key, self._value = key, value
