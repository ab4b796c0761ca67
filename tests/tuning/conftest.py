"""Fixtures of the tuning tests: outputs in a temporary folder, with MLflow stores made once."""

from __future__ import annotations

import shutil

import pytest
from tuning_helpers import TINY

from rbmlib import paths
from rbmlib.tuning.tracking import ensure_experiment


@pytest.fixture(scope="session")
def fresh_mlflow_db(tmp_path_factory):
    """An MLflow store made as `tune` makes one (its migrations take seconds: done once)."""
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    ensure_experiment(f"sqlite:///{db}", "made-first")
    return db


@pytest.fixture
def tuning_results(tmp_path, monkeypatch, fresh_mlflow_db):
    """Every output (studies, MLflow, cache, CSVs) goes to a temporary folder, with a ready MLflow
    store for the tiny and smoke presets; use it with ``pytest.mark.usefixtures``."""
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path / "results" / "cache")
    for preset in (TINY.name, "smoke"):
        paths.mlflow_db(preset).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(fresh_mlflow_db, paths.mlflow_db(preset))
    return tmp_path / "results"
