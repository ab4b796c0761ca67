"""One process per model (or refit) on this machine: how ``make tune`` shares work between its chains.

``make tune`` runs two chains, one thread each. Fixed lists of models per chain
leave one chain idle once its models are done while the other still has hours
of trials. Instead both chains go through the same list, costliest first, with
``rbmlib tune --skip-busy``: a chain claims a model by locking its
:func:`rbmlib.paths.claim_file` and skips a model that the other chain holds,
so whichever chain is free takes the next model (longest-first scheduling).
Evaluating, the claim is a refit's, ``<model>-seed<n>`` (``rbmlib evaluate
--skip-busy``): two chains share even the seeds of the last model left, and
never refit one seed twice, which would score it on the test split twice.

When no model is left to claim, a chain would idle while the other runs the
last study, for hours where that study is an RBM pipeline's. ``rbmlib tune
--skip-busy --join`` (the chains' second pass) instead joins a busy study as
its second worker, under a claim of its own (``worker=1``); Optuna shares a
study between processes through its storage. A model that searches up to a
resource limit of the machine (``protocol.one_at_a_time``: protocol 2's
random-lr, whose features fill much of its memory) is never shared, in tuning
or in evaluation: one process at a time.

The lock is ``flock``'s: the kernel releases it when its process ends, however
it ends, so a killed chain leaves no stale claim behind.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os

from rbmlib import paths


class Busy(RuntimeError):
    """Another process holds the model's claim; the message says which."""


@contextlib.contextmanager
def claim(preset: str, model: str, command: str, worker: int = 0):
    """Hold ``model``'s claim under ``preset`` for the ``with`` block.

    ``worker`` 0 is the model's own claim; 1 that of a second worker on its study.

    Raises
    ------
    Busy
        Another process holds it (the message names its command, pid and start).
    """
    path = paths.claim_file(preset, model, worker)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise Busy(f"{preset}/{model}{f' (worker {worker})' if worker else ''} is busy ({holder})") from None
        try:
            f.seek(0)
            f.truncate()
            f.write(f"rbmlib {command}, pid {os.getpid()}, since {datetime.datetime.now():%Y-%m-%d %H:%M}\n")
            f.flush()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
