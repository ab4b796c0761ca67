"""What a user meets when something is wrong: storage and tracking URIs that do not
work, a damaged study file, a run lost between Optuna and MLflow, machine paths in
the committed MLflow store, and the command line's help and one-line errors.

Each test reproduces the situation for real: a URL SQLAlchemy cannot use, port 1
on 127.0.0.1 (nothing listens there), a socket that never answers, a study file
with its bytes overwritten. None needs a server.
"""

import ast
import contextlib
import hashlib
import inspect
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from tuning_helpers import TINY

from rbmlib import paths
from rbmlib.cli import main
from rbmlib.tuning import study as study_module
from rbmlib.tuning import stores, tracking
from rbmlib.tuning.objective import Splits
from rbmlib.tuning.stores import StorageError
from rbmlib.tuning.study import load_study, tune
from rbmlib.tuning.tracking import TrialLogger, ensure_experiment

pytestmark = pytest.mark.usefixtures("tuning_results")

ROOT = Path(__file__).parents[2]
#: The committed store, located before the fixture below points RESULTS_DIR elsewhere.
COMMITTED_MLFLOW_DB = paths.mlflow_db("paper")
#: What a machine's folders start with; none may be written into a store.
MACHINE_PATHS = ("/work/", "/root/", "/home/", "/tmp/")
FORMS = ("sqlite:///path.db", "postgresql://user@host:port/db")




def _error_line(err: str, command: str) -> str:
    """The one line of stderr ``err`` in which ``command`` reports its failure (Optuna may log others)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"rbmlib {command}:")]
    assert len(lines) == 1, err
    return lines[0]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# 1. Storage URLs that are not usable


@pytest.mark.parametrize("url", ["notaurl", "mysql://u@h/db"])
@pytest.mark.parametrize("command", [["tune", "--model", "lr"], ["evaluate", "--model", "lr"], ["summary"]])
def test_an_unusable_storage_url_is_one_line_naming_the_forms_that_work(command, url, capsys):
    assert main([*command, "--preset", "smoke", "--storage", url]) == 1
    line = _error_line(capsys.readouterr().err, command[0])
    assert url in line and all(form in line for form in FORMS)
    if url.startswith("mysql"):
        assert "driver is not installed" in line and "MySQLdb" in line


def test_a_storage_url_is_checked_before_anything_connects():
    with pytest.raises(StorageError, match="SQLAlchemy knows no database 'foo'"):
        stores.open_storage("foo://x")
    with pytest.raises(StorageError, match="no folder"):
        stores.open_storage("sqlite:///no/such/folder/study.db")
    with pytest.raises(StorageError, match=r"postgresql\+psycopg://u:\*\*\*@h/db.*not installed"):
        stores.open_storage("postgresql+psycopg://u:secret@h/db")  # the password is not shown


# 2. A database server that does not answer


def test_an_unreachable_server_is_retried_with_a_notice_each_time_then_one_line(capsys, monkeypatch):
    assert sum(stores.RETRY_PAUSES) < 10  # what a user waits for, at most, before the message
    monkeypatch.setattr(stores, "RETRY_PAUSES", (0.2, 0.3))
    start = time.perf_counter()
    assert main(["tune", "--model", "lr", "--preset", "smoke",
                 "--storage", "postgresql://nobody@127.0.0.1:1/x"]) == 1
    elapsed = time.perf_counter() - start
    assert 0.5 <= elapsed < 10
    err = capsys.readouterr().err
    retries = [line for line in err.splitlines() if "retrying in" in line]
    assert len(retries) == 2 and all(
        r.startswith("rbmlib: cannot connect to postgresql://nobody@127.0.0.1:1/x: ") for r in retries)
    line = _error_line(err, "tune")
    assert line.startswith("rbmlib tune: cannot connect to postgresql://nobody@127.0.0.1:1/x: ")
    assert "Connection refused" in line


# 3. A tracking server that does not answer


def test_an_unreachable_tracking_server_fails_at_once_with_one_line(capsys):
    environment = dict(os.environ)
    start = time.perf_counter()
    assert main(["tune", "--model", "lr", "--preset", "smoke", "--tracking-uri", "http://127.0.0.1:1"]) == 1
    assert time.perf_counter() - start < tracking.PROBE_TIMEOUT_S + 5
    line = _error_line(capsys.readouterr().err, "tune")
    assert "cannot reach the MLflow tracking server at http://127.0.0.1:1" in line
    assert "Connection refused" in line and "mlflow server" in line
    assert dict(os.environ) == environment  # the probe's timeout and retries were for it alone
    assert not paths.study_db("smoke", "lr").exists()  # checked before the study is made


@pytest.mark.parametrize("uri", ["notaurl", "mysql://u@h/db"])
def test_an_unusable_tracking_uri_is_one_line_naming_the_forms_that_work(uri, capsys):
    assert main(["tune", "--model", "lr", "--preset", "smoke", "--tracking-uri", uri]) == 1
    line = _error_line(capsys.readouterr().err, "tune")
    assert uri in line and "http://host:port" in line and "sqlite:///" in line


def test_an_unreachable_tracking_database_is_retried_with_a_notice_then_one_line(capsys, monkeypatch):
    # MLflow's own SQL store would retry for about 100 s, logging a paragraph each time.
    monkeypatch.setattr(stores, "RETRY_PAUSES", (0.2,))
    start = time.perf_counter()
    assert main(["tune", "--model", "lr", "--preset", "smoke",
                 "--tracking-uri", "postgresql://nobody@127.0.0.1:1/mlflow"]) == 1
    assert time.perf_counter() - start < 10
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if "retrying in 0.2 s" in line]) == 1
    line = _error_line(err, "tune")
    assert "cannot connect to the MLflow store postgresql" in line and "Connection refused" in line
    assert "Operation will be retried" not in err


def test_a_damaged_mlflow_store_is_named_in_one_line_and_left_as_it_is(capsys):
    store = paths.mlflow_db("smoke")
    _garbage_header(store)
    before = _sha256(store)
    assert main(["tune", "--model", "lr", "--preset", "smoke"]) == 1
    line = _error_line(capsys.readouterr().err, "tune")
    assert line.startswith(f"rbmlib tune: this MLflow store is damaged: {store} (file is not a database)")
    assert _sha256(store) == before


def test_a_tracking_server_that_never_answers_times_out(monkeypatch):
    monkeypatch.setattr(tracking, "PROBE_TIMEOUT_S", 1)
    with socket.socket() as silent:  # accepts connections (the kernel does), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.perf_counter()
        with pytest.raises(tracking.TrackingError, match=f"cannot reach the MLflow tracking server at {uri}"):
            tune("lr", TINY, tracking_uri=uri, show_progress_bar=False)
        assert time.perf_counter() - start < 10


# 4. A damaged study file


def _study_file(n_trials: int = 30) -> Path:
    """A real study file of the smoke preset's ``lr``, with ``n_trials`` finished trials and their curves."""
    study = load_study("lr", "smoke")
    curve = [{"epoch": e, "val_accuracy": 0.5, "loss": 1.0} for e in range(1, 40)]
    for _ in range(n_trials):
        study.add_trial(optuna.trial.create_trial(
            params={"clf__C": 1.0}, distributions={"clf__C": FloatDistribution(1e-3, 1e2, log=True)},
            value=0.5, user_attrs={"history": curve}))
    return paths.study_db("smoke", "lr")


def _garbage_header(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(b"this is not SQLite" * 4)


def _corrupt_middle_page(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        page = db.execute("PRAGMA page_size").fetchone()[0]
    n_pages = path.stat().st_size // page
    with open(path, "r+b") as f:
        f.seek(page * (n_pages // 2))
        f.write(b"\xff" * page)


@pytest.mark.parametrize("damage", [_garbage_header, _corrupt_middle_page])
def test_a_damaged_study_file_is_named_in_one_line_and_left_as_it_is(damage, capsys):
    path = _study_file()
    damage(path)
    before = _sha256(path)
    for command in (["tune", "--model", "lr"], ["evaluate", "--model", "lr"], ["summary"]):
        assert main([*command, "--preset", "smoke"]) == 1
        line = _error_line(capsys.readouterr().err, command[0])
        assert line.startswith(f"rbmlib {command[0]}: this study file is damaged: {path} (")
        assert line.endswith("); move it away and tune again (finished trials are lost)")
    assert _sha256(path) == before


def test_a_sound_study_file_passes_the_check():
    path = _study_file()
    stores.check_study_file(path)  # raises if SQLite finds a problem
    assert len(load_study("lr", "smoke").trials) == 30


# 5. and 6. MLflow runs: one per finished trial, extra metrics through public APIs


def _runs_by_trial(experiment: str) -> dict[int, list]:
    client = mlflow.MlflowClient(f"sqlite:///{paths.mlflow_db(TINY.name)}")
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    by_trial = {}
    for run in runs:
        by_trial.setdefault(int(run.data.tags["number"]), []).append(run)
    return by_trial


@pytest.mark.slow  # trains (tiny) models on real data
def test_finished_trials_that_mlflow_lacks_are_logged_when_tuning_resumes(monkeypatch, capsys, fashion_mnist):
    splits = Splits.load(TINY)
    log = TrialLogger.__call__
    # As if killed between Optuna's commit of trial 1 and its MLflow run.
    monkeypatch.setattr(TrialLogger, "__call__",
                        lambda self, study, trial: None if trial.number == 1 else log(self, study, trial))
    tune("lr", TINY, n_trials=2, splits=splits, show_progress_bar=False)
    monkeypatch.setattr(TrialLogger, "__call__", log)
    assert sorted(_runs_by_trial("tiny/lr")) == [0]

    # Trial 1 finished moments ago: its worker might still be logging it.
    tune("lr", TINY, n_trials=2, splits=splits, show_progress_bar=False)
    assert sorted(_runs_by_trial("tiny/lr")) == [0]

    monkeypatch.setattr(study_module, "UNLOGGED_AFTER_S", 0)
    capsys.readouterr()
    study = tune("lr", TINY, n_trials=2, splits=splits, show_progress_bar=False)  # nothing to run
    assert "logged 1 finished trial(s) of tiny/lr that MLflow lacked: 1" in capsys.readouterr().err
    # A run deleted from MLflow is logged again too, while the study goes on.
    client = mlflow.MlflowClient(f"sqlite:///{paths.mlflow_db(TINY.name)}")
    client.delete_run(_runs_by_trial("tiny/lr")[0][0].info.run_id)
    study = tune("lr", TINY, n_trials=3, splits=splits, show_progress_bar=False)

    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    runs = _runs_by_trial("tiny/lr")
    assert sorted(runs) == [t.number for t in finished] == [0, 1, 2]
    for trial in finished:
        assert len(runs[trial.number]) == 1
        run = runs[trial.number][0]
        assert run.data.metrics["val_accuracy"] == pytest.approx(trial.value)
        assert run.data.metrics["val_macro_f1"] == pytest.approx(trial.user_attrs["val_macro_f1"])
        assert run.data.tags["datetime_start"] == str(trial.datetime_start)

    # A damaged MLflow store moved away, as its error message says: every trial is logged again.
    paths.mlflow_db(TINY.name).unlink()
    tune("lr", TINY, n_trials=3, splits=splits, show_progress_bar=False)
    assert {n: len(r) for n, r in _runs_by_trial("tiny/lr").items()} == {0: 1, 1: 1, 2: 1}


def test_curves_are_metric_steps_not_tags_and_long_curves_are_logged_whole():
    uri = f"sqlite:///{paths.mlflow_db(TINY.name)}"
    study = optuna.create_study(study_name="tiny/curves", direction="maximize")
    epochs = range(1, 601)  # 1,200 curve points: more than one log_batch call takes
    study.add_trial(optuna.trial.create_trial(
        params={"clf__C": 1.0}, distributions={"clf__C": FloatDistribution(1e-3, 1e2, log=True)},
        value=0.75, user_attrs={"val_macro_f1": 0.7, "worker": "host:1",
                                "history": [{"epoch": e, "val_accuracy": e / 1000, "loss": 1 / e}
                                            for e in epochs],
                                "rbm_history": [{"epoch": 1, "reconstruction_error": 3.0}]}))
    ensure_experiment(uri, study.study_name)
    TrialLogger(uri)(study, study.trials[0])

    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tiny/curves").experiment_id])
    assert run.data.metrics["val_accuracy"] == 0.75 and run.data.metrics["val_macro_f1"] == 0.7
    curve = client.get_metric_history(run.info.run_id, "curve/val_accuracy")
    assert sorted(m.step for m in curve) == list(epochs)
    assert len(client.get_metric_history(run.info.run_id, "curve/loss")) == 600
    rbm_curve = client.get_metric_history(run.info.run_id, "curve/rbm__reconstruction_error")
    assert [m.step for m in rbm_curve] == [1]
    assert run.data.tags["worker"] == "host:1" and run.data.tags["number"] == "0"
    assert not {"history", "rbm_history"} & set(run.data.tags)
    assert "_set_tags" not in vars(TrialLogger)  # the stock callback's private hook is left alone


# 7. No machine path in the stores


def _machine_paths(db: Path) -> list[tuple[str, str, str]]:
    """(table, column, value) of every text value in ``db`` that holds a machine's folder."""
    found = []
    with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as con:
        tables = [row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in [row[1] for row in con.execute(f'PRAGMA table_info("{table}")')]:
                query = f"SELECT \"{column}\" FROM \"{table}\" WHERE typeof(\"{column}\") = 'text'"
                for (value,) in con.execute(query):
                    if any(p in value for p in MACHINE_PATHS):
                        found.append((table, column, value))
    return found


@pytest.mark.slow  # trains a (tiny) model on real data
def test_a_fresh_mlflow_store_holds_no_machine_path(tmp_path, fashion_mnist):
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    tune("lr", TINY, n_trials=1, tracking_uri=uri, splits=Splits.load(TINY), show_progress_bar=False)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny/lr")
    assert experiment.artifact_location == tracking.ARTIFACT_LOCATION
    assert len(client.search_runs([experiment.experiment_id])) == 1
    assert _machine_paths(tmp_path / "fresh.db") == []  # the Default experiment included


def test_the_committed_mlflow_store_holds_no_machine_path():
    if not COMMITTED_MLFLOW_DB.exists():
        pytest.skip(f"{COMMITTED_MLFLOW_DB} is not in this checkout")
    assert _machine_paths(COMMITTED_MLFLOW_DB) == []


# 8. No test switches in the API: tests replace the named factories


def test_the_sampler_and_pruner_come_from_their_named_functions(monkeypatch):
    for function in (load_study, tune):
        assert not {"sampler", "pruner"} & set(inspect.signature(function).parameters)
    sampler, pruner = optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner()
    monkeypatch.setattr(study_module, "make_sampler", lambda preset, seed, n: sampler)
    monkeypatch.setattr(study_module, "make_pruner", lambda preset, model=None: pruner)
    study = load_study("lr", TINY)
    assert study.sampler is sampler and study.pruner is pruner


def test_a_resumed_sampler_is_seeded_apart_from_the_first():
    first = study_module.make_sampler(TINY, seed=0, n_trials_so_far=0)
    resumed = study_module.make_sampler(TINY, seed=0, n_trials_so_far=3)
    draw = [optuna.create_study(sampler=s).ask().suggest_float("x", 0, 1) for s in (first, resumed)]
    assert draw[0] != draw[1]


# 9. and 10. The command line


def _python(args):
    """``python ARGS`` in a fresh process, from the checkout (the package may not be installed)."""
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": pythonpath}, timeout=60)


def test_help_is_quick_imports_no_heavy_library_and_keeps_examples_on_their_own_lines():
    start = time.perf_counter()
    done = _python(["-m", "rbmlib", "--help"])
    assert time.perf_counter() - start < 3 and done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for example in ("rbmlib tune --model", "rbmlib evaluate --preset", "rbmlib summary --preset"):
        assert any(line.strip().startswith(example) for line in lines), done.stdout

    probe = _python(["-c", (
        "import sys, contextlib, io\n"
        "import rbmlib.cli\n"
        "for argv in (['--help'], ['tune', '--help'], ['evaluate', '--help'], ['summary', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "        try:\n"
        "            rbmlib.cli.main(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "    print(repr(out.getvalue()))\n"
        "print([m for m in ('torch', 'optuna', 'mlflow', 'sqlalchemy') if m in sys.modules])\n")])
    assert probe.returncode == 0, probe.stderr
    *helps, imported = probe.stdout.splitlines()
    assert imported == "[]"
    for command, text in zip(("tune", "evaluate", "summary"), map(ast.literal_eval, helps[1:])):
        assert any(line.startswith(f"  rbmlib {command} --") for line in text.splitlines()), text


def test_a_missing_study_is_one_line(capsys):
    assert main(["evaluate", "--model", "lr", "--preset", "smoke"]) == 1
    assert "No study 'smoke/lr'" in _error_line(capsys.readouterr().err, "evaluate")


def test_a_study_tuned_under_another_setup_is_one_line(capsys):
    load_study("lr", "smoke").set_user_attr("fixed_params", {"max_iter": -1})
    assert main(["tune", "--model", "lr", "--preset", "smoke", "--n-trials", "0"]) == 1
    assert "was tuned under another set-up (fixed_params was" in _error_line(capsys.readouterr().err, "tune")


def test_an_unexpected_error_keeps_its_traceback(monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug, not the user's")

    monkeypatch.setattr(study_module, "load_study", broken)
    with pytest.raises(ZeroDivisionError):
        main(["tune", "--model", "lr", "--preset", "smoke"])
