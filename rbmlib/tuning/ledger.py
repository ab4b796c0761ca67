"""The test-set ledger: an append-only record of every look at the test split.

Each row is one refit scored on the test split: when, at which git commit,
under which preset (the protocol) and protocol digest (``protocol.digest``:
empty for the looks of protocol 1, taken before digests existed), which model, seed (the refit's
``random_state``), trial and parameters, and the two scores. Only the two
test looks append to it: :func:`rbmlib.tuning.refit.evaluate` (``rbmlib evaluate``,
the default ``source``) and :func:`rbmlib.tuning.few_labels.few_labels`
(``rbmlib few-labels``, which reuses the evaluation's refits). It
refuses to score the same (preset, model, seed) twice: a look at the test set
happens once, and a changed model is a new protocol, not a second look. The
paper's appendix lists the ledger whole.

The rows of the first protocol (the ``paper`` preset) were written before
the ledger existed; :func:`history_rows` recovers them from every version of
``evaluation.csv`` that git holds, including rows that a later commit deleted.
"""

from __future__ import annotations

import datetime
import fcntl
import io
import json
import os
import subprocess

import pandas as pd

from rbmlib import paths

LEDGER_COLUMNS = ["time", "commit", "protocol", "digest", "model", "seed", "trial_number", "params",
                  "test_accuracy", "test_macro_f1", "source"]


class RepeatedLookError(ValueError):
    """A (preset, model, seed) that the ledger shows was scored on the test split already."""


def read(preset: str) -> pd.DataFrame:
    """The preset's ledger (``LEDGER_COLUMNS``; empty if none yet)."""
    path = paths.test_ledger(preset)
    if not path.exists():
        return pd.DataFrame(columns=LEDGER_COLUMNS)
    return pd.read_csv(path, dtype={"commit": str, "digest": str})[LEDGER_COLUMNS]


def last_look(looks: pd.DataFrame, model: str, seed: int, **match) -> pd.Series | None:
    """The latest of ``looks`` (:func:`read`) at ``model`` and ``seed`` whose columns equal ``match``; None if none.

    What a job killed between its look and its result row finds again, so that
    it writes the row from the ledger instead of looking a second time.
    """
    hit = (looks["model"] == model) & (looks["seed"].astype(int) == seed)
    for column, value in match.items():
        hit &= looks[column] == value
    return looks[hit].iloc[-1] if hit.any() else None


def scored(preset: str) -> set[tuple[str, int]]:
    """The (model, seed) pairs of ``preset`` already scored on the test split."""
    rows = read(preset)
    return set(zip(rows["model"], rows["seed"].astype(int)))


def check_unscored(preset: str, pairs) -> None:
    """Refuse a second look at the test split for any (model, seed) of ``pairs`` under ``preset``.

    The ledger is read once for all of them, before anything is fitted.

    Raises
    ------
    RepeatedLookError
        Naming the first pair that was scored already.
    """
    done = scored(preset)
    for model, seed in pairs:
        if (model, int(seed)) in done:
            raise RepeatedLookError(
                f"{preset}/{model} seed {seed} was scored on the test split already "
                f"({paths.test_ledger(preset).name}); the test set is looked at once per protocol. "
                "Restore its evaluation row and predictions from git, or tune the changed model under a new "
                f"preset (a throwaway preset such as smoke starts afresh once results/{preset}/ is deleted).")


def commit() -> str:
    """``git describe --always --dirty`` of the project, or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=10"], cwd=paths.ROOT,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def append(preset: str, row: dict) -> None:
    """Append one look (the keys of ``LEDGER_COLUMNS`` but ``time``, ``commit`` and ``source``).

    Under an exclusive lock, flushed and synced: two evaluation chains may
    append at once, and a look recorded is never lost.

    Raises
    ------
    ValueError
        The file has other columns than ``LEDGER_COLUMNS`` (appending would misalign the rows).
    """
    full = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": commit(), "protocol": preset, "source": "rbmlib evaluate", **row}
    path = paths.test_ledger(preset)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0, os.SEEK_END)
            if f.tell():
                with open(path) as existing:
                    header = existing.readline().strip().split(",")
                if header != LEDGER_COLUMNS:
                    raise ValueError(f"{path} has the columns {header}, not {LEDGER_COLUMNS}: "
                                     "restore it from git before evaluating.")
            pd.DataFrame([full], columns=LEDGER_COLUMNS).to_csv(f, header=f.tell() == 0, index=False)
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def history_rows(preset: str = "paper") -> pd.DataFrame:
    """Every row that any committed version of the preset's ``evaluation.csv`` held, oldest first.

    A row is one look: the same (model, seed, trial, seconds) in several
    versions is one look, kept once, dated by the first commit that holds it
    (the look happened before that commit). Rows from before ``refit_params``
    was recorded get their trial's parameters from the study file of the same commit.

    Returns
    -------
    DataFrame with ``LEDGER_COLUMNS``; ``source`` names the commit it was recovered from.
    """
    relative = paths.evaluation_csv(preset).relative_to(paths.ROOT).as_posix()
    log = _git("log", "--reverse", "--format=%H %cI", "--", relative)
    looks, seen = [], set()
    for line in log.splitlines():
        sha, date = line.split()
        text = _git("show", f"{sha}:{relative}", check=False)
        if not text:
            continue
        for row in pd.read_csv(io.StringIO(text)).to_dict("records"):
            key = (row["model"], int(row["seed"]), int(row["trial_number"]), float(row["seconds"]))
            if key in seen:
                continue
            seen.add(key)
            params = row.get("refit_params")
            if not isinstance(params, str):
                params = _trial_params(sha, preset, row["model"], int(row["trial_number"]))
            looks.append({"time": date, "commit": sha[:10], "protocol": preset, "digest": None,
                          "model": row["model"],
                          "seed": int(row["seed"]), "trial_number": int(row["trial_number"]),
                          "params": params, "test_accuracy": row["test_accuracy"],
                          "test_macro_f1": row["test_macro_f1"], "source": f"evaluation.csv at {sha[:10]}"})
    return pd.DataFrame(looks, columns=LEDGER_COLUMNS)


def _git(*args, check=True) -> str:
    out = subprocess.run(["git", *args], cwd=paths.ROOT, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout if out.returncode == 0 else ""


def _trial_params(sha: str, preset: str, model: str, number: int) -> str:
    """The trial's parameters as sorted JSON, read from the study file as committed at ``sha``."""
    import tempfile

    import optuna

    relative = paths.study_db(preset, model).relative_to(paths.ROOT).as_posix()
    blob = subprocess.run(["git", "show", f"{sha}:{relative}"], cwd=paths.ROOT, capture_output=True)
    if blob.returncode != 0:
        return "unknown"
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "study.db")
        with open(db, "wb") as f:
            f.write(blob.stdout)
        storage = f"sqlite:///{db}"
        name = optuna.get_all_study_names(storage)[0]
        trial = optuna.load_study(study_name=name, storage=storage).trials[number]
        return json.dumps(trial.params, sort_keys=True)
