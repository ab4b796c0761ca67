"""Tuning across processes: a worker killed mid-trial, and two workers sharing a study.

The PostgreSQL fixture starts a throwaway server on 127.0.0.1 (initdb into a
temporary folder, pg_ctl on a free port) and stops it afterwards. It needs the
server binaries; ``make test`` installs Debian's ``postgresql`` package for them.
"""

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState
from tuning_helpers import TINY

from rbmlib import paths
from rbmlib.tuning.objective import Splits
from rbmlib.tuning.stores import with_driver
from rbmlib.tuning.study import load_study, tune

pytestmark = pytest.mark.slow  # real data (or servers and processes): seconds each

HELPER = Path(__file__).parents[1] / "tuning_helpers.py"


@pytest.fixture(autouse=True)
def results(tmp_path, monkeypatch, fashion_mnist):
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path / "results" / "cache")
    return tmp_path / "results"


@pytest.fixture(scope="module")
def empty_mlflow_db(tmp_path_factory):
    """An MLflow SQLite store with its tables made (seconds of migrations, done once)."""
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


def _worker(storage, tracking_uri, seed, n_trials, n_workers=1):
    """A `tuning_helpers.py` worker process (lr on the tiny preset)."""
    # The checkout first on the path, as in this process (the package may not be installed).
    pythonpath = os.pathsep.join(filter(None, [str(HELPER.parents[1]), os.environ.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, str(HELPER), storage, tracking_uri, str(seed), str(n_trials),
         str(paths.RESULTS_DIR), str(n_workers)],
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _pg_bin() -> Path | None:
    """Folder of initdb/pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("pg_ctl")
    candidates = ([Path(found).resolve().parent] if found else []) + [
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    return next((d for d in candidates if (d / "initdb").exists() and (d / "pg_ctl").exists()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """URL prefix ``postgresql://postgres@127.0.0.1:PORT/`` of a fresh server with
    databases ``optuna`` and ``mlflow``."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; on Debian/Ubuntu "
                    "`apt-get install postgresql` (make test does this)")
    as_user = []
    datadir = Path(tempfile.mkdtemp(prefix="rbmlib-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root: use the package's system user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        os.chown(datadir, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def pg(*args):
        subprocess.run([*as_user, *map(str, args)], check=True, capture_output=True, timeout=120)

    try:
        pg(bindir / "initdb", "-D", datadir / "db", "-U", "postgres", "--auth=trust", "--no-sync")
        pg(bindir / "pg_ctl", "-D", datadir / "db", "-l", datadir / "server.log", "-w", "start", "-o",
           f"-c listen_addresses=127.0.0.1 -p {port} -k {datadir} -c fsync=off")
    except subprocess.CalledProcessError as exc:
        log = datadir / "server.log"
        shutil.rmtree(datadir, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr.decode()} "
                           f"{log.read_text() if log.exists() else ''}") from exc
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE optuna")
            cur.execute("CREATE DATABASE mlflow")
        conn.close()
        yield f"postgresql://postgres@127.0.0.1:{port}/"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(datadir / "db"), "-m", "fast",
                        "-w", "stop"], capture_output=True, timeout=120)
        shutil.rmtree(datadir, ignore_errors=True)


def test_a_killed_job_loses_no_finished_trial_and_its_running_trial_is_retried(tmp_path, empty_mlflow_db):
    url, tracking_uri = f"sqlite:///{tmp_path / 'killed.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    shutil.copy(empty_mlflow_db, tmp_path / "mlflow.db")
    worker = _worker(url, tracking_uri, seed=0, n_trials=100)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # kill it once two trials are done and a third runs
            time.sleep(0.2)
            try:
                trials = optuna.load_study(study_name="tiny/lr", storage=url).trials
            except Exception:  # the worker is still creating the database or the study
                continue
            states = [t.state for t in trials]
            if states.count(TrialState.COMPLETE) >= 2 and states[-1] == TrialState.RUNNING \
                    and trials[-1].params:
                break
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.wait(timeout=30)
    before = load_study("lr", TINY, storage=url).trials
    done = [t for t in before if t.state == TrialState.COMPLETE]
    stale = [t for t in before if t.state == TrialState.RUNNING]
    assert len(done) >= 2 and len(stale) == 1

    time.sleep(2.5)  # past the grace period: no heartbeat from the dead worker since
    study = tune("lr", TINY, n_trials=len(done) + 1, storage=url, splits=Splits.load(TINY),
                 tracking_uri=tracking_uri, show_progress_bar=False)
    after = {t.number: t for t in study.trials}
    for t in done:  # finished trials are kept as they were
        assert (after[t.number].state, after[t.number].params, after[t.number].value) == (
            t.state, t.params, t.value)
    assert after[stale[0].number].state == TrialState.FAIL
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == stale[0].number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == stale[0].params  # the interrupted trial, run again
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == len(done) + 1


def test_two_workers_share_one_study_and_record_each_trial_once(postgres):
    _two_workers_share_one_study(postgres + "optuna", postgres + "mlflow")


def test_two_workers_share_one_sqlite_study_as_the_chains_of_make_tune_do(tmp_path, empty_mlflow_db):
    """`rbmlib tune --join`: the second worker on a study file of this machine (its MLflow file too)."""
    shutil.copy(empty_mlflow_db, tmp_path / "mlflow.db")
    _two_workers_share_one_study(f"sqlite:///{tmp_path / 'shared.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}")


def _two_workers_share_one_study(url, tracking_uri, target=6):
    # Made once up front, as a first `rbmlib tune` would: the study, the tables.
    load_study("lr", TINY, storage=url)
    mlflow.MlflowClient(with_driver(tracking_uri)).search_experiments()

    workers = [_worker(url, tracking_uri, seed, target, n_workers=2) for seed in (1, 2)]
    ran = []
    for w in workers:
        out, err = w.communicate(timeout=240)
        assert w.returncode == 0, err.decode()[-3000:]
        ran.append(json.loads(out.decode().strip().splitlines()[-1]))

    trials = load_study("lr", TINY, storage=url).trials
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))  # each trial stored once, none lost
    assert all(t.state == TrialState.COMPLETE for t in trials)
    # Each worker stops once the shared target is met; one may still be finishing a trial.
    assert target <= len(trials) <= target + 1
    assert all(ran), f"both workers should have run trials: {ran}"
    assert sorted(ran[0] + ran[1]) == numbers  # split between them, no trial run twice

    client = mlflow.MlflowClient(with_driver(tracking_uri))
    runs = client.search_runs([client.get_experiment_by_name("tiny/lr").experiment_id])
    assert sorted(int(r.info.run_name) for r in runs) == numbers  # one MLflow run per trial
