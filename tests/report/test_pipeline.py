"""The report pipeline (rbmlib.report.pipeline) and the Makefile targets around it.

The execution tests run throwaway notebooks in a temporary folder with the
``python3`` kernel (this Python's ipykernel); the Makefile tests only ask
``make`` what it would run (``make -n``) and never start JupyterLab or pip.
"""

import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from rbmlib import paths
from rbmlib.report import pipeline
from rbmlib.tuning import presets

# tqdm.auto inside a kernel without ipywidgets: the warning of the committed 03-05 copies.
PROGRESS_AND_PATHS = """\
import os, sys, tempfile
from tqdm.auto import tqdm
for _ in tqdm(range(3), desc="inner loop"):
    pass
print(os.getcwd(), sys.prefix, tempfile.gettempdir(), os.path.expanduser("~"), sep="\\n")
"""


def _write_notebook(path, source="x = 1"):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbformat.write(nb, path)
    return path


def _outputs(path):
    return [o for cell in nbformat.read(path, as_version=4).cells for o in cell.get("outputs", [])]


def _stream(path, name):
    return "".join(o["text"] for o in _outputs(path) if o["output_type"] == "stream" and o["name"] == name)


def _stderr(path):
    return _stream(path, "stderr")


def _stdout(path):
    return _stream(path, "stdout")


# ----------------------------------------------------------------------------- execute_notebook

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A notebook with a tqdm loop that prints this machine's paths, executed with 3 threads
    over the partial copy that a killed run left behind."""
    folder = tmp_path_factory.mktemp("pipeline")
    source = _write_notebook(folder / "01_demo.ipynb", PROGRESS_AND_PATHS)
    executed = folder / "executed" / "01_demo.ipynb"
    executed.parent.mkdir()
    stale = pipeline.partial_path(executed)
    stale.write_text('{"cells": [')  # what SIGKILL mid-notebook leaves
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "3")
        pipeline.execute_notebook(source, executed, {})
    return {"source": source, "executed": executed, "stale": stale}


def test_a_partial_copy_left_by_a_killed_run_is_gone(run):
    assert run["stale"].name == ".01_demo.partial.ipynb" and not run["stale"].exists()
    assert sorted(p.name for p in run["executed"].parent.iterdir()) == ["01_demo.ipynb"]
    assert nbformat.read(run["executed"], as_version=4).cells[0].outputs  # a complete copy


def test_the_kernel_shows_no_tqdm_warning_and_stores_no_progress_bars(run):
    assert _stderr(run["executed"]) == ""
    assert "inner loop" not in json.dumps([o for o in _outputs(run["executed"])])


def test_without_the_kernel_environment_tqdm_warns_and_its_path_is_scrubbed(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "KERNEL_ENVIRONMENT", {})
    source = _write_notebook(tmp_path / "01_demo.ipynb", "from tqdm.auto import tqdm")
    executed = pipeline.execute_notebook(source, tmp_path / "out" / "01_demo.ipynb", {})
    stderr = _stderr(executed)
    assert "TqdmWarning: IProgress not found" in stderr  # the situation the environment prevents
    assert "<packages>/tqdm/auto.py" in stderr and "site-packages" not in stderr


def test_outputs_hold_no_absolute_path_of_this_machine(run):
    cwd, prefix, tmp, home = _stdout(run["executed"]).splitlines()
    assert (cwd, prefix, tmp, home) == (".", "<venv>", "<tmp>", "~")
    text = json.dumps(_outputs(run["executed"]))  # the metadata names the input, here in /tmp
    for path in (str(paths.ROOT), sys.prefix, tempfile.gettempdir(), str(Path.home())):
        assert f"{path}/" not in text and f'"{path}' not in text


def test_the_executed_copy_records_threads_machine_and_versions(run):
    record = nbformat.read(run["executed"], as_version=4).metadata["rbm-report"]
    assert record["threads"] == 3
    assert record["machine"] == platform.machine()
    assert record["python"] == platform.python_version()
    assert record["torch"] == importlib.metadata.version("torch")
    assert record["preset"] == "smoke" and record["parameters"] == {}
    assert record["source_sha256"] == pipeline.source_digest(run["source"])


def test_a_different_thread_record_does_not_make_a_copy_stale(run, tmp_path):
    nb = nbformat.read(run["executed"], as_version=4)
    nb.metadata["rbm-report"].update(threads=64, machine="arm64", torch="0.0")
    del nb.metadata["rbm-report"]["python"]
    copy = tmp_path / "01_demo.ipynb"
    nbformat.write(nb, copy)
    assert pipeline.stale_reason(run["source"], copy, {}) is None


def test_the_thread_record_falls_back_to_torch_when_omp_is_unset(monkeypatch):
    import torch

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    record = pipeline.execution_record(nbformat.v4.new_notebook())
    assert record["threads"] == torch.get_num_threads()


def test_build_removes_partials_and_announces_each_notebook(tmp_path, monkeypatch, capsys):
    notebooks = tmp_path / "notebooks"
    (notebooks / "params").mkdir(parents=True)
    _write_notebook(notebooks / "01_demo.ipynb", "print('hello')")
    (notebooks / "params" / "smoke.yml").write_text("01_demo: {}\n")
    out = notebooks / "executed-smoke"
    out.mkdir()
    stale = out / ".02_gone.partial.ipynb"  # a notebook this run does not execute
    stale.write_text("{")
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", notebooks)
    monkeypatch.setattr(paths, "NOTEBOOK_PARAMS_DIR", notebooks / "params")
    monkeypatch.setattr("rbmlib.data.ensure_data", lambda: tmp_path)
    assert pipeline.build("smoke", render=False) == 0
    assert not stale.exists() and (out / "01_demo.ipynb").exists()
    printed = capsys.readouterr().out
    assert ".02_gone.partial.ipynb, left by a run that was killed" in printed
    assert re.search(r"01_demo \(1/1\): running \(no executed copy yet\), started \d\d:\d\d:\d\d", printed)


# ----------------------------------------------------------------------------- nbval's stored outputs

CHECKED = """\
import os, sys, tempfile, time
print(6 * 7, "after", round(time.perf_counter() % 9 + 1, 1), "s")
print(sys.prefix + "/lib", tempfile.gettempdir() + "/run", hex(id(object())))
"""


def _scratch_notebook(path):
    """A tagged cell whose output holds a number, a time, this machine's paths and an address; an untagged
    cell whose output changes every run."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(CHECKED, metadata={"tags": [pipeline.CHECK_OUTPUT_TAG]}),
        nbformat.v4.new_code_cell("import random\nprint(random.random())"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _nbval(notebook, *options):
    """`pytest --nbval-lax` on one notebook in its own folder (an empty pytest.ini: not this project's options)."""
    (notebook.parent / "pytest.ini").write_text("[pytest]\n")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-current-env", *options, notebook.name],
                          cwd=notebook.parent, capture_output=True, text=True, timeout=300)


def test_keep_checked_outputs_keeps_only_the_tagged_cells_outputs():
    tagged = nbformat.v4.new_code_cell("1", id="a", metadata={"tags": [pipeline.CHECK_OUTPUT_TAG]})
    source = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# x", id="m"), tagged,
        nbformat.v4.new_code_cell("2", id="b", execution_count=7,
                                  outputs=[nbformat.v4.new_output("stream", name="stdout", text="old")])])
    result = nbformat.v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=3)
    executed = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# x", id="m"),
        nbformat.v4.new_code_cell("1", id="a", execution_count=3, outputs=[result]),
        nbformat.v4.new_code_cell("2", id="b", execution_count=4,
                                  outputs=[nbformat.v4.new_output("stream", name="stdout", text="2")])])
    cells = pipeline.keep_checked_outputs(source, executed).cells
    assert cells[1].outputs == [result] and cells[1].execution_count == 1 == result.execution_count
    assert (cells[2].outputs, cells[2].execution_count) == ([], None)
    with pytest.raises(ValueError, match="'a'"):
        pipeline.keep_checked_outputs(source, nbformat.v4.new_notebook(cells=[]))


@pytest.mark.slow
def test_stored_checked_outputs_pass_nbval_through_the_sanitizer_and_a_changed_one_fails(tmp_path):
    notebook = _scratch_notebook(tmp_path / "scratch.ipynb")
    assert pipeline.store_checked_outputs([notebook]) == [notebook]
    tagged, untagged = nbformat.read(notebook, as_version=4).cells
    stored = tagged.outputs[0].text
    assert stored.startswith("42 after ") and "<venv>/lib <tmp>/run 0x" in stored  # scrubbed
    assert tagged.execution_count == 1 and (untagged.outputs, untagged.execution_count) == ([], None)

    sanitizer = f"--nbval-sanitize-with={Path(paths.ROOT) / 'tests' / 'nbval_sanitize.cfg'}"
    passed = _nbval(notebook, sanitizer)
    assert passed.returncode == 0, passed.stdout[-3000:]
    # Without the sanitizer the time, the paths and the address differ: the file is what makes it pass.
    unsanitized = _nbval(notebook)
    assert unsanitized.returncode != 0 and "Cell outputs differ" in unsanitized.stdout
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[0].outputs[0].text = stored.replace("42", "41", 1)
    nbformat.write(nb, notebook)
    changed = _nbval(notebook, sanitizer)
    assert changed.returncode != 0 and "Cell outputs differ" in changed.stdout


# ----------------------------------------------------------------------------- helpers

def test_scrub_machine_paths_longest_first_and_leaves_images():
    stand_ins = {"/w/proj": ".", "/w/proj/.venv": "<venv>", "/w/proj/.venv/lib/site-packages": "<packages>",
                 "/tmp": "<tmp>"}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stderr", text=(
            "/w/proj/.venv/lib/site-packages/tqdm/auto.py:21: W\n/tmp/ipykernel_1/2.py:3\n")),
        nbformat.v4.new_output("display_data", data={"text/plain": "/w/proj/results and /w/projects /tmpfs",
                                                     "image/png": "iVBOR/tmp/w/proj"}),
        nbformat.v4.new_output("error", ename="E", evalue="in /w/proj/.venv", traceback=["/w/proj/a.py"]),
    ])])
    outputs = pipeline.scrub_machine_paths(nb, stand_ins).cells[0].outputs
    assert outputs[0].text == "<packages>/tqdm/auto.py:21: W\n<tmp>/ipykernel_1/2.py:3\n"
    assert outputs[1].data["text/plain"] == "./results and /w/projects /tmpfs"
    assert outputs[1].data["image/png"] == "iVBOR/tmp/w/proj"
    assert (outputs[2].evalue, outputs[2].traceback) == ("in <venv>", ["./a.py"])


def test_machine_paths_cover_root_venv_home_and_tmp():
    stand_ins = pipeline.machine_paths()
    assert stand_ins[str(paths.ROOT)] == "." and stand_ins[sys.prefix] == "<venv>"
    assert stand_ins[str(Path.home())] == "~" and stand_ins["/tmp"] == "<tmp>"
    assert any(p.endswith("site-packages") and s == "<packages>" for p, s in stand_ins.items())


def test_kernel_environment_is_set_inside_and_restored_after(monkeypatch):
    monkeypatch.setenv("PYTHONWARNINGS", "error::DeprecationWarning")
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    with pipeline.kernel_environment():
        assert os.environ["TQDM_DISABLE"] == "1"
        assert os.environ["PYTHONWARNINGS"] == "error::DeprecationWarning,ignore:IProgress not found"
    assert "TQDM_DISABLE" not in os.environ and os.environ["PYTHONWARNINGS"] == "error::DeprecationWarning"


def test_presets_are_the_tuning_presets_each_with_its_parameters_file():
    assert pipeline.PRESETS is presets.PRESETS
    files = {p.stem for p in Path(paths.NOTEBOOK_PARAMS_DIR).glob("*.yml")}
    assert files == set(presets.PRESETS), "one notebooks/params/<name>.yml per rbmlib.tuning.presets preset"
    assert paths.executed_dir(paths.RENDERED_PRESET) == Path(paths.EXECUTED_DIR)
    assert paths.executed_dir("smoke") == Path(paths.NOTEBOOKS_DIR) / "executed-smoke"


def test_a_preset_without_its_parameters_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "NOTEBOOK_PARAMS_DIR", tmp_path)
    with pytest.raises(ValueError, match="smoke.yml"):
        pipeline.load_parameters("smoke")



def test_a_file_that_extends_another_preset_sets_only_the_parameters_it_names(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "NOTEBOOK_PARAMS_DIR", tmp_path)
    (tmp_path / "paper.yml").write_text("01_a: {n: 1, k: 2}\n02_b: {m: 3}\n")
    (tmp_path / "protocol2.yml").write_text("extends: paper\n01_a: {k: 5}\n03_c: {x: 0}\n")
    assert pipeline.load_parameters("protocol2") == {"01_a": {"n": 1, "k": 5}, "02_b": {"m": 3}, "03_c": {"x": 0}}
    (tmp_path / "paper.yml").write_text("extends: smoke\n")
    with pytest.raises(ValueError, match="extends 'paper': name a preset whose file has no `extends`"):
        pipeline.load_parameters("protocol2")
    (tmp_path / "protocol2.yml").write_text("extends: protocol2\n")
    with pytest.raises(ValueError, match="extends 'protocol2'"):
        pipeline.load_parameters("protocol2")


def test_protocol2_reads_its_own_results_and_never_resumes_a_study_from_a_notebook():
    # `make tune PRESET=protocol2` runs the studies; a notebook that ran trials could move them after a test look.
    params = pipeline.load_parameters("protocol2")
    assert params["01_exploration"] == pipeline.load_parameters("paper")["01_exploration"]
    for notebook, values in params.items():
        if "preset" in values:
            assert values["preset"] == "protocol2", notebook
        if "preset" in values and notebook != "06_appendix_speed":
            assert values.get("resume") is False, notebook

# ----------------------------------------------------------------------------- Makefile

def _make(*args):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(["make", "--no-print-directory", *args], cwd=paths.ROOT,
                            capture_output=True, text=True, check=True)
    return result.stdout


def _phony_targets():
    text = (Path(paths.ROOT) / "Makefile").read_text()
    return {t for line in re.findall(r"^\.PHONY:(.*)$", text, re.M) for t in line.split()}


def test_make_help_lists_every_target_and_variable():
    lines = _make("help").splitlines()
    listed = {line.split()[1] for line in lines if line.startswith("make ")}
    assert _phony_targets() <= listed and {"report", "tune", "lock", "setup", "clean", "bench"} <= listed
    text = "\n".join(lines)
    for variable in ("PRESET=", "FORCE=", "THREADS=", "LAB_ARGS=", "UNTIL="):
        assert variable in text


def test_make_lab_allows_root_only_for_root_and_passes_lab_args():
    lab_args = "--no-browser --ip=0.0.0.0 --port=8888"
    as_me = _make("-n", "lab", f"LAB_ARGS={lab_args}").splitlines()[-1]
    assert "jupyter lab notebooks" in as_me and as_me.endswith(lab_args)
    assert ("--allow-root" in as_me) == (os.getuid() == 0)
    assert "--allow-root" in _make("-n", "lab", "USER_ID=0").splitlines()[-1]
    assert "--allow-root" not in _make("-n", "lab", "USER_ID=1000").splitlines()[-1]


def test_make_report_and_tune_pin_the_thread_count():
    assert _make("-n", "report").splitlines()[-1].startswith(
        "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python -m rbmlib.report --preset paper")
    assert "OMP_NUM_THREADS=3 MKL_NUM_THREADS=3 " in _make("-n", "report", "THREADS=3", "PRESET=smoke")
    assert _make("-n", "checked-outputs", "THREADS=4").splitlines()[-1].startswith(
        "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python -m rbmlib.report --store-checked-outputs")
    tune = _make("-n", "tune")
    # tune, evaluate, the few labels of the refits ready after each model, the rest of the few labels
    assert tune.count("OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/rbmlib") == 4
    assert "rbmlib few-labels --if-applicable --preset paper" in tune  # a no-op for protocol 1


def test_the_environment_build_shows_progress():
    recipe = _make("-n", "-W", "pyproject.toml", "setup")  # as if the pins had changed
    assert "6.4 GB" in recipe and "--quiet" not in recipe
    assert recipe.count("pip install --progress-bar on") == 2
