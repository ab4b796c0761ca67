"""--skip-busy and --until: how the two chains of `make tune` share the models, and where they stop."""

import os
import re
import subprocess
import sys

import optuna
import pytest

from rbmlib import paths, tuning
from rbmlib.cli import main
from rbmlib.tuning.claim import Busy, claim


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path / "cache")


def test_a_held_claim_is_refused_with_who_holds_it_and_free_again_after():
    with claim("smoke", "cnn", "tune"):
        with pytest.raises(Busy, match=rf"smoke/cnn is busy \(rbmlib tune, pid {os.getpid()}, since "):
            with claim("smoke", "cnn", "evaluate"):
                pass
        with claim("smoke", "lr", "tune"):  # another model is another claim
            pass
    with claim("smoke", "cnn", "evaluate"):
        pass


def test_a_killed_holder_leaves_no_stale_claim():
    code = ("import sys, time; from rbmlib import paths; from rbmlib.tuning.claim import claim\n"
            f"paths.CACHE_DIR = paths.Path({str(paths.CACHE_DIR)!r})\n"
            "with claim('smoke', 'cnn', 'tune'):\n    print('held', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Busy, match=f"pid {holder.pid}"):
            with claim("smoke", "cnn", "tune"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with claim("smoke", "cnn", "tune"):
        pass


def test_tune_skips_a_model_another_chain_holds_and_tunes_the_rest(monkeypatch, capsys):
    tuned = []

    def tune(model, preset, **kw):
        tuned.append(model)
        return optuna.create_study(study_name=f"smoke/{model}", direction="maximize")

    monkeypatch.setattr(tuning, "tune", tune)
    with claim("smoke", "cnn", "tune"):
        assert main(["tune", "--skip-busy", "--preset", "smoke", "--model", "cnn", "--model", "lr"]) == 0
    assert tuned == ["lr"]
    assert "smoke/cnn is busy (rbmlib tune, pid" in capsys.readouterr().out
    # Without --skip-busy, a claim means nothing: workers may share a study (test_workers.py).
    with claim("smoke", "cnn", "tune"):
        assert main(["tune", "--preset", "smoke", "--model", "cnn"]) == 0
    assert tuned == ["lr", "cnn"]


def test_tune_join_works_a_busy_study_as_its_second_worker_with_a_seed_of_its_own(monkeypatch, capsys):
    tuned = []

    def tune(model, preset, *, seed, **kw):
        with pytest.raises(Busy, match=r"smoke/cnn \(worker 1\) is busy"):  # held while it tunes
            with claim("smoke", "cnn", "tune", worker=1):
                pass
        tuned.append((model, seed))
        return optuna.create_study(study_name=f"smoke/{model}", direction="maximize")

    monkeypatch.setattr(tuning, "tune", tune)
    argv = ["tune", "--skip-busy", "--join", "--preset", "smoke", "--model", "cnn"]
    with claim("smoke", "cnn", "tune"):
        assert main([*argv, "--seed", "4"]) == 0
        assert tuned == [("cnn", 5)]
        assert "smoke/cnn is busy (rbmlib tune, pid" in capsys.readouterr().out
        with claim("smoke", "cnn", "tune", worker=1):  # two workers already: skipped
            assert main(argv) == 0
    assert tuned == [("cnn", 5)]
    assert "smoke/cnn (worker 1) is busy (rbmlib tune, pid" in capsys.readouterr().out
    monkeypatch.setattr(tuning, "tune", lambda model, preset, *, seed, **kw: tuned.append((model, seed))
                        or optuna.create_study(study_name=f"smoke/{model}", direction="maximize"))
    assert main(argv) == 0  # nobody holds it: its own claim, its own seed
    assert tuned[-1] == ("cnn", 0)


def test_a_model_that_searches_up_to_a_resource_limit_runs_in_one_process_at_a_time(monkeypatch, capsys):
    """Two of protocol 2's random-lr (up to 32,768 features in memory) might not fit beside each other."""
    from rbmlib.tuning import protocol

    protocol2 = tuning.get_preset("protocol2")
    assert [m for m in protocol2.models if protocol.one_at_a_time(protocol2, m)] == ["random-lr"]
    ran = []
    monkeypatch.setattr(tuning, "tune", lambda model, preset, **kw: ran.append(model))
    with claim("protocol2", "random-lr", "tune"):
        assert main(["tune", "--skip-busy", "--join", "--preset", "protocol2", "--model", "random-lr"]) == 0
    assert ran == [] and "one process at a time" in capsys.readouterr().out

    jobs = []
    monkeypatch.setattr(tuning, "evaluate", lambda models, preset, *, seeds, **kw: jobs.append((*models, seeds)))
    monkeypatch.setattr("rbmlib.cli._summary", lambda args: 0)
    assert main(["evaluate", "--skip-busy", "--preset", "protocol2", "--model", "random-lr", "--model", "lr"]) == 0
    assert jobs == [("random-lr", None)] + [("lr", [s]) for s in protocol2.refit_random_states["lr"]]


def test_join_without_skip_busy_is_refused_with_what_to_add(capsys):
    assert main(["tune", "--join", "--preset", "smoke", "--model", "cnn"]) == 2
    assert "--join works with --skip-busy" in capsys.readouterr().err


def test_evaluate_skips_a_refit_being_run_and_holds_each_claim_while_it_scores(monkeypatch, capsys):
    """Claims per (model, seed): two chains share even the seeds of the last model left."""
    held = []

    def evaluate(models, preset, *, seeds, **kw):
        [model], [seed] = models, seeds
        with pytest.raises(Busy):  # its claim is held while it is refitted and scored
            with claim("smoke", f"{model}-seed{seed}", "evaluate"):
                pass
        held.append((model, seed))

    monkeypatch.setattr(tuning, "evaluate", evaluate)
    monkeypatch.setattr("rbmlib.cli._summary", lambda args: 0)
    smoke = tuning.get_preset("smoke")
    busy = ("fnn", smoke.refit_random_states["fnn"][1])
    with claim("smoke", f"{busy[0]}-seed{busy[1]}", "evaluate"):
        assert main(["evaluate", "--skip-busy", "--preset", "smoke"]) == 0
    everything = [(m, s) for m in smoke.models for s in smoke.refit_random_states[m]]
    assert held == [job for job in everything if job != busy]
    assert f"smoke/fnn-seed{busy[1]} is busy (rbmlib evaluate" in capsys.readouterr().out


def test_the_makefile_chains_share_one_list_with_skip_busy():
    """Both chains run every model of the list (a model in no list would never be tuned)."""
    out = subprocess.run(["make", "-pn", "-f", str(paths.ROOT / "Makefile")], capture_output=True,
                         text=True, cwd=paths.ROOT, timeout=60).stdout
    lists = [(f"TUNE_ORDER_{p}", p) for p in ("paper", "protocol2", "smoke")]
    for name, preset in lists + [(f"EVALUATE_ORDER_{p}", p) for p in ("protocol2", "smoke")]:
        line = next(x for x in out.splitlines() if x.startswith(f"{name} :="))
        order = line.split(":=")[1].split()
        assert sorted(order) == sorted(tuning.get_preset(preset).models), name
    evaluate = next(x for x in out.splitlines() if x.startswith("EVALUATE_ORDER_protocol2 :="))
    assert evaluate.split()[2] == "random-lr"  # the one model whose refits are not shared goes first
    assert "--skip-busy" in out
    recipe = subprocess.run(["make", "-n", "-f", str(paths.ROOT / "Makefile"), "tune", "PRESET=smoke"],
                            capture_output=True, text=True, cwd=paths.ROOT, timeout=60).stdout
    passes = {verb: line for line in recipe.split("chain()") for verb in ("tune", "evaluate")
              if f"rbmlib {verb} --skip-busy" in line}
    assert 'for pass in "" --join --join' in passes["tune"]  # tuning joins a busy study in later passes
    assert "rbmlib status --budgets --preset smoke" in passes["tune"]  # until every study has its budget
    assert "--join" not in passes["evaluate"]  # evaluation never: two workers would score it twice


def test_tune_until_that_stops_a_study_short_exits_3_and_starts_no_later_model(monkeypatch, capsys):
    tuned = []

    def tune(model, preset, **kw):
        tuned.append(model)
        return optuna.create_study(study_name=f"smoke/{model}", direction="maximize")  # no trial: short

    monkeypatch.setattr(tuning, "tune", tune)
    argv = ["tune", "--preset", "smoke", "--model", "cnn", "--model", "lr"]
    assert main([*argv, "--until", "23:59"]) == 3
    assert tuned == ["cnn"]
    assert "stopped for --until with smoke/cnn short of its budget" in capsys.readouterr().out
    assert main(argv) == 0  # without a deadline a study short of its budget is another matter
    assert tuned == ["cnn", "cnn", "lr"]


def _run_tune_recipe(tmp_path, fake: str):
    """Run the shell of `make tune PRESET=smoke UNTIL=17:00`, from its chains on, in ``tmp_path``
    with ``fake`` (a sh script) as rbmlib; returns the run and rbmlib's calls, one line each."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "rbmlib").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "calls"}\n{fake}\n')
    (bin_dir / "rbmlib").chmod(0o755)
    (tmp_path / "results" / "logs").mkdir(parents=True)
    # --no-print-directory: under `make test` this make is a sub-make, which would add its
    # "Entering directory" lines to the recipe it prints.
    out = subprocess.run(["make", "-n", "--no-print-directory", "-f", str(paths.ROOT / "Makefile"), "tune",
                          "PRESET=smoke", "UNTIL=17:00", f"BIN={bin_dir}"],
                         capture_output=True, text=True, cwd=paths.ROOT, timeout=60).stdout
    run = subprocess.run(["bash", "-c", out[out.index("chain()"):]], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    return run, (tmp_path / "calls").read_text().splitlines()


def test_a_chain_stopped_by_until_on_one_model_goes_on_to_the_others(tmp_path):
    """A model whose next trial would not fit (status 3) does not stop the chain: the rest may fit."""
    # The deadline stops rbm-fnn's first pass only; the budgets are never met.
    run, calls = _run_tune_recipe(tmp_path, 'case "$*" in *"tune --skip-busy --preset smoke --model rbm-fnn "*) '
                                            'exit 3;; status*) exit 4;; esac')
    joined = [c.split("--model ")[1].split()[0] for c in calls if "--join" in c]
    assert run.returncode == 0, run.stdout + run.stderr
    assert "stopped for UNTIL=17:00 (nothing evaluated yet)" in run.stdout
    # Both chains, every model, in one joining pass: after it, the stop ends the chain.
    assert sorted(joined) == sorted(tuning.get_preset("smoke").models * 2)
    assert not any(c.startswith("evaluate") for c in calls)  # stopped: no test look


def test_the_tuning_chains_pass_again_until_every_study_has_its_budget(tmp_path):
    """A target that grew (equal_finished) while a chain went by: joining passes follow until
    `rbmlib status --budgets` says every study has its budget; then, and only then, the test look."""
    models = tuning.get_preset("smoke").models
    # Short of budget until two joining passes' worth of tune calls (in either chain) have run.
    fake = f'case "$*" in status*) [ $(grep -c -- --join {tmp_path / "calls"}) -ge {2 * len(models)} ] || exit 4;; esac'
    run, calls = _run_tune_recipe(tmp_path, fake)
    assert run.returncode == 0, run.stdout + run.stderr
    joined = [c for c in calls if c.startswith("tune") and "--join" in c]
    # Each chain's passes end once the budgets are met: at least the two passes they needed, and
    # no chain begins another after that (the other may still be in its last one).
    assert 2 * len(models) <= len(joined) <= 3 * len(models)
    assert calls.index(next(c for c in calls if c.startswith("evaluate"))) > calls.index(joined[-1])


def test_no_test_look_while_a_study_lacks_its_budget_after_every_pass(tmp_path):
    run, calls = _run_tune_recipe(tmp_path, 'case "$*" in status*) exit 4;; esac')
    assert run.returncode == 0, run.stdout + run.stderr
    assert "make tune: a study still lacks its budget" in run.stdout
    assert not any(c.startswith("evaluate") for c in calls)


def test_a_chain_that_fails_otherwise_ends_the_recipe(tmp_path):
    run, _ = _run_tune_recipe(tmp_path, 'case "$*" in *"--model cnn "*) exit 1;; esac')
    assert run.returncode == 1
    assert "a chain of rbmlib tune failed; see results/logs/smoke-tune-*.log" in run.stdout


def test_the_evaluation_chains_score_the_few_labels_of_each_ready_seed_after_every_model(tmp_path):
    """`rbmlib few-labels --ready-only` follows each model's refits, while its RBMs are in the cache."""
    run, calls = _run_tune_recipe(tmp_path, "")
    assert run.returncode == 0, run.stdout + run.stderr
    models = tuning.get_preset("smoke").models
    evaluations = [c for c in calls if c.startswith("evaluate")]
    ready = [c for c in calls if c.startswith("few-labels") and "--ready-only --skip-busy" in c]
    assert len(evaluations) == len(ready) == 2 * len(models)  # two chains, one after every model
    # One date and time for every command, fixed when make started: a bare 17:00 would mean
    # tomorrow's to a command started after 17:00.
    assert all(re.search(r"--until \d{4}-\d\d-\d\dT17:00\b", c) for c in ready)
    assert len({c.split("--until ")[1] for c in calls if "--until" in c}) == 1
    last = calls[-2:]  # then the whole few-labels study, then the summary
    assert last[0].startswith("few-labels --if-applicable --preset smoke") and last[1].startswith("summary")
