"""A Bernoulli-Bernoulli restricted Boltzmann machine in PyTorch, with scikit-learn's API.

The model is the energy

    E(v, h) = -v @ b_v - h @ b_h - h @ W @ v,        v in {0,1}^V, h in {0,1}^H

with ``W = components_`` of shape (H, V). Because the graph is bipartite, the
conditionals factorise: P(h_j=1|v) = sigmoid(W v + b_h)_j and P(v_i=1|h) =
sigmoid(W^T h + b_v)_i, so one block-Gibbs step is two matrix products.

Training follows the explicit contrastive-divergence gradient
(Hinton 2002; persistent chains as in Tieleman 2008):

    dW = <h v^T>_data - <h v^T>_model

with the model term taken from k Gibbs steps started at the data (CD-k) or at a
chain that persists across updates (PCD). No autograd: the gradient is known in
closed form and computing it directly needs one matrix product.
"""

from __future__ import annotations

import json
import time
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from rbmlib import conditionals, partition
from rbmlib._cd import ContrastiveDivergence
from rbmlib._device import PRECISIONS, bfloat16_products, compute_dtype, make_generator, resolve_device, resolve_precision, torch_dtype_for

_MONITOR_ROWS = 1024  # rows used for the per-epoch curves: enough for a smooth mean, cheap
_CHUNK_ROWS = 8192  # rows per block in transform & co., to bound temporary memory
_PARAM_ATTRS = ("components_", "intercept_hidden_", "intercept_visible_", "h_samples_")


class BernoulliRBM(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Bernoulli restricted Boltzmann machine trained by CD-k or persistent CD.

    A drop-in for :class:`sklearn.neural_network.BernoulliRBM` (same parameter
    names, attributes and defaults, which give PCD-1) that runs on a GPU when
    there is one.

    Parameters
    ----------
    n_components : int, default=256
        Number of hidden units H.
    learning_rate : float, default=0.1
        Step size for the mean gradient of a mini-batch.
    batch_size : int, default=10
        Examples per mini-batch (and number of persistent chains).
    n_iter : int, default=10
        Number of passes (epochs) over the training data.
    k : int, default=1
        Gibbs steps per update.
    persistent : bool, default=True
        Persistent CD (chains carried over between updates) when True, CD-k
        (chains restarted at the data) when False.
    momentum : float, default=0.0
        Classical momentum on the parameter updates, in [0, 1).
    weight_decay : float, default=0.0
        L2 penalty on ``components_`` (added to the gradient as ``-weight_decay * W``).
    sample_visible : bool, default=False
        Train on binary images drawn afresh for every mini-batch, v ~ Bernoulli(X)
        (the stochastic binarisation of the original study), instead of on the
        intensities X themselves. Inference always reads X as it is.
    device : {"auto", "cpu", "cuda", "mps"}, default="auto"
        Where to compute; "auto" takes cuda, then mps, then cpu.
    precision : {"float32", "bfloat16", "auto"}, default="float32"
        The precision of the matrix products in training and in :meth:`transform`.
        "float32" computes in the data's dtype (float32, or float64 for float64
        input), as scikit-learn does. "bfloat16" multiplies in bfloat16 and keeps
        the parameters, their updates and the bias statistics in float32: several
        times faster where the hardware multiplies bf16 natively; elsewhere the
        same rounding runs on float32 kernels (``rbmlib._bf16``), as fast as
        "float32", where torch's bf16 kernels would run many times slower. "auto" picks
        "bfloat16" on such hardware (CPUs with AMX or AVX512-BF16 measured faster
        in bf16 than in float32, CUDA GPUs with bf16 tensor cores:
        ``rbmlib._device.native_bfloat16``) and "float32" elsewhere. Free energies, scores and
        partition functions always use the data's dtype: they sum hundreds of
        terms that bf16 would round.
    verbose : int, default=0
        Print one line per epoch when > 0.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and Gibbs sampling. The same seed gives
        the same parameters on the same machine.
    callback : callable or None, default=None
        Called as ``callback(rbm, record)`` after every epoch with the epoch's
        entry of ``history_``; training stops early if it returns True.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Weight matrix W.
    intercept_hidden_ : ndarray of shape (n_components,)
        Hidden biases b_h.
    intercept_visible_ : ndarray of shape (n_features,)
        Visible biases b_v.
    h_samples_ : ndarray of shape (batch_size, n_components)
        Hidden states of the persistent chains (PCD only; zeros for CD).
    precision_ : {"float32", "bfloat16"}
        The precision used, with "auto" resolved for this machine.
    n_features_in_ : int
        Number of visible units V seen in ``fit``.
    history_ : list of dict
        One record per epoch: ``epoch``, ``reconstruction_error`` (mean squared
        error of the mean-field reconstruction), ``pseudo_likelihood`` (mean of
        :meth:`score_samples`), ``seconds``, measured on up to 1024 training rows.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "n_iter": [Interval(Integral, 0, None, closed="left")],
        "k": [Interval(Integral, 1, None, closed="left")],
        "persistent": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "sample_visible": ["boolean"],
        "device": [str, torch.device],  # resolve_device says what this machine has
        "precision": [StrOptions(set(PRECISIONS))],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "callback": [callable, None],
    }

    def __init__(
        self,
        n_components=256,
        *,
        learning_rate=0.1,
        batch_size=10,
        n_iter=10,
        k=1,
        persistent=True,
        momentum=0.0,
        weight_decay=0.0,
        sample_visible=False,
        device="auto",
        precision="float32",
        verbose=0,
        random_state=None,
        callback=None,
    ):
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.k = k
        self.persistent = persistent
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.sample_visible = sample_visible
        self.device = device
        self.precision = precision
        self.verbose = verbose
        self.random_state = random_state
        self.callback = callback

    @classmethod
    def from_params(cls, components, intercept_hidden, intercept_visible, **params):
        """An RBM with the given parameters, ready for inference (or more ``partial_fit``).

        Parameters
        ----------
        components : array-like of shape (n_components, n_features)
        intercept_hidden : array-like of shape (n_components,)
        intercept_visible : array-like of shape (n_features,)
        **params
            Any constructor parameter (``random_state``, ``device``, ...).
        """
        W = np.array(components, dtype=np.float64 if np.asarray(components).dtype != np.float32 else np.float32)
        rbm = cls(n_components=W.shape[0], **params)
        rbm._validate_params()
        rbm._init_state(W[:1])  # shapes, dtype, generator, empty history
        rbm.components_ = W
        rbm.intercept_hidden_ = np.array(intercept_hidden, dtype=W.dtype).reshape(W.shape[0])
        rbm.intercept_visible_ = np.array(intercept_visible, dtype=W.dtype).reshape(W.shape[1])
        rbm.n_features_in_ = W.shape[1]
        return rbm

    # ------------------------------------------------------------------ fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the model to X, starting from fresh parameters.

        Parameters
        ----------
        X : {array-like, sparse matrix} or torch.Tensor of shape (n_samples, n_features)
            Training data with values in [0, 1]; sparse input is read as CSR.
        y : ignored

        Returns
        -------
        self : BernoulliRBM
        """
        resolve_device(self.device)  # a clear error for an unknown or absent device
        X = self._validate_X(X, reset=True)
        self._init_state(X)
        self._train(X)
        return self

    def _train(self, X):
        """The epochs from the next one to ``n_iter``, unless the callback stops them."""
        for _ in range(len(self.history_), self.n_iter):
            if self._run_epoch(X):
                break

    def partial_fit(self, X, y=None):
        """Run one epoch of mini-batch updates over X, initialising on the first call.

        Two calls of ``partial_fit`` on X equal ``fit`` on X with ``n_iter=2``.

        Parameters
        ----------
        X : {array-like, sparse matrix} or torch.Tensor of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self : BernoulliRBM
        """
        first_call = not hasattr(self, "components_")
        if first_call:
            self._validate_params()
            resolve_device(self.device)
        X = self._validate_X(X, reset=first_call)
        if first_call:
            self._init_state(X)
        self._run_epoch(X)
        return self

    def _init_state(self, X):
        device = resolve_device(self.device)
        # One seed drawn from random_state; the training generator and the
        # monitoring subset both derive from it, so fit and partial_fit agree.
        self._seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        self._rng = make_generator(self._seed, device)
        dtype = torch_dtype_for(X.dtype)
        # Small random weights and zero biases, as scikit-learn's BernoulliRBM.
        # Random numbers are always drawn in float32, so float32 and float64 fits see the same stream.
        W = 0.01 * torch.randn(self.n_components, X.shape[1], generator=self._rng, device=device).to(dtype)
        self.components_ = W.cpu().numpy()  # (H, V)
        self.intercept_hidden_ = np.zeros(self.n_components, dtype=X.dtype)  # (H,)
        self.intercept_visible_ = np.zeros(X.shape[1], dtype=X.dtype)  # (V,)
        self.h_samples_ = np.zeros((self.batch_size, self.n_components), dtype=X.dtype)  # (C, H)
        self._n_features_out = self.n_components
        self.precision_ = resolve_precision(self.precision, device)
        self._velocity = None
        self.history_ = []

    def _run_epoch(self, X):
        """One shuffled pass of updates over X; returns True if training should stop."""
        start = time.perf_counter()
        self._bind()
        dtype = self._compute_dtype()
        trainer = ContrastiveDivergence(
            self._params, learning_rate=self.learning_rate, k=self.k, persistent=self.persistent,
            momentum=self.momentum, weight_decay=self.weight_decay, generator=self._rng,
            velocity=self._velocity, dtype=dtype, sample_visible=self.sample_visible,
        )
        W = self._params["W"]
        order = torch.randperm(X.shape[0], generator=self._rng, device=W.device)
        precision = "bfloat16" if dtype == torch.bfloat16 else "float32"
        with torch.no_grad(), bfloat16_products(precision, W.device):
            if sp.issparse(X):  # one dense batch at a time, in the same order as dense data
                for first in range(0, X.shape[0], self.batch_size):
                    rows = order[first : first + self.batch_size]
                    batch = self._as_tensor(X[rows.cpu().numpy()]).to(dtype)  # (B, V)
                    trainer.update(batch, torch.arange(len(rows), device=W.device))
            else:
                # (n, V) on the device: shared with X on the CPU, or one copy in bf16
                data = self._as_tensor(X).to(dtype)
                for first in range(0, X.shape[0], self.batch_size):
                    trainer.update(data, order[first : first + self.batch_size])
        self._velocity = trainer.velocity
        self._unbind()
        record = self._monitor(X, epoch=len(self.history_) + 1, seconds=time.perf_counter() - start)
        finite = all(torch.isfinite(p).all() for p in self._params.values())
        if not (finite and np.isfinite(record["pseudo_likelihood"])):
            # The CD gradient is bounded, so this means steps so large that
            # the parameters or the free energies overflowed.
            raise FloatingPointError(
                f"BernoulliRBM diverged in epoch {record['epoch']}: parameters or free "
                f"energies are not finite. Lower learning_rate (now {self.learning_rate})."
            )
        self.history_.append(record)
        if self.verbose:
            print(
                f"[BernoulliRBM] epoch {record['epoch']}: reconstruction error "
                f"{record['reconstruction_error']:.5f}, pseudo-likelihood "
                f"{record['pseudo_likelihood']:.2f}, {record['seconds']:.2f}s"
            )
        return bool(self.callback is not None and self.callback(self, record))

    # ------------------------------------------------------------ checkpoints
    def _training_state(self) -> dict:
        """The fit as it stands between two epochs, as numpy arrays (what :meth:`_resume` needs).

        Parameters, persistent chains, momentum, the generator's state and the
        history: with all of them, a fit stopped here and resumed ends exactly
        as one that never stopped.
        """
        state = {name: getattr(self, name) for name in _PARAM_ATTRS}
        state["seed"] = np.int64(self._seed)
        state["rng_state"] = self._rng.get_state().numpy()  # a CPU byte tensor, for a GPU's generator too
        state["history"] = np.array(json.dumps(self.history_))
        for name, velocity in (self._velocity or {}).items():
            state[f"velocity_{name}"] = velocity.cpu().numpy()
        return state

    def _resume(self, X, state):
        """Fit on X from ``state`` (:meth:`_training_state` of a fit with the same parameters on X) to ``n_iter``.

        Raises ``ValueError`` if the state's shapes are not this RBM's on X.
        """
        self._validate_params()
        device = resolve_device(self.device)
        X = self._validate_X(X, reset=True)
        self._init_state(X)
        for name in _PARAM_ATTRS:
            if state[name].shape != getattr(self, name).shape:
                raise ValueError(f"The training state's {name} has shape {state[name].shape}, "
                                 f"not {getattr(self, name).shape}: it is of another RBM or other data.")
            setattr(self, name, np.array(state[name], dtype=X.dtype, order="C"))
        self._seed = int(state["seed"])
        self._rng.set_state(torch.from_numpy(np.array(state["rng_state"], dtype=np.uint8)))
        self.history_ = json.loads(str(state["history"]))
        if self.momentum and "velocity_W" in state:
            self._velocity = {name: torch.from_numpy(np.array(state[f"velocity_{name}"])).to(device)
                              for name in ("W", "b_h", "b_v")}
        self._train(X)
        return self

    def _monitor(self, X, *, epoch, seconds):
        """Per-epoch curves on a fixed subset of rows, so epochs compare like with like."""
        rows = np.random.RandomState(self._seed).permutation(X.shape[0])[:_MONITOR_ROWS]
        sample = X[np.sort(rows)]
        sample = sample.toarray() if sp.issparse(sample) else sample
        # The private paths: X is validated already (re-validating an array would
        # warn that it lacks the feature names of a DataFrame it came from).
        with np.errstate(all="ignore"):  # overflow here is diagnosed by the caller
            recon = self._map_chunks(sample, self._reconstruct, self.n_features_in_)
            return {
                "epoch": epoch,
                "reconstruction_error": float(np.mean((sample - recon) ** 2)),
                "pseudo_likelihood": float(np.mean(self._pseudo_likelihood(sample))),
                "seconds": seconds,
            }

    # -------------------------------------------------------------- inference
    def transform(self, X):
        """Hidden activation probabilities P(h=1 | v=X).

        Parameters
        ----------
        X : {array-like, sparse matrix} or torch.Tensor of shape (n_samples, n_features)

        Returns
        -------
        h : ndarray of shape (n_samples, n_components)
        """
        X = self._validated(X)
        dtype = self._compute_dtype()
        if dtype == self._params["W"].dtype:
            return self._map_chunks(X, self._mean_hiddens, self.n_components)
        W, b_h = self._params["W"].to(dtype), self._params["b_h"].to(dtype)  # one copy per call
        with bfloat16_products("bfloat16", W.device):
            return self._map_chunks(
                X, lambda v: conditionals.mean_hiddens(v.to(dtype), W, b_h).to(v.dtype), self.n_components)

    def reconstruct(self, X):
        """Mean-field reconstruction P(v=1 | h=P(h=1|X)), of shape (n_samples, n_features)."""
        return self._map_chunks(self._validated(X), self._reconstruct, self.n_features_in_)

    def free_energy(self, X):
        """Free energy F(v) = -log sum_h exp(-E(v, h)) of each row, shape (n_samples,)."""
        return self._map_chunks(self._validated(X), self._free_energy, None)

    def score_samples(self, X):
        """Pseudo-likelihood of each row, as scikit-learn's BernoulliRBM defines it.

        One randomly chosen unit per row is flipped (v_i -> 1 - v_i) and the
        result is ``n_features * log sigmoid(F(v_flipped) - F(v))``. The flipped
        units are drawn from ``random_state``, so the score is repeatable.

        Returns
        -------
        pseudo_likelihood : ndarray of shape (n_samples,)
        """
        return self._pseudo_likelihood(self._validated(X))

    def _pseudo_likelihood(self, X):
        rng = np.random.RandomState(self._seed)
        flip = (np.arange(X.shape[0]), rng.randint(0, X.shape[1], X.shape[0]))
        if sp.issparse(X):  # add +1 or -1 at the flipped units, keeping X sparse
            X_flipped = X + type(X)((1 - 2 * np.asarray(X[flip]).ravel(), flip), shape=X.shape)
        else:
            X_flipped = X.copy()
            X_flipped[flip] = 1 - X_flipped[flip]
        delta = (self._map_chunks(X_flipped, self._free_energy, None)
                 - self._map_chunks(X, self._free_energy, None))
        return -X.shape[1] * np.logaddexp(0, -delta)

    def gibbs(self, v):
        """One block-Gibbs step v -> h -> v' with sampled (binary) units.

        Parameters
        ----------
        v : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        v_new : ndarray of shape (n_samples, n_features)
        """
        return self._map_chunks(self._validated(v), self._gibbs_step, self.n_features_in_)

    def sample(self, n_samples, n_steps=1000, *, init=None, return_probabilities=False, random_state=None):
        """Draw visible samples by running ``n_steps`` of block-Gibbs sampling.

        Parameters
        ----------
        n_samples : int
            Number of independent chains.
        n_steps : int, default=1000
            Gibbs steps per chain; more steps bring the chains closer to the model.
        init : array-like of shape (n_samples, n_features), optional
            Starting visible states (e.g. data, for chains "started from data").
            Uniform random binary states by default.
        return_probabilities : bool, default=False
            Return P(v=1|h) of the last step (smoother to look at) instead of binary samples.
        random_state : int, RandomState instance or None, default=None
            Seeds the chains. None draws from the model's own generator, whose
            state depends on what the model did before (trained here, or loaded:
            other samples); give a seed for samples that depend on it alone.

        Returns
        -------
        v : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        self._bind()
        W = self._params["W"]
        gen = self._rng if random_state is None else make_generator(random_state, W.device)
        if init is None:
            v = conditionals.bernoulli(torch.full((n_samples, W.shape[1]), 0.5, device=W.device, dtype=W.dtype), gen)
        else:
            init = self._validated(init)
            v = self._as_tensor(init.toarray() if sp.issparse(init) else init).clone()
        for _ in range(n_steps):
            h = conditionals.bernoulli(self._mean_hiddens(v), gen)
            p_v = self._mean_visibles(h)
            v = conditionals.bernoulli(p_v, gen)
        out = p_v if (return_probabilities and n_steps > 0) else v
        return out.cpu().numpy()

    def log_partition(self, method="exact", **kwargs):
        """log Z, the normaliser of exp(-E(v, h)).

        ``method="exact"`` enumerates the smaller layer (at most 20 units) and
        returns a float; ``method="ais"`` estimates it by annealed importance
        sampling and returns an :class:`rbmlib.ais.AISResult` with its standard
        error and bounds (options: ``n_runs``, ``betas`` or ``n_betas``, ``data``
        or ``base_rate``, ``random_state``). See :func:`rbmlib.partition.log_partition`.
        """
        check_is_fitted(self)
        return partition.log_partition(self, method=method, **kwargs)

    def log_likelihood(self, X, method="exact", **kwargs):
        """Mean log-probability per row of X, in nats; see :func:`rbmlib.partition.log_likelihood`."""
        check_is_fitted(self)
        return partition.log_likelihood(self, X, method=method, **kwargs)

    # ------------------------------------------------------------ the math
    # The formulas are in rbmlib.conditionals; these bind them to this RBM's tensors.
    def _mean_hiddens(self, v):
        return conditionals.mean_hiddens(v, self._params["W"], self._params["b_h"])  # (n, H)

    def _mean_visibles(self, h):
        return conditionals.mean_visibles(h, self._params["W"], self._params["b_v"])  # (n, V)

    def _bernoulli(self, p):
        return conditionals.bernoulli(p, self._rng)

    def _free_energy(self, v):
        return conditionals.free_energy(v, self._params["W"], self._params["b_h"], self._params["b_v"])  # (n,)

    def _reconstruct(self, v):
        return self._mean_visibles(self._mean_hiddens(v))

    def _gibbs_step(self, v):
        return self._bernoulli(self._mean_visibles(self._bernoulli(self._mean_hiddens(v))))

    # ------------------------------------------------------------ plumbing
    def _compute_dtype(self):
        """The products' dtype: bf16 when the fit resolved to it, else the parameters' own."""
        self._bind()
        precision = getattr(self, "precision_", None) or resolve_precision(
            self.precision, self._params["W"].device)  # e.g. attributes set by hand
        return compute_dtype(precision, self._params["W"].dtype)

    def _validated(self, X):
        """X checked against the fitted model, in the model's dtype (CSR if sparse)."""
        check_is_fitted(self)
        return self._validate_X(X, reset=False)

    def _map_chunks(self, X, fn, n_out):
        """Apply ``fn`` to row blocks of validated X; write into one preallocated numpy output."""
        self._bind()
        shape = (X.shape[0],) if n_out is None else (X.shape[0], n_out)
        out = np.empty(shape, dtype=X.dtype)
        with torch.no_grad():
            for first in range(0, X.shape[0], _CHUNK_ROWS):
                block = self._as_tensor(X[first : first + _CHUNK_ROWS])
                out[first : first + _CHUNK_ROWS] = fn(block).cpu().numpy()
        return out

    def _validate_X(self, X, *, reset):
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        # CSR, as scikit-learn's BernoulliRBM: it takes every sparse format and converts.
        X = validate_data(self, X, reset=reset, accept_sparse="csr", dtype=(np.float64, np.float32))
        self._check_unit_range(X.data if sp.issparse(X) else X)
        if not reset and hasattr(self, "components_"):
            # Compute in the dtype the model was fitted in.
            X = X.astype(self.components_.dtype, copy=False)
        return X

    @staticmethod
    def _check_unit_range(values):
        """The model's input rule: every value in [0, 1] (probabilities or binary pixels)."""
        if not values.size:
            return
        low, high = values.min(), values.max()
        if low < 0 or high > 1:
            what = "Negative values in data" if low < 0 else "Values above 1 in data"
            raise ValueError(
                f"{what} passed to BernoulliRBM: it expects values in [0, 1] (probabilities "
                f"or binary pixels); got values from {float(low)!r} to {float(high)!r}. Scale the "
                f"data first, e.g. X / 255 for 8-bit images."
            )

    def _as_tensor(self, X):
        """A tensor view of X on the device (no copy on the CPU; sparse rows are densified)."""
        if sp.issparse(X):
            X = X.toarray()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(np.ascontiguousarray(X)).to(self._params["W"].device)

    def _bind(self):
        """Point the torch parameters at the numpy attributes (views on the CPU, copies on a GPU).

        The numpy attributes are the single source of truth, so a user who edits
        ``components_`` by hand gets what they see.
        """
        device = resolve_device(self.device)
        arrays = tuple(getattr(self, name) for name in _PARAM_ATTRS)
        bound = getattr(self, "_bound_arrays", ())
        if len(bound) == len(arrays) and all(a is b for a, b in zip(arrays, bound)):
            return  # already bound to these very arrays: keep the tensors (and __dict__) as they are
        if not hasattr(self, "_rng"):  # e.g. attributes set by hand, never fitted
            self._seed = int(check_random_state(self.random_state).randint(2**31 - 1))
            self._rng = make_generator(self._seed, device)
        for name in _PARAM_ATTRS:
            arr = getattr(self, name)
            if not (arr.flags.c_contiguous and arr.flags.writeable):
                setattr(self, name, np.array(arr, order="C"))
        self._bound_arrays = tuple(getattr(self, name) for name in _PARAM_ATTRS)
        self._params = {
            "W": torch.from_numpy(self.components_).to(device),
            "b_h": torch.from_numpy(self.intercept_hidden_).to(device),
            "b_v": torch.from_numpy(self.intercept_visible_).to(device),
            "chain_h": torch.from_numpy(self.h_samples_).to(device),
        }

    def _unbind(self):
        """Copy trained parameters back to numpy when they live on a GPU."""
        if self._params["W"].device.type != "cpu":
            for name, attr in (("W", "components_"), ("b_h", "intercept_hidden_"),
                               ("b_v", "intercept_visible_"), ("chain_h", "h_samples_")):
                getattr(self, attr)[...] = self._params[name].cpu().numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        return tags

    def __getstate__(self):
        # Parameters travel as numpy; torch state is rebuilt from them on demand.
        state = self.__dict__.copy()
        state.pop("_params", None)
        state.pop("_bound_arrays", None)
        state.pop("_velocity", None)
        if "_rng" in state:
            state["_rng"] = state["_rng"].get_state().numpy() if state["_rng"].device.type == "cpu" else None
        return state

    def __setstate__(self, state):
        rng_state = state.pop("_rng", None)
        self.__dict__.update(state)
        self._velocity = None
        if "_seed" in state:
            self._rng = make_generator(self._seed, resolve_device(self.device))
            if rng_state is not None and self._rng.device.type == "cpu":
                self._rng.set_state(torch.from_numpy(rng_state))
