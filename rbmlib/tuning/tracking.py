"""MLflow logging of Optuna trials, as a study callback (never from the objective).

``optuna_integration.MLflowCallback`` makes one MLflow run per finished trial in
an experiment named after the study (``paper/rbm-lr``): the trial's params
under their Optuna names (which are the estimator's argument names), the
objective as ``val_accuracy``, and tags for the trial's state, its number, its
start time, its user attributes and the study's. :class:`TrialLogger` lets it
write the run, then finds that run by its tags and adds what the stock
callback cannot: ``val_macro_f1`` as a metric, and the per-epoch curves that
the objective keeps in user attributes, as metric steps.

Curves are logged as ``curve/<key>`` (``curve/val_accuracy``,
``curve/rbm__reconstruction_error``, ...) at step = epoch. They do not reuse the
name ``val_accuracy`` because MLflow's run table shows a metric's last step:
the curve's last epoch would hide the trial's result, which is its best epoch.

Runs are written when a trial ends, so a job killed mid-trial leaves no
half-written run behind; the retried trial gets its own run. A job killed
between Optuna's commit of a trial and its run leaves a trial without a run:
:meth:`TrialLogger.log_missing` finds and logs those.

Experiments on a database store get the neutral artifact location
:data:`ARTIFACT_LOCATION`, so that a committed ``mlflow.db`` holds no path of
the machine that made it.

A tracking URI is checked before a study starts (:func:`check_tracking`): its
form, its driver, a damaged SQLite file, a server or database that does not
answer, each fail with a one-line :class:`TrackingError`, using the checks of
``stores.py`` that Optuna's storages go through too.
"""

from __future__ import annotations

import copy
import sqlite3
import time
import urllib.parse
import warnings
from pathlib import Path

import mlflow
import sqlalchemy.exc
from mlflow.entities import Metric
from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT
from mlflow.exceptions import MlflowException
from mlflow.store.db.db_types import DATABASE_ENGINES
from mlflow.utils.mlflow_tags import MLFLOW_SOURCE_NAME
from optuna_integration import MLflowCallback
from sqlalchemy.engine import make_url

from rbmlib._environ import temporary_environ
from rbmlib.tuning.stores import error_reason, retrying, shown, sqlite_damage, url_problem

# User attributes that are curves: logged as metric steps, not as (truncated) tags.
_CURVES = {"history": "curve/", "rbm_history": "curve/rbm__"}

#: Seconds the probe of a tracking server may take, with no retry (MLflow's own
#: defaults, 120 s a request and 7 retries with backoff, stay silent for minutes
#: when no server listens); also a tracking database's connection timeout.
PROBE_TIMEOUT_S = 5

#: Artifact location of the experiments made here on a database store: MLflow's
#: proxied-artifact scheme, which ``mlflow server``/``mlflow ui`` on that store
#: serve from their ``--artifacts-destination`` (``./mlartifacts``). The runs log
#: no artifacts; the point is that the store names no folder of this machine.
ARTIFACT_LOCATION = "mlflow-artifacts:/"

#: The tracking URIs the project supports, as error messages spell them.
TRACKING_FORMS = "http://host:port (an MLflow server) or sqlite:///path/mlflow.db"

# MLflow's limit on the metrics of one log_batch call.
_BATCH = 1000


class TrackingError(RuntimeError):
    """An MLflow tracking store that cannot be used, with a one-line message for the user."""


def is_server(tracking_uri: str) -> bool:
    """Whether ``tracking_uri`` is a tracking server (``http://``, ``https://``)."""
    return urllib.parse.urlparse(tracking_uri).scheme in ("http", "https")


def is_database(tracking_uri: str) -> bool:
    """Whether ``tracking_uri`` is a SQL store (``sqlite:///...``, ``postgresql+psycopg2://...``)."""
    return urllib.parse.urlparse(tracking_uri).scheme.split("+")[0] in DATABASE_ENGINES


def check_tracking(tracking_uri: str) -> None:
    """Fail in seconds, with one line, if ``tracking_uri`` cannot be used.

    It must be a server (``http://``, ``https://``) or a database store whose
    driver is installed. A server must answer within :data:`PROBE_TIMEOUT_S`:
    one cheap request (list one experiment), with MLflow's HTTP timeout and
    retries set for it alone through the environment variables it reads. A
    database must be sound (:func:`_check_database`).

    Raises
    ------
    TrackingError
    """
    if not is_server(tracking_uri):
        problem = (url_problem(tracking_uri) if is_database(tracking_uri)
                   else f"{tracking_uri!r} is neither a tracking server nor a database")
        if problem:
            raise TrackingError(f"{problem}; use {TRACKING_FORMS}")
        _check_database(tracking_uri)
        return
    probe = {MLFLOW_HTTP_REQUEST_TIMEOUT.name: PROBE_TIMEOUT_S, MLFLOW_HTTP_REQUEST_MAX_RETRIES.name: 0}
    with temporary_environ(probe):
        try:
            mlflow.MlflowClient(tracking_uri).search_experiments(max_results=1)
        except MlflowException as exc:
            raise TrackingError(
                f"cannot reach the MLflow tracking server at {shown(tracking_uri)} ({error_reason(exc)}); "
                "start it (mlflow server --host HOST --port PORT), or leave the tracking URI out "
                "to log to the preset's mlflow.db"
            ) from None


def _check_database(tracking_uri: str) -> None:
    """A SQLite store must not be damaged; a database server must accept a connection.

    MLflow's SQL stores retry a failed connection 10 times over about 100 s,
    logging a paragraph each time, with no setting to change that; so the
    connection is tried here first, with announced retries (:func:`retrying`).
    """
    parsed = make_url(tracking_uri)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            return
        path = Path(parsed.database)
        try:
            reason = sqlite_damage(path)
        except sqlite3.OperationalError as exc:
            raise TrackingError(f"cannot open the MLflow store {path}: {exc}") from None
        if reason:
            raise TrackingError(
                f"this MLflow store is damaged: {path} ({reason}); move it away and tune again "
                "(its runs are lost; the trials, kept in the studies, are logged again)")
        return
    connect_args = {"connect_timeout": PROBE_TIMEOUT_S} if parsed.get_driver_name() == "psycopg2" else {}
    engine = sqlalchemy.create_engine(parsed, connect_args=connect_args)
    try:
        retrying(lambda: engine.connect().close(), (sqlalchemy.exc.OperationalError,),
                 lambda exc: f"cannot connect to the MLflow store {shown(tracking_uri)}: {error_reason(exc)}",
                 TrackingError)
    finally:
        engine.dispose()


def default_tracking_uri(preset: str) -> str:
    """The preset's embedded MLflow store, ``sqlite:///<results>/mlflow.db``."""
    from rbmlib import paths

    db = paths.mlflow_db(preset)
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


def ensure_experiment(tracking_uri: str, name: str) -> None:
    """Create the MLflow experiment ``name`` unless it exists.

    Check the URI with :func:`check_tracking` first: with MLflow's defaults, a
    server that does not answer keeps this waiting for minutes. A database
    store is made with :data:`ARTIFACT_LOCATION` as its root, so that even
    MLflow's "Default" experiment, created with the tables, names no local
    folder; so is the experiment. Several workers may start at once on a fresh
    store: creating the tables or the experiment can then race, so a failure
    is retried (:func:`retrying`).

    Raises
    ------
    TrackingError
        The store cannot be opened.
    """
    location = ARTIFACT_LOCATION if is_database(tracking_uri) else None

    def create():
        if location:
            # The client's own store would root MLflow's "Default" experiment at
            # ./mlruns, made absolute; this store makes the tables first.
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            SqlAlchemyStore(tracking_uri, location)
        client = mlflow.MlflowClient(tracking_uri)
        if client.get_experiment_by_name(name) is None:
            client.create_experiment(name, artifact_location=location)

    # MlflowException, or SQLAlchemy's own errors while two workers create the tables.
    retrying(create, (MlflowException, sqlalchemy.exc.SQLAlchemyError),
             lambda exc: f"cannot open the MLflow store {shown(tracking_uri)}: {error_reason(exc)}",
             TrackingError)


def _trial_key(trial) -> tuple[str, str]:
    """What identifies a trial's run among the experiment's: its number and start time.

    The number alone would not do: a study tuned afresh numbers from 0 again,
    in the same experiment.
    """
    return str(trial.number), str(trial.datetime_start)


def _run_key(run) -> tuple[str | None, str | None]:
    """:func:`_trial_key` of the trial a run logs, from the tags ``MLflowCallback`` sets."""
    return run.data.tags.get("number"), run.data.tags.get("datetime_start")


def _without_curves(trial):
    """A copy of ``trial`` whose user attributes (which become tags) leave out the curves."""
    slim = copy.copy(trial)
    slim.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in _CURVES}
    return slim


def _extra_metrics(trial) -> list[Metric]:
    """``val_macro_f1`` (step 0), and each curve record as ``curve/<key>`` at step = epoch."""
    now = int(time.time() * 1000)
    metrics = []
    if "val_macro_f1" in trial.user_attrs:
        metrics.append(Metric("val_macro_f1", float(trial.user_attrs["val_macro_f1"]), now, 0))
    for attr, prefix in _CURVES.items():
        for record in trial.user_attrs.get(attr, []):
            step = int(record["epoch"])
            metrics += [Metric(f"{prefix}{k}", float(v), now, step)
                        for k, v in record.items() if k != "epoch"]
    return metrics


class TrialLogger:
    """Study callback: one MLflow run per finished trial, with macro F1 and the per-epoch curves.

    ``optuna_integration.MLflowCallback`` writes the run (params, objective,
    tags); the extra metrics are then added to that run through
    ``MlflowClient.log_batch``. Pass it to ``study.optimize(callbacks=[...])``.

    Parameters
    ----------
    tracking_uri : str
        MLflow tracking URI (``sqlite:///...`` or a server's ``http://...``).
    """

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri
        self.client = mlflow.MlflowClient(tracking_uri)
        with warnings.catch_warnings():
            # Deprecated in optuna-integration 4.9 in favour of a future OptunaHub
            # package that is not released yet; it is the supported API of the pinned 5.0.
            warnings.simplefilter("ignore", FutureWarning)
            self._callback = MLflowCallback(
                tracking_uri=tracking_uri, metric_name="val_accuracy", create_experiment=True,
                tag_study_user_attrs=True,
                # MLflow's default is the script's path (sys.argv[0]): a folder of this machine.
                mlflow_kwargs={"tags": {MLFLOW_SOURCE_NAME: "rbmlib"}})

    def __call__(self, study, trial) -> None:
        self._callback(study, _without_curves(trial))
        runs = [r for r in self.runs(study, trial.number) if _run_key(r) == _trial_key(trial)]
        if not runs:  # cannot happen unless the callback changes how it tags runs
            raise TrackingError(f"the MLflow run of trial {trial.number} of {study.study_name!r} "
                                f"was not found by its tags in {shown(self.tracking_uri)}")
        run_id = max(runs, key=lambda r: r.info.start_time).info.run_id
        metrics = _extra_metrics(trial)
        for start in range(0, len(metrics), _BATCH):
            self.client.log_batch(run_id, metrics=metrics[start:start + _BATCH])

    def runs(self, study, number: int | None = None) -> list:
        """The active runs of ``study``'s experiment (of trial ``number`` only, if given)."""
        experiment = self.client.get_experiment_by_name(study.study_name)
        if experiment is None:
            return []
        query = "" if number is None else f"tags.number = '{number}'"
        runs, token = [], None
        while True:
            page = self.client.search_runs([experiment.experiment_id], query, max_results=1000,
                                           page_token=token)
            runs += page
            token = page.token
            if not token:
                return runs

    def log_missing(self, study, trials) -> list[int]:
        """Log those of ``trials`` that have no run in the experiment yet.

        Returns
        -------
        list of int
            The numbers of the trials logged now.
        """
        logged = {_run_key(r) for r in self.runs(study)}
        missing = [t for t in trials if _trial_key(t) not in logged]
        for trial in missing:
            self(study, trial)
        return [t.number for t in missing]
