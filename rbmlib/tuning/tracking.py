"""MLflow logging of Optuna trials, as a study callback (never from the objective).

``optuna_integration.MLflowCallback`` makes one MLflow run per finished trial in
an experiment named after the study (``paper/rbm-lr``): the trial's params
under their Optuna names (which are the estimator's argument names), the
objective as ``val_accuracy``, and tags for the trial's state, its user
attributes and the study's. :class:`TrialLogger` adds what the stock callback
cannot: ``val_macro_f1`` as a metric, and the per-epoch curves that the
objective keeps in user attributes, as metric steps.

Curves are logged as ``curve/<key>`` (``curve/val_accuracy``,
``curve/rbm__reconstruction_error``, ...) at step = epoch. They do not reuse the
name ``val_accuracy`` because MLflow's run table shows a metric's last step:
the curve's last epoch would hide the trial's result, which is its best epoch.

Runs are written when a trial ends, so a job killed mid-trial leaves no
half-written run behind; the retried trial gets its own run.
"""

from __future__ import annotations

import copy
import time
import warnings
from pathlib import Path

import mlflow
import sqlalchemy.exc
from mlflow.exceptions import MlflowException
from optuna_integration import MLflowCallback

# User attributes that are curves: logged as metric steps, not as (truncated) tags.
_CURVES = {"history": "curve/", "rbm_history": "curve/rbm__"}


class TrialLogger(MLflowCallback):
    """``MLflowCallback`` that also logs macro F1 and the per-epoch curves.

    Parameters
    ----------
    tracking_uri : str
        MLflow tracking URI (``sqlite:///...`` or a server's ``http://...``).
    """

    def __init__(self, tracking_uri: str):
        with warnings.catch_warnings():
            # Deprecated in optuna-integration 4.9 in favour of a future OptunaHub
            # package that is not released yet; it is the supported API of the pinned 5.0.
            warnings.simplefilter("ignore", FutureWarning)
            super().__init__(tracking_uri=tracking_uri, metric_name="val_accuracy",
                             create_experiment=True, tag_study_user_attrs=True)

    def _set_tags(self, trial, study) -> None:
        # MLflowCallback calls this inside the trial's run, after params and metrics:
        # the one hook that sees the whole trial while its run is active.
        for attr, prefix in _CURVES.items():
            for record in trial.user_attrs.get(attr, []):
                values = {f"{prefix}{k}": v for k, v in record.items() if k != "epoch"}
                mlflow.log_metrics(values, step=int(record["epoch"]))
        if "val_macro_f1" in trial.user_attrs:
            mlflow.log_metric("val_macro_f1", trial.user_attrs["val_macro_f1"])
        slim = copy.copy(trial)
        slim.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in _CURVES}
        super()._set_tags(slim, study)


def default_tracking_uri(preset: str) -> str:
    """The preset's embedded MLflow store, ``sqlite:///<results>/mlflow.db``."""
    from rbmlib import paths

    db = paths.mlflow_db(preset)
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


def ensure_experiment(tracking_uri: str, name: str, artifact_dir: Path | None = None) -> None:
    """Create the MLflow experiment ``name`` unless it exists.

    With a local store, artifacts go to ``artifact_dir`` instead of MLflow's
    default ``./mlruns`` relative to wherever the command was started. Several
    workers may start at once on a fresh store: creating the tables or the
    experiment can then race, so a failure is retried after a pause.
    """
    client = mlflow.MlflowClient(tracking_uri)
    for attempt in range(5):
        try:
            if client.get_experiment_by_name(name) is None:
                client.create_experiment(
                    name, artifact_location=artifact_dir.resolve().as_uri() if artifact_dir else None
                )
            return
        # MlflowException, or SQLAlchemy's own errors while two workers create the tables.
        except (MlflowException, sqlalchemy.exc.SQLAlchemyError):
            if attempt == 4:
                raise
            time.sleep(1 + attempt)
