"""Presets: how much data, how many trials and epochs, which seeds. All in one place.

``smoke``
    Tiny subsets, a few trials, one or two epochs, small RBMs: checks that the
    whole pipeline runs (all five models, tune and evaluate, in minutes).
``paper``
    The report's numbers (protocol 1): full data, trials and epochs fitted to
    a few hours on a 2-core CPU. Its outputs go straight under ``results/``; every other
    preset writes under ``results/<name>/`` (see ``rbmlib.paths.preset_dir``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rbmlib.models import MODEL_NAMES, get_model


@dataclass(frozen=True)
class Preset:
    """Everything about a tuning run that is not a tuned parameter.

    Fields are named after the estimator or Optuna argument they feed
    (``n_iter``, ``n_iter_no_change``, ``random_state``, ``rbm__n_iter``,
    ``n_startup_trials``), so a preset, a study's ``fixed_params`` and MLflow
    use one vocabulary.

    Attributes
    ----------
    name : str
        Also the folder of its outputs, the prefix of its study names and the
        name of its notebook parameters (``notebooks/params/<name>.yml``).
    n_trials : mapping of model name -> int
        Finished (complete or pruned) trials per study.
    train_subset, val_subset, trainval_subset, test_subset : int or None
        Stratified subsets of the splits (None: all of it).
    n_iter : mapping of model name -> int
        Epoch caps of the models with epochs (their classifier's ``n_iter``)
        during tuning. Early stopping usually ends a run sooner; the final
        refit trains for the best trial's best epoch.
    n_iter_no_change : int
        Early stopping: epochs without a better validation accuracy.
    rbm__n_iter : int
        RBM epochs (not tuned: at most a few values would be affordable).
    rbm__n_components : (low, high, step)
        Range of the tuned ``rbm__n_components``.
    refit_random_states : mapping of model name -> tuple of int
        ``random_state`` of each model's final refits, each scored once on the test split.
    sampler_n_startup_trials : int
        ``TPESampler(n_startup_trials=...)``: random trials before TPE models the results.
    pruner_n_startup_trials, pruner_n_warmup_steps : int
        ``MedianPruner(n_startup_trials=..., n_warmup_steps=...)``: no pruning before
        this many trials have finished, nor before this epoch of a trial.
    warm_start_rbms : int
        A model with ``warm_start_from`` in the registry starts with this many of
        that study's best RBMs, already trained (see ``study.warm_start``); 0 turns it off.
    heartbeat_interval : int
        ``RDBStorage(heartbeat_interval=...)``: seconds between heartbeats of a running trial.
    random_state : int
        ``random_state`` of every model trained during tuning.
    """

    name: str
    n_trials: Mapping[str, int]
    train_subset: int | None
    val_subset: int | None
    trainval_subset: int | None
    test_subset: int | None
    n_iter: Mapping[str, int]
    n_iter_no_change: int
    rbm__n_iter: int
    rbm__n_components: tuple[int, int, int]
    refit_random_states: Mapping[str, tuple[int, ...]]
    sampler_n_startup_trials: int
    pruner_n_startup_trials: int
    pruner_n_warmup_steps: int
    warm_start_rbms: int = 2
    heartbeat_interval: int = 60
    random_state: int = 0

    def fixed_params(self, model: str) -> dict:
        """Estimator arguments that the preset fixes for ``model`` during tuning."""
        spec = get_model(model)
        fixed = {"rbm__n_iter": self.rbm__n_iter} if spec.uses_rbm else {}
        if spec.has_epochs:
            p = spec.classifier_prefix
            fixed.update({f"{p}n_iter": self.n_iter.get(model), f"{p}early_stopping": True,
                          f"{p}n_iter_no_change": self.n_iter_no_change})
        return fixed


def _per_model(**values) -> dict:
    """``{"lr": .., "rbm-lr": ..}`` from keyword names with ``_`` for ``-``; all five required."""
    out = {k.replace("_", "-"): v for k, v in values.items()}
    if set(out) != set(MODEL_NAMES):
        raise ValueError(f"need a value for each of {MODEL_NAMES}, got {sorted(out)}")
    return out


SMOKE = Preset(
    name="smoke",
    n_trials=_per_model(lr=3, fnn=3, cnn=2, rbm_lr=3, rbm_fnn=3),
    train_subset=1000,
    val_subset=500,
    trainval_subset=1000,
    test_subset=500,
    n_iter={"fnn": 2, "cnn": 1, "rbm-fnn": 2},
    n_iter_no_change=2,
    rbm__n_iter=2,
    rbm__n_components=(16, 64, 16),
    refit_random_states={m: (0, 1, 2) for m in MODEL_NAMES},
    sampler_n_startup_trials=2,
    pruner_n_startup_trials=1,
    pruner_n_warmup_steps=1,
    heartbeat_interval=10,
)

# Trial budgets and epochs follow the costs measured on a 2-core CPU (tuning minutes per
# model: the paper's appendix, `tbl-pipeline-cost`, from results/summary.csv).
PAPER = Preset(
    name="paper",
    # Unequal, as they were run (the paper's Discussion names it as a limitation).
    n_trials=_per_model(lr=10, fnn=20, cnn=6, rbm_lr=10, rbm_fnn=6),
    train_subset=None,
    val_subset=None,
    trainval_subset=None,
    test_subset=None,
    # Early stopping ends most runs well before these caps (the original ran 40-60 epochs).
    n_iter={"fnn": 40, "cnn": 15, "rbm-fnn": 40},
    n_iter_no_change=5,
    # What the budget allows for RBMs of thousands of units (the original trained 24-33 epochs).
    rbm__n_iter=10,
    # Up to the original's 8192, in steps coarse enough for trials to share cached RBMs.
    rbm__n_components=(2048, 8192, 2048),
    # lbfgs has no randomness, so 3 seeds show that; 5 where a refit is cheap.
    refit_random_states=_per_model(lr=(0, 1, 2), fnn=(0, 1, 2, 3, 4), cnn=(0, 1, 2),
                                   rbm_lr=(0, 1, 2), rbm_fnn=(0, 1, 2)),
    sampler_n_startup_trials=4,
    pruner_n_startup_trials=2,
    pruner_n_warmup_steps=3,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (SMOKE, PAPER)}


def get_preset(preset) -> Preset:
    """A :class:`Preset` from its name (or the preset itself)."""
    if isinstance(preset, Preset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"Unknown preset {preset!r}; valid presets are {', '.join(PRESETS)}.") from None
