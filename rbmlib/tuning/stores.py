"""Opening the databases that hold studies and runs: checked first, retried aloud, one line when it fails.

A study storage is opened in one place, :func:`open_storage`: a URL that is not
one, a driver that is not installed, a server that does not answer (after a
few announced retries, :data:`RETRY_PAUSES`) and a damaged SQLite file all
raise :class:`StorageError`, whose message is one line for the user. The
MLflow side (``tracking.py``) checks its stores with the same pieces
(:func:`url_problem`, :func:`sqlite_damage`, :func:`retrying`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import time
import urllib.parse
import warnings
from pathlib import Path

import optuna
import sqlalchemy.exc
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy.engine import make_url

#: Pauses (seconds) before the second, third, ... attempt to open a store (Optuna's
#: or MLflow's). A server may be restarting, and workers starting together on a
#: fresh database race to create its tables; a failure that outlasts these is
#: not transient, and the user should hear so.
RETRY_PAUSES = (1, 2, 4)

#: The storage URLs the project supports, as error messages spell them.
URL_FORMS = "sqlite:///path.db or postgresql://user@host:port/db"

#: Seconds a PostgreSQL connection attempt may take; libpq's default is to wait
#: as long as the operating system does (minutes, for a host that drops packets).
CONNECT_TIMEOUT_S = 10

class StorageError(RuntimeError):
    """A study storage that cannot be used as given; the message is one line for the user.

    Raised for a URL that is not one, a database driver that is not
    installed, a server that cannot be reached, and a damaged study file.
    """


def error_reason(exc: BaseException) -> str:
    """The first line of the innermost cause of ``exc``: what actually went wrong.

    SQLAlchemy, requests and MLflow each wrap the driver's or the socket's error
    in a paragraph of their own; the innermost says, e.g., "Connection refused".
    """
    for _ in range(20):  # a chain is short; a cycle must not hang us
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def shown(url: str) -> str:
    """``url`` as messages show it: with its password, if any, replaced by ``***``."""
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL at all: nothing to hide
        return url
    if password is None:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def url_problem(url: str) -> str | None:
    """What keeps SQLAlchemy from using the database URL ``url`` (found without connecting), or None."""
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        return f"{url!r} is not a database URL"
    try:
        parsed.get_dialect().import_dbapi()
    except sqlalchemy.exc.NoSuchModuleError:
        return f"{shown(url)}: SQLAlchemy knows no database {parsed.drivername!r}"
    except ImportError as exc:
        return f"{shown(url)}: the database driver is not installed ({exc})"
    return None


def sqlite_damage(path: Path) -> str | None:
    """Why SQLite finds the database file ``path`` damaged; None if it is sound or absent.

    The file is only read (``PRAGMA quick_check``: every page, no index
    cross-check, so it is fast). A file that cannot be opened (locked past a
    minute, no permission) raises ``sqlite3.OperationalError``: that is no damage.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        # mode=rw: never create a file; a hot journal of a killed writer is rolled back.
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True,
                                                timeout=60)) as db:
            report = [line for (row,) in db.execute("PRAGMA quick_check") for line in row.splitlines()]
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError as exc:  # "file is not a database"
        return str(exc)
    problems = [line for line in report if not line.startswith("***")]  # "*** in database main ***"
    if problems == ["ok"]:
        return None
    return problems[0] if problems else "no integrity report"


def retrying(action, errors, problem, error_type):
    """``action()``, tried again after each of :data:`RETRY_PAUSES`, saying so on stderr.

    Parameters
    ----------
    action : callable
        No arguments; its result is returned.
    errors : tuple of exception types
        Failures worth another attempt; anything else propagates at once.
    problem : callable
        Turns a failure into a one-line description ("cannot connect to ...: reason").
    error_type : type
        Raised with ``problem(last failure)`` as its message once no attempt is left.
    """
    pauses = RETRY_PAUSES  # read at call time, so a change of the constant applies
    for attempt in range(len(pauses) + 1):
        try:
            return action()
        except errors as exc:
            message = problem(exc)
            if attempt == len(pauses):
                raise error_type(message) from None
            print(f"rbmlib: {message}; retrying in {pauses[attempt]} s "
                  f"(attempt {attempt + 2} of {len(pauses) + 1})", file=sys.stderr, flush=True)
            time.sleep(pauses[attempt])


def with_driver(url: str) -> str:
    """``postgresql://...`` -> ``postgresql+psycopg2://...``; other URLs unchanged.

    SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3, which the project
    does not install; it pins psycopg2 (``psycopg2-binary``).
    """
    return "postgresql+psycopg2://" + url[len("postgresql://"):] if url.startswith("postgresql://") else url


def check_url(url: str) -> sqlalchemy.engine.URL:
    """``url`` parsed, with its driver (:func:`with_driver`) loaded; no connection yet.

    Raises
    ------
    StorageError
        SQLAlchemy cannot parse it, knows no such database, or its driver is not installed.
    """
    problem = url_problem(with_driver(url))
    if problem:
        raise StorageError(f"{problem}; use {URL_FORMS}")
    return make_url(with_driver(url))


def check_study_file(path: Path) -> None:
    """Refuse a SQLite study file that SQLite finds damaged, before Optuna opens (and writes) it.

    On such a file Optuna fails with a raw traceback, or, for a corrupt page,
    with a misleading "exceeding max length". The file is only read
    (:func:`sqlite_damage`).

    Raises
    ------
    StorageError
        The file's folder does not exist, the file cannot be opened, or it is damaged.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise StorageError(f"no folder {path.parent} for the study file {path.name}")
    try:
        reason = sqlite_damage(path)
    except sqlite3.OperationalError as exc:  # locked past the timeout, no permission, ...
        raise StorageError(f"cannot open the study file {path}: {exc}") from None
    if reason:
        raise StorageError(f"this study file is damaged: {path} ({reason}); move it away and tune again "
                           "(finished trials are lost)")


def open_storage(url: str, heartbeat_interval: int = 60) -> RDBStorage:
    """An RDB storage with heartbeats, so trials of a killed worker are retried.

    Every study is opened here. The URL is checked first (:func:`check_url`,
    :func:`check_study_file`); a connection that fails is retried after each of
    :data:`RETRY_PAUSES`, announced on stderr, which also covers two
    workers racing to create the tables of a fresh database.

    Parameters
    ----------
    url : str
        SQLAlchemy URL (``sqlite:///path.db``, ``postgresql://user@host:port/db``).
    heartbeat_interval : int
        Seconds between a running trial's heartbeats; it is declared dead after
        twice that without one.

    Raises
    ------
    StorageError
        With one line: what is wrong with ``url``, or why it cannot be reached.
    """
    parsed = check_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            check_study_file(Path(parsed.database))
        # The heartbeat thread and the trial loop write the same file; wait for
        # the lock instead of failing with "database is locked".
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}  # survive a server restart between trials
        if parsed.get_driver_name() == "psycopg2" and "connect_timeout" not in parsed.query:
            engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}

    def connect() -> RDBStorage:
        with warnings.catch_warnings():
            # Heartbeats are "experimental" since Optuna 2.8 and are Optuna's documented
            # way to recover trials of dead workers; the warning says nothing actionable.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                with_driver(url),
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=2 * heartbeat_interval,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
            )

    def problem(exc: Exception) -> str:
        if isinstance(exc, sqlalchemy.exc.OperationalError):
            return f"cannot connect to {shown(url)}: {error_reason(exc)}"
        return f"cannot open {shown(url)} (another worker may be creating its tables): {error_reason(exc)}"

    # StorageInternalError: Optuna's wrapper of SQLAlchemy errors in its own sessions.
    return retrying(connect, (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError),
                    problem, StorageError)
