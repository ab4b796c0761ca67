"""Shared pieces of the tuning tests: a tiny preset, and a worker for the multi-process test.

Run as a script, this is one tuning worker:

    python tests/tuning_helpers.py STORAGE_URL TRACKING_URI SEED N_TRIALS RESULTS_DIR N_WORKERS

Once imported, it waits until N_WORKERS workers are ready (files in
RESULTS_DIR/ready/), so that they really run side by side, tunes ``lr`` on the
tiny preset against the shared storage, and prints the numbers of the trials
it ran as JSON on its last line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from rbmlib.tuning import spaces
from rbmlib.tuning.presets import PROTOCOL1_MODELS, SMOKE

#: Smaller than the smoke preset, with protocol 1's five models and spaces (the smoke preset has
#: protocol 2's); the name keeps its outputs apart from real presets'.
TINY = dataclasses.replace(
    SMOKE,
    name="tiny",
    n_trials={m: 2 for m in PROTOCOL1_MODELS},
    spaces=spaces.PROTOCOL1,
    train_subset=300,
    val_subset=200,
    trainval_subset=300,
    test_subset=200,
    n_iter={"fnn": 2, "cnn": 1, "rbm-fnn": 2},
    rbm__n_iter=1,
    rbm__n_components=(8, 16, 8),
    refit_random_states={m: (0, 1, 2) for m in PROTOCOL1_MODELS},
    pruner="median",
    pruner_n_startup_trials=1,
    pruner_n_warmup_steps=1,
    heartbeat_interval=1,  # a killed worker's trial is declared dead after 2 s
)


def _wait_for_workers(folder: Path, n_workers: int, timeout: float = 120) -> None:
    """A barrier between processes: say "ready" in ``folder``, wait for the others."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()
    deadline = time.time() + timeout
    while len(list(folder.iterdir())) < n_workers and time.time() < deadline:
        time.sleep(0.05)


def _worker(url, tracking_uri, seed, n_trials, results_dir, n_workers) -> None:
    from rbmlib import paths
    from rbmlib.tuning import objective, study

    paths.RESULTS_DIR = Path(results_dir)
    paths.CACHE_DIR = Path(results_dir) / "cache"
    # Each trial takes at least 0.3 s (after its parameters are drawn), so
    # that neither worker can finish the whole study before the other has started,
    # and a test can kill a worker while a trial with parameters is running.
    call = objective.Objective.__call__

    def slow_call(self, trial):
        value = call(self, trial)
        time.sleep(0.3)
        return value

    objective.Objective.__call__ = slow_call
    _wait_for_workers(Path(results_dir) / "ready", n_workers)
    tuned = study.tune("lr", TINY, n_trials=n_trials, storage=url, tracking_uri=tracking_uri,
                       seed=seed, show_progress_bar=False)
    mine = [t.number for t in tuned.trials if t.user_attrs.get("worker", "").endswith(f":{os.getpid()}")]
    print(json.dumps(mine))


if __name__ == "__main__":
    url, tracking_uri, seed, n_trials, results_dir, n_workers = sys.argv[1:]
    _worker(url, tracking_uri, int(seed), int(n_trials), results_dir, int(n_workers))
