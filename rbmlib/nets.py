"""Torch networks (FNN, CNN) and the scikit-learn classifiers that train them.

``FNNClassifier`` and ``CNNClassifier`` follow scikit-learn's estimator API so
they drop into a ``Pipeline`` after the RBM, into ``clone`` and into pickles.
Both share ``TorchClassifier``: Adam on cross-entropy, mini-batches by index
permutation, optional validation set, early stopping and a per-epoch callback.
``PretrainedFNNClassifier`` is the FNN with its hidden layer started at an
RBM's weights (RBM pretraining, then fine-tuning by back-propagation).
"""

from __future__ import annotations

import copy
import time
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context, clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_consistent_length, check_is_fitted, validate_data
from torch import nn

from rbmlib._device import PRECISIONS, bfloat16_products, make_generator, resolve_device, resolve_precision
from rbmlib.metrics import evaluate
from rbmlib.rbm import BernoulliRBM


IMAGE_SIDE = 28  # Fashion-MNIST images are 28x28, flattened to 784 features
_PREDICT_BATCH = 4096  # inference batch: only memory matters, not the result


# ----------------------------------------------------------------------------- modules


ACTIVATIONS = {"relu": F.relu, "sigmoid": torch.sigmoid}  # the hidden layer's choices


class FNN(nn.Module):
    """One hidden layer: Linear -> activation (ReLU or sigmoid) -> Dropout -> Linear (logits)."""

    activation = "relu"  # class default: modules pickled before the option existed are ReLU networks

    def __init__(self, n_features: int, hidden_units: int, n_classes: int, dropout: float = 0.0,
                 activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}.")
        self.activation = activation
        self.hidden = nn.Linear(n_features, hidden_units)
        self.dropout = nn.Dropout(dropout)  # p=0 is the identity
        self.out = nn.Linear(hidden_units, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(ACTIVATIONS[self.activation](self.hidden(x)))  # (batch, hidden_units)
        return self.out(h)  # (batch, n_classes)


class CNN(nn.Module):
    """The study's two-block CNN on 28x28 grey images given as (batch, 784) rows.

    block1: Conv(1->filters1, kernel1, padding=1) -> BatchNorm -> ReLU -> MaxPool(2)
    block2: Conv(filters1->filters2, kernel2)     -> BatchNorm -> ReLU -> MaxPool(2)
    head:   Linear(-> dense_units) -> ReLU -> Dropout
            -> Linear(-> 120) -> ReLU -> Linear(-> n_classes)
    """

    SECOND_DENSE = 120  # fixed in the original study

    def __init__(self, filters1: int, filters2: int, kernel1: int, kernel2: int,
                 dense_units: int, dropout: float, n_classes: int):
        super().__init__()
        self.block1 = nn.Sequential(
            nn.Conv2d(1, filters1, kernel1, padding=1),
            nn.BatchNorm2d(filters1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.block2 = nn.Sequential(
            nn.Conv2d(filters1, filters2, kernel2),
            nn.BatchNorm2d(filters2), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = self.output_side(kernel1, kernel2)
        # The original stacked Dense(600) -> Dropout -> Dense(120) -> Dense(10) with
        # no activations between them, which collapses into one linear map; the
        # ReLUs here make the extra dense layers worth their parameters.
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(filters2 * side * side, dense_units), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(dense_units, self.SECOND_DENSE), nn.ReLU(),
            nn.Linear(self.SECOND_DENSE, n_classes),
        )

    @staticmethod
    def output_side(kernel1: int, kernel2: int) -> int:
        """Side of the square feature map after block2 (arithmetic, no dummy forward)."""
        side = (IMAGE_SIDE + 2 - kernel1 + 1) // 2  # conv with padding=1, then pool
        side = (side - kernel2 + 1) // 2  # valid conv, then pool
        if side < 1:
            raise ValueError(
                f"kernel1={kernel1}, kernel2={kernel2} shrink a {IMAGE_SIDE}x{IMAGE_SIDE} "
                "image to nothing; use smaller kernels."
            )
        return side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != IMAGE_SIDE * IMAGE_SIDE:
            raise ValueError(f"CNN expects rows of {IMAGE_SIDE ** 2} pixels, got {x.shape[1]}.")
        x = x.view(-1, 1, IMAGE_SIDE, IMAGE_SIDE)  # (batch, 1, 28, 28)
        x = self.block2(self.block1(x))  # (batch, filters2, side, side)
        return self.head(x)  # (batch, n_classes)


# ----------------------------------------------------------------------------- helpers


def _to_numpy(a):
    """Torch tensors (any device, with or without grad) become numpy; the rest passes through."""
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return a


def _fork_rng(device: torch.device):
    """Fork the global RNGs that ``torch.manual_seed`` touches, so fit leaves the caller's alone."""
    if device.type == "cpu":
        return torch.random.fork_rng(devices=[])
    mod = torch.get_device_module(device.type)
    return torch.random.fork_rng(devices=range(mod.device_count()), device_type=device.type)


# ----------------------------------------------------------------------------- estimators


class TorchClassifier(ClassifierMixin, BaseEstimator):
    """Base for scikit-learn classifiers that train a torch module with Adam.

    Subclasses define ``_build_module(n_features, n_classes)`` and may override
    ``_check_n_features``. Parameters and the optimiser run in float32 whatever
    the input dtype; with ``precision="bfloat16"`` the forward and backward
    passes run under bf16 autocast (products and convolutions in bf16).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of the ``predict_proba`` columns.
    n_features_in_ : int
        Number of features seen in ``fit``.
    module_ : torch.nn.Module
        The trained network, kept on the CPU between calls.
    history_ : list of dict
        One record per epoch: ``epoch`` (from 1), ``train_loss``, ``seconds`` and,
        with a validation set, ``val_accuracy`` and ``val_macro_f1``.
    n_iter_ : int
        Epochs actually run (fewer than ``n_iter`` after early stopping or a callback stop).
    best_epoch_ : int or None
        Epoch with the highest validation accuracy (None without a validation set).
        Its weights are the ones kept when ``early_stopping=True``.
    best_val_accuracy_ : float or None
        Validation accuracy at ``best_epoch_``.
    precision_ : {"float32", "bfloat16"}
        The precision used, with "auto" resolved for this machine.
    """

    _parameter_constraints: dict = {
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],  # resolve_device says what this machine has
        "precision": [StrOptions(set(PRECISIONS))],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "callback": [callable, None],
    }

    def _build_module(self, n_features: int, n_classes: int) -> nn.Module:
        raise NotImplementedError

    def _check_n_features(self, n_features: int) -> None:
        """Hook for architectures that need a fixed input size."""

    # ---- validation

    def _validate(self, X, y="no_validation", reset=False):
        """scikit-learn's checks (finite, 2-D, n_features_in_); float32 stays float32."""
        return validate_data(self, _to_numpy(X), _to_numpy(y), dtype=[np.float32, np.float64], reset=reset)

    # ---- fit

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, *, eval_set=None):
        """Train the network with Adam on cross-entropy.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Training inputs; float32 or float64 (computed in float32). Not modified.
        y : array-like of shape (n_samples,)
            Class labels of any type scikit-learn accepts.
        eval_set : tuple (X_val, y_val), optional
            Scored after every epoch (accuracy, macro F1). Used for early stopping
            when given; otherwise ``early_stopping`` holds out a stratified
            ``validation_fraction`` of the training data.

        Returns
        -------
        self
        """
        X, y = self._validate(X, y, reset=True)
        self._check_n_features(self.n_features_in_)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes in y; got 1 class.")
        y_enc = encoder.transform(y)

        rng = check_random_state(self.random_state)
        X_val, y_val = self._validation_set(eval_set)
        if eval_set is None and self.early_stopping:
            X, X_val, y_enc, y_val_enc = train_test_split(
                X, y_enc, test_size=self.validation_fraction, stratify=y_enc, random_state=rng
            )
            y_val = self.classes_[y_val_enc]

        device = resolve_device(self.device)
        self.precision_ = resolve_precision(self.precision, device)
        init_seed = int(rng.randint(np.iinfo(np.int32).max))
        shuffle_gen = make_generator(rng, device)
        with _fork_rng(device):
            torch.manual_seed(init_seed)  # init and dropout draw from the (forked) global RNG
            self.module_ = self._build_module(self.n_features_in_, len(self.classes_)).to(device)
            self._train(X, y_enc, X_val, y_val, device, shuffle_gen)
        self.module_.cpu()  # CPU between calls: pickles load on machines without a GPU
        return self

    def _validation_set(self, eval_set):
        """Validate ``eval_set`` against the fitted feature count; (None, None) if absent."""
        if eval_set is None:
            return None, None
        X_val, y_val = eval_set
        X_val, y_val = self._validate(X_val), np.asarray(_to_numpy(y_val))
        check_consistent_length(X_val, y_val)
        return X_val, y_val

    def _train(self, X, y_enc, X_val, y_val, device, shuffle_gen):
        # Training and validation data go to the device once; batches are index slices.
        X_t = torch.tensor(X, dtype=torch.float32, device=device)  # (n, n_features), a copy
        y_t = torch.as_tensor(y_enc, dtype=torch.long, device=device)  # (n,)
        X_val_t = None
        if X_val is not None:
            X_val_t = torch.tensor(X_val, dtype=torch.float32, device=device)  # (n_val, n_features)
        # The fused kernel updates every parameter in one pass (CPU and CUDA have it):
        # the same Adam, without a dozen small kernels per parameter per step.
        optimizer = torch.optim.Adam(
            self.module_.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay,
            fused=True if device.type in ("cpu", "cuda") else None,
        )
        self.history_, self.n_iter_ = [], 0
        self.best_epoch_, self.best_val_accuracy_ = None, None
        best_state = None
        for epoch in range(1, self.n_iter + 1):
            start = time.perf_counter()
            loss = self._run_epoch(X_t, y_t, optimizer, shuffle_gen)
            self._check_finite(loss, epoch)
            record = {"epoch": epoch, "train_loss": loss}
            if X_val_t is not None:
                record.update(self._score_epoch(X_val_t, y_val, epoch))
                if self.early_stopping and self.best_epoch_ == epoch:
                    best_state = self._snapshot()
            record["seconds"] = time.perf_counter() - start
            self.history_.append(record)
            self.n_iter_ = epoch
            if self.verbose:
                line = ", ".join(f"{k}={v:.4g}" for k, v in record.items())
                print(f"[{type(self).__name__}] {line}")
            if self._should_stop(record):
                break
        if best_state is not None:
            self.module_.load_state_dict(best_state)  # early stopping keeps the best epoch

    def _run_epoch(self, X_t, y_t, optimizer, shuffle_gen) -> float:
        """One pass over shuffled mini-batches; returns the mean training loss."""
        self.module_.train()
        n = X_t.shape[0]
        perm = torch.randperm(n, generator=shuffle_gen, device=X_t.device)
        total = torch.zeros((), device=X_t.device)
        for start in range(0, n, self.batch_size):
            idx = perm[start:start + self.batch_size]
            with self._autocast(X_t.device):
                loss = F.cross_entropy(self.module_(X_t[idx]), y_t[idx])  # mean over the batch
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        return float(total) / n  # one device sync per epoch, not per batch

    def _check_finite(self, loss: float, epoch: int) -> None:
        # NaN weights would silently predict one class forever; fail loudly instead.
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"{type(self).__name__}: training loss became {loss} at epoch {epoch}; "
                f"try a smaller learning_rate (now {self.learning_rate})."
            )

    def _score_epoch(self, X_val_t, y_val, epoch) -> dict:
        """Validation scores of the current weights; remembers the best epoch so far."""
        scores = evaluate(y_val, self._predict_on(X_val_t))
        if self.best_epoch_ is None or scores["accuracy"] > self.best_val_accuracy_:
            self.best_epoch_, self.best_val_accuracy_ = epoch, scores["accuracy"]
        return {"val_accuracy": scores["accuracy"], "val_macro_f1": scores["macro_f1"]}

    def _should_stop(self, record) -> bool:
        if self.callback is not None and self.callback(self, record):
            return True  # e.g. an Optuna pruner said stop; the caller raises afterwards
        if not self.early_stopping or self.best_epoch_ is None:
            return False
        return record["epoch"] - self.best_epoch_ >= self.n_iter_no_change

    def _snapshot(self) -> dict:
        return {k: v.detach().clone() for k, v in self.module_.state_dict().items()}

    # ---- prediction

    @torch.no_grad()
    def _logits(self, X_t: torch.Tensor) -> torch.Tensor:
        """Eval-mode logits of float32 ``X_t`` (on the module's device), batched.

        Returns a float32 CPU tensor of shape (n_samples, n_classes): the
        precision the network computes in. Widening it to float64 would claim
        digits that float32 rounding (which depends on the batch size on some
        CPUs) does not have.
        """
        self.module_.eval()
        with self._autocast(X_t.device):
            out = [self.module_(X_t[i:i + _PREDICT_BATCH]).float().cpu()
                   for i in range(0, X_t.shape[0], _PREDICT_BATCH)]
        return torch.cat(out) if out else torch.zeros((0, len(self.classes_)), dtype=torch.float32)

    def _autocast(self, device: torch.device):
        """bf16 autocast when the fit resolved to bfloat16 (emulated where the device has no bf16
        hardware: ``rbmlib._device.bfloat16_products``); a no-op context otherwise."""
        return bfloat16_products(getattr(self, "precision_", "float32"), device, autocast=True)

    def _predict_on(self, X_t: torch.Tensor) -> np.ndarray:
        return self.classes_[self._logits(X_t).argmax(dim=1).numpy()]

    def _decision(self, X) -> torch.Tensor:
        """Validate X, move the module to the device for the forward pass, then back."""
        check_is_fitted(self)
        device = resolve_device(self.device)
        X_t = torch.tensor(self._validate(X), dtype=torch.float32, device=device)  # a copy
        # Back to where it was: the CPU after fit, the training device when a
        # callback predicts mid-fit (moving it away would break the next epoch).
        home = next(self.module_.parameters()).device
        self.module_.to(device)
        try:
            return self._logits(X_t)
        finally:
            self.module_.to(home)

    def decision_function(self, X):
        """Logits; for two classes the logit difference, as scikit-learn expects.

        Returns
        -------
        ndarray of float32, shape (n_samples, n_classes) or (n_samples,) for binary problems
        """
        logits = self._decision(X)
        if logits.shape[1] == 2:
            return (logits[:, 1] - logits[:, 0]).numpy()
        return logits.numpy()

    def predict_proba(self, X):
        """Class probabilities (softmax of the logits).

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)

        Returns
        -------
        ndarray of float32, shape (n_samples, n_classes), columns in ``classes_`` order
        """
        return torch.softmax(self._decision(X), dim=1).numpy()

    def predict(self, X):
        """Most probable class label for each row of ``X``; shape (n_samples,)."""
        best = self._decision(X).argmax(dim=1).numpy()  # checks fitted before classes_ is read
        return self.classes_[best]

    def __getstate__(self):
        state = super().__getstate__()  # BaseEstimator adds _sklearn_version
        module = state.get("module_")
        # A pickle taken mid-fit (say, in a callback) sees the module on the GPU;
        # store a CPU copy so it loads on machines without one.
        if module is not None and any(p.device.type != "cpu" for p in module.parameters()):
            state = {**state, "module_": copy.deepcopy(module).cpu()}
        return state


class FNNClassifier(TorchClassifier):
    """Feed-forward network with one hidden layer (ReLU, or sigmoid).

    Parameters
    ----------
    hidden_units : int, default=256
    dropout : float, default=0.0
        Dropout after the hidden layer.
    learning_rate : float, default=1e-3
        Adam step size.
    batch_size : int, default=128
    n_iter : int, default=20
        Number of epochs (the same word as the RBM's).
    weight_decay : float, default=0.0
        Adam's L2 penalty.
    early_stopping : bool, default=False
        Stop when validation accuracy has not improved for ``n_iter_no_change``
        epochs and keep the best epoch's weights.
    validation_fraction : float, default=0.1
        Stratified share of the training data held out when early stopping
        without an ``eval_set``.
    n_iter_no_change : int, default=5
    device : str or torch.device, default="auto"
        "auto" picks cuda, then mps, then cpu.
    precision : {"float32", "bfloat16", "auto"}, default="float32"
        "bfloat16" trains and predicts under bf16 autocast (parameters and Adam
        stay float32), emulated at float32 speed where the hardware has no bf16
        units that beat float32 (``rbmlib._bf16``); "auto" picks it where they do
        (``rbmlib._device.native_bfloat16``: CPUs with AMX or AVX512-BF16 measured
        faster in bf16, CUDA GPUs with bf16 tensor cores).
    verbose : int, default=0
        Print one line per epoch when > 0.
    random_state : int, RandomState or None, default=None
        Seeds initialisation, dropout, shuffling and the validation split.
        The same value gives identical predictions on the same machine (CPU;
        GPU kernels need not be bitwise deterministic).
    callback : callable, default=None
        ``callback(estimator, epoch_record)`` after every epoch; returning True
        stops training after that epoch.
    activation : {"relu", "sigmoid"}, default="relu"
        The hidden layer's nonlinearity. "sigmoid", with ``hidden_units`` equal
        to an RBM's width, is the randomly initialised twin of
        :class:`PretrainedFNNClassifier`: the control for RBM pretraining.

    Notes
    -----
    Fitted attributes (``classes_``, ``module_``, ``history_``, ``n_iter_``,
    ``best_epoch_``, ``best_val_accuracy_``, ``precision_``) are described in ``TorchClassifier``.
    """

    _parameter_constraints: dict = {
        **TorchClassifier._parameter_constraints,
        "hidden_units": [Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
    }

    # activation comes last and keyword-only, so positional calls written before it still work.
    def __init__(self, hidden_units=256, dropout=0.0, learning_rate=1e-3, batch_size=128,
                 n_iter=20, weight_decay=0.0, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=5, device="auto", precision="float32", verbose=0, random_state=None,
                 callback=None, *, activation="relu"):
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.precision = precision
        self.verbose = verbose
        self.random_state = random_state
        self.callback = callback
        self.activation = activation

    def _build_module(self, n_features, n_classes):
        return FNN(n_features, self.hidden_units, n_classes, self.dropout, self.activation)


class PretrainedFNNClassifier(TorchClassifier):
    """The FNN with its hidden layer started at an RBM's weights, then fine-tuned by back-propagation.

    The classic use of RBM pretraining (Hinton & Salakhutdinov 2006): the
    hidden layer is ``activation(X W^T + b_h)`` with W and b_h the RBM's
    ``components_`` and ``intercept_hidden_``, so at the start it computes the
    RBM's features P(h=1|v) (with the sigmoid), and the whole network, that
    layer included, is then trained by Adam exactly as :class:`FNNClassifier`
    trains. One estimator from pixels to labels: it clones, pickles, and tunes
    the RBM through nested parameters (``rbm__n_components``).

    Parameters
    ----------
    rbm : rbmlib.BernoulliRBM or None, default=None
        The RBM that starts the hidden layer, whose width is its
        ``n_components``. Unfitted, a clone of it is fitted on X in ``fit``
        (with its own ``random_state``). Fitted, it is used as it is; wrap it
        in ``sklearn.frozen.FrozenEstimator`` to keep it fitted through
        ``clone`` (which unfits estimator parameters). None: a
        ``BernoulliRBM`` with default parameters and this classifier's
        ``random_state``.
    activation : {"sigmoid", "relu"}, default="sigmoid"
        The hidden layer's nonlinearity; the sigmoid is the RBM's own.
    dropout, learning_rate, batch_size, n_iter, weight_decay, early_stopping, \
validation_fraction, n_iter_no_change, device, precision, verbose, random_state, callback
        As in :class:`FNNClassifier`, with the same defaults; they concern the
        network, not the RBM (set those as ``rbm__<name>``).

    Attributes
    ----------
    rbm_ : rbmlib.BernoulliRBM
        The fitted RBM whose weights started the hidden layer.

    Notes
    -----
    The other fitted attributes (``classes_``, ``module_``, ``history_``, ...)
    are described in ``TorchClassifier``. The RBM is fitted on all of X, before
    ``early_stopping`` holds out its validation rows (as in a ``Pipeline`` of
    RBM and FNN, so the same cached RBMs serve both). The output layer's
    initial weights are the same as those of ``FNNClassifier(hidden_units=H,
    activation=activation)`` with the same ``random_state``: the two networks
    start apart in the hidden layer only.
    """

    _parameter_constraints: dict = {
        **TorchClassifier._parameter_constraints,
        "rbm": [HasMethods(["fit", "transform"]), None],
        "activation": [StrOptions(set(ACTIVATIONS))],
    }

    def __init__(self, rbm=None, *, activation="sigmoid", dropout=0.0, learning_rate=1e-3,
                 batch_size=128, n_iter=20, weight_decay=0.0, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=5, device="auto", precision="float32",
                 verbose=0, random_state=None, callback=None):
        self.rbm = rbm
        self.activation = activation
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.precision = precision
        self.verbose = verbose
        self.random_state = random_state
        self.callback = callback

    # Not skipping nested validation: the RBM's parameters are checked when it fits.
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, *, eval_set=None):
        """Fit the RBM (unless it is fitted), start the hidden layer at it, then train with Adam.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Training inputs, in [0, 1] when the RBM is fitted on them.
        y : array-like of shape (n_samples,)
        eval_set : tuple (X_val, y_val), optional
            As in :meth:`TorchClassifier.fit`; the RBM does not see it.

        Returns
        -------
        self
        """
        X, y = self._validate(X, y, reset=True)  # bad input fails before a long RBM fit
        self.rbm_ = self._fit_rbm(X)
        return super().fit(X, y, eval_set=eval_set)

    def _fit_rbm(self, X):
        """The fitted RBM for X: ``rbm`` itself if fitted, else a fitted clone.

        The one place the RBM is trained, so that a caller can override it
        (e.g. to load the RBM from a cache of earlier fits).
        """
        if self.rbm is None:
            return BernoulliRBM(random_state=self.random_state).fit(X)
        try:
            check_is_fitted(self.rbm)
            return self.rbm
        except NotFittedError:
            return clone(self.rbm).fit(X)

    def _build_module(self, n_features, n_classes):
        W, b_h = self.rbm_.components_, self.rbm_.intercept_hidden_  # (H, V), (H,)
        if W.shape[1] != n_features:
            raise ValueError(f"rbm has {W.shape[1]} visible units but X has {n_features} features.")
        # The hidden layer's default init is drawn and then overwritten, so that the
        # output layer's draw is the one an FNNClassifier of this width would get.
        net = FNN(n_features, W.shape[0], n_classes, self.dropout, self.activation)
        with torch.no_grad():
            net.hidden.weight.copy_(torch.tensor(np.asarray(W)))
            net.hidden.bias.copy_(torch.tensor(np.asarray(b_h)))
        return net


class CNNClassifier(TorchClassifier):
    """The study's CNN on flattened 28x28 images: X must have 784 columns.

    Parameters
    ----------
    filters1, filters2 : int, default=32, 64
        Channels of the two convolution blocks.
    kernel1, kernel2 : int, default=3, 3
        Their kernel sizes (block1 pads by 1, block2 does not).
    dense_units : int, default=600
        Width of the first dense layer.
    dropout : float, default=0.25
        Dropout after the first dense layer.
    learning_rate, batch_size, n_iter, weight_decay, early_stopping, validation_fraction, \
n_iter_no_change, device, precision, verbose, random_state, callback
        As in :class:`FNNClassifier`, with the same defaults.

    Notes
    -----
    Fitted attributes (``classes_``, ``module_``, ``history_``, ``n_iter_``,
    ``best_epoch_``, ``best_val_accuracy_``, ``precision_``) are described in ``TorchClassifier``.
    """

    _parameter_constraints: dict = {
        **TorchClassifier._parameter_constraints,
        **{name: [Interval(Integral, 1, None, closed="left")]
           for name in ("filters1", "filters2", "kernel1", "kernel2", "dense_units")},
    }

    def __init__(self, filters1=32, filters2=64, kernel1=3, kernel2=3, dense_units=600,
                 dropout=0.25, learning_rate=1e-3, batch_size=128, n_iter=20, weight_decay=0.0,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=5,
                 device="auto", precision="float32", verbose=0, random_state=None, callback=None):
        self.filters1 = filters1
        self.filters2 = filters2
        self.kernel1 = kernel1
        self.kernel2 = kernel2
        self.dense_units = dense_units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.precision = precision
        self.verbose = verbose
        self.random_state = random_state
        self.callback = callback

    def _check_n_features(self, n_features):
        if n_features != IMAGE_SIDE * IMAGE_SIDE:
            raise ValueError(
                f"CNNClassifier expects {IMAGE_SIDE}x{IMAGE_SIDE} images flattened to "
                f"{IMAGE_SIDE * IMAGE_SIDE} features; got X with {n_features} features."
            )

    def _build_module(self, n_features, n_classes):
        # channels_last: oneDNN's convolutions and max-pooling are faster in NHWC
        # than in NCHW on the CPU (the input, with one channel, is both at once).
        return CNN(self.filters1, self.filters2, self.kernel1, self.kernel2,
                   self.dense_units, self.dropout, n_classes).to(memory_format=torch.channels_last)

