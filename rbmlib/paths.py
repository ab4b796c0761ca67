"""Every path the project uses, in one place.

Notebooks, scripts and tests import from here instead of writing ``../``.
The project root is the folder that holds ``pyproject.toml``; set
``RBMLIB_ROOT`` to point an installed copy of the package at another checkout.
"""

from __future__ import annotations

import os
from pathlib import Path


def _find_root() -> Path:
    env = os.environ.get("RBMLIB_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    # An installed (non-editable) package: fall back to the working directory.
    return Path.cwd().resolve()


ROOT = _find_root()
#: Where Fashion-MNIST is cached (torchvision's ``root``); ``RBMLIB_DATA_DIR`` overrides it.
DATA_DIR = Path(os.environ.get("RBMLIB_DATA_DIR", ROOT / "data")).expanduser()
#: Debian's ``dataset-fashion-mnist`` package installs the gzip IDX files here.
DEBIAN_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
RESULTS_DIR = ROOT / "results"
NOTEBOOKS_DIR = ROOT / "notebooks"
#: Parameters of the notebooks for each preset: ``<name>.yml`` (paper, smoke).
NOTEBOOK_PARAMS_DIR = NOTEBOOKS_DIR / "params"
#: The preset whose results and executed notebooks the manuscript shows.
RENDERED_PRESET = "paper"
#: Executed copies of the notebooks at the rendered preset: what the manuscript embeds (committed).
EXECUTED_DIR = NOTEBOOKS_DIR / "executed"
BENCHMARKS_DIR = RESULTS_DIR / "benchmarks"

# Tuning (rbmlib.tuning). One layout for every preset: the "paper" preset writes
# straight under results/ (the report reads results/summary.csv), any other preset
# under results/<preset>/, so a smoke run never overwrites the paper's numbers.
#: Trained RBM parameters, shared by presets: their keys hash the training data too.
CACHE_DIR = RESULTS_DIR / "cache"


def executed_dir(preset: str) -> Path:
    """Executed copies of the notebooks: ``notebooks/executed/`` for :data:`RENDERED_PRESET` (what the
    manuscript embeds; committed), else ``notebooks/executed-<preset>/`` (not embedded)."""
    return EXECUTED_DIR if preset == RENDERED_PRESET else NOTEBOOKS_DIR / f"executed-{preset}"


def preset_dir(preset: str) -> Path:
    """Folder of a tuning preset's outputs: ``results/`` for "paper", else ``results/<preset>/``."""
    return RESULTS_DIR if preset == "paper" else RESULTS_DIR / preset


def study_db(preset: str, model: str) -> Path:
    """SQLite file of one model's Optuna study (one per model, so that studies run side by side)."""
    return preset_dir(preset) / "studies" / f"{model}.db"


def mlflow_db(preset: str) -> Path:
    """SQLite file of the preset's MLflow tracking store."""
    return preset_dir(preset) / "mlflow.db"


def summary_csv(preset: str) -> Path:
    """One row per model: best validation score and the test scores over seeds."""
    return preset_dir(preset) / "summary.csv"


def evaluation_csv(preset: str) -> Path:
    """One row per (model, seed) of the final evaluation, appended as each finishes."""
    return preset_dir(preset) / "evaluation.csv"


def few_labels_csv(preset: str) -> Path:
    """One row per (features, labels per class, seed) of the few-labels study (``tuning.few_labels``)."""
    return preset_dir(preset) / "few_labels.csv"


def few_labels_predictions_file(preset: str, model: str, labels_per_class: int, seed: int) -> Path:
    """Test-set predictions of one few-labels fit (int8 labels, in test-split order), beside the refits'."""
    return preset_dir(preset) / "predictions" / f"few-labels-{model}-n{labels_per_class}-seed{seed}.npy"


def test_ledger(preset: str) -> Path:
    """Every look at the test split under the preset, one row each (append-only; see ``tuning.ledger``)."""
    return preset_dir(preset) / "test_ledger.csv"


def predictions_file(preset: str, model: str, trial_number: int, seed: int) -> Path:
    """Test-set predictions of one final refit (int8 labels, in test-split order).

    Named after the best trial too, so a study that found a new best never
    shows the old refit's predictions.
    """
    return preset_dir(preset) / "predictions" / f"{model}-trial{trial_number}-seed{seed}.npy"


def claim_file(preset: str, model: str, worker: int = 0) -> Path:
    """Lock file that ``--skip-busy`` holds while one process tunes or evaluates a model
    (``tuning.claim``), or joins its study as worker 1 (``--join``); under the cache, as it
    means nothing beyond this machine."""
    return CACHE_DIR / "claims" / (f"{preset}-{model}.lock" if not worker else f"{preset}-{model}.worker{worker}.lock")
