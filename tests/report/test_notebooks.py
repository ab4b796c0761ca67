"""The report's notebooks: thin, parameterised, saved clean, and executable at smoke scale.

Executing them is nbval's job: `pytest` collects every source notebook
(pyproject.toml's testpaths and --nbval-lax) and runs it at its own (smoke)
defaults in one kernel, comparing the cells tagged ``nbval-check-output`` with
the outputs stored in them through tests/nbval_sanitize.cfg; tests/conftest.py
adds the checks of this project (each labelled figure draws its images, each
labelled table or sentence emits Markdown, a time limit per notebook). The
executed copies in notebooks/executed/ are never touched here. This file checks
the notebooks without running them, and that nbval is set up to run them all.
"""

import ast
import json
import re
import tomllib
from pathlib import Path

import pytest

from quarto_cells import quarto_label
from rbmlib import paths
from rbmlib.report import pipeline

NOTEBOOKS = pipeline.source_notebooks()
IDS = [nb.stem for nb in NOTEBOOKS]
MAX_DEF_LINES = 5  # a helper longer than this belongs in rbmlib


def _cells(notebook):
    return json.loads(Path(notebook).read_text())["cells"]


def _source(cell):
    return "".join(cell["source"])


def _python(cell):
    """A code cell's source without IPython magics, ready for ``ast.parse``."""
    return "\n".join(line for line in _source(cell).splitlines() if not line.lstrip().startswith(("%", "!")))


def _parameter_names(notebook):
    cell = next(c for c in _cells(notebook) if "parameters" in c["metadata"].get("tags", []))
    return {node.targets[0].id for node in ast.parse(_python(cell)).body}


def test_the_report_has_its_notebooks():
    assert {"01_exploration", "02_rbm_anatomy", "03_rbm_likelihood", "04_tuning", "05_results", "06_appendix_speed"} <= set(IDS)


STORE = "run `make checked-outputs` (python -m rbmlib.report --store-checked-outputs)"
# Folders of some machine (as tests/test_outputs.py searches the executed copies), and this one's.
MACHINE_PATHS = ("/work/", "/root/", "/home/", "/Users/", "/tmp/", "site-packages",
                 *(f"{path}/" for path in pipeline.machine_paths()))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_saved_with_outputs_only_in_checked_cells(notebook):
    """Untagged cells are saved clean; a tagged cell keeps what nbval compares, stored by the command
    that made it (executed, so nbval checks it; no error, no machine path)."""
    for cell in _cells(notebook):
        if cell["cell_type"] != "code":
            continue
        where = f"{notebook.name}, cell {cell.get('id')}"
        if not pipeline.is_checked(cell):
            assert cell["outputs"] == [] and cell["execution_count"] is None, (
                f"{where}: clear the outputs before saving; only cells tagged "
                f"{pipeline.CHECK_OUTPUT_TAG!r} keep theirs")
            continue
        assert cell["execution_count"] is not None, f"{where}: tagged, but no stored outputs; {STORE}"
        assert not [o for o in cell["outputs"] if o["output_type"] == "error"], f"{where}: stored an error"
        text = json.dumps([{k: v for k, v in o.items() if k != "data"} for o in cell["outputs"]]
                          + [v for o in cell["outputs"] for m, v in o.get("data", {}).items()
                             if not m.startswith("image/")])
        found = [path for path in MACHINE_PATHS if path in text]
        assert not found, f"{where}: stored outputs name this machine's folders {found}; {STORE}"


def test_pytest_runs_every_source_notebook_under_nbval():
    options = tomllib.loads((Path(paths.ROOT) / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    collected = {p.resolve() for pattern in options["testpaths"] for p in Path(paths.ROOT).glob(pattern)
                 if p.suffix == ".ipynb"}
    assert collected == {nb.resolve() for nb in NOTEBOOKS}, "testpaths must name exactly the source notebooks"
    addopts = options["addopts"].split()
    assert "--nbval-lax" in addopts and "--nbval-current-env" in addopts
    sanitizer = next(o.split("=", 1)[1] for o in addopts if o.startswith("--nbval-sanitize-with="))
    assert (Path(paths.ROOT) / sanitizer).is_file()


def test_sanitizer_evens_out_what_changes_between_runs_and_keeps_the_numbers():
    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns((Path(paths.ROOT) / "tests" / "nbval_sanitize.cfg").read_text())
    assert len(patterns) >= 5, "each regex: line needs its replace: line right after it"

    def sanitize(text):
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    for stored, new in [("./results/smoke/x.csv", f"{paths.ROOT}/results/smoke/x.csv"),
                        ("<packages>/tqdm/auto.py:21", "/opt/venv/lib/python3.11/site-packages/tqdm/auto.py:21"),
                        ("one estimate took 12.6 to 62.3 s", "one estimate took 3.1 to 4.0 s"),
                        ("done in 250 ms at 12:01:02", "done in 1.5 minutes at 23:59:59"),
                        ("recorded 2026-11-23T01:59:26+00:00", "recorded 2027-01-01 00:00"),
                        ("<Figure at 0x7f3a2c1d9e50>", "<Figure at 0x55d1c0ffee00>"),
                        ("uses 80 MB", "uses 1.5 GiB")]:
        assert sanitize(stored) == sanitize(new), (stored, new)
    for kept in ["| CD-1 | 20 | -357.8 ± 0.0 | 0.0884 |", "84.58% on pixels, 3 seeds, 5 epochs",
                 "P(v | h) = 0.32 of 1/2"]:
        assert sanitize(kept) == kept


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_one_parameters_cell_of_plain_assignments(notebook):
    tagged = [c for c in _cells(notebook) if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, f"{notebook.name}: exactly one cell must carry the 'parameters' tag"
    for node in ast.parse(_python(tagged[0])).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), (
            f"{notebook.name}: the parameters cell holds only `name = literal` lines")
        ast.literal_eval(node.value)  # papermill overrides literals; expressions would be lost
    # papermill must see the same parameters (it gives up on lines with a second "=").
    import papermill

    assert set(papermill.inspect_notebook(str(notebook))) == _parameter_names(notebook)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_notebooks_stay_thin(notebook):
    for cell in _cells(notebook):
        assert "../" not in _source(cell), f"{notebook.name}: use rbmlib.paths, not relative paths"
        if cell["cell_type"] != "code":
            continue
        assert "sys.path" not in _source(cell), f"{notebook.name}: no sys.path tricks"
        for node in ast.walk(ast.parse(_python(cell))):
            assert not isinstance(node, ast.ClassDef), f"{notebook.name}: classes belong in rbmlib"
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= MAX_DEF_LINES, (
                    f"{notebook.name}: def {node.name} has {length} lines; move it into rbmlib")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_reads_as_a_chapter(notebook):
    """A title and what is asked first; a few words of Markdown shortly before every figure and table."""
    cells = _cells(notebook)
    assert cells[0]["cell_type"] == "markdown" and _source(cells[0]).startswith("# "), \
        f"{notebook.name} must open with a Markdown title and what the chapter asks"
    assert len(_source(cells[0]).split()) >= 20, f"{notebook.name}: the opening cell says what is asked"
    for i, cell in enumerate(cells):
        label = quarto_label(cell) if cell["cell_type"] == "code" else None
        if label and label.startswith(("fig-", "tbl-")):
            before = [c["cell_type"] for c in cells[max(0, i - 3):i]]
            assert "markdown" in before, f"{notebook.name}: no Markdown says what {label} shows"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_figures_and_tables_are_labelled_captioned_cells(notebook):
    labels = [quarto_label(c) for c in _cells(notebook) if c["cell_type"] == "code" and quarto_label(c)]
    assert len(labels) == len(set(labels)), f"{notebook.name}: duplicate labels"
    for cell in _cells(notebook):
        lines = _source(cell).splitlines()
        opening = next((i for i, line in enumerate(lines) if not line.startswith("#|")), len(lines))
        assert not [line for line in lines[opening:] if line.startswith("#|")], (
            f"{notebook.name}: Quarto's '#|' options must open the cell (cell {cell.get('id')})")
        label = quarto_label(cell)
        if label is None:
            continue
        assert cell.get("id") == label, f"{notebook.name}: give cell {label!r} the same id as its label"
        for prefix, caption in (("fig-", "fig-cap"), ("tbl-", "tbl-cap")):
            if label.startswith(prefix):
                assert re.search(rf"^#\|\s*{caption}:", _source(cell), re.M), f"{label} needs a {caption}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_kernel_is_the_projects(notebook):
    kernelspec = json.loads(notebook.read_text())["metadata"]["kernelspec"]
    assert kernelspec["name"] == "rbm-report" and kernelspec["language"] == "python"


@pytest.mark.parametrize("preset", pipeline.PRESETS)
def test_preset_files_name_real_notebooks_and_parameters(preset):
    parameters = pipeline.load_parameters(preset)
    by_name = {nb.stem: nb for nb in NOTEBOOKS}
    assert set(parameters) <= set(by_name), f"{preset}.yml names unknown notebooks"
    for name, values in parameters.items():
        unknown = set(values) - _parameter_names(by_name[name])
        assert not unknown, f"{preset}.yml sets parameters that {name} does not have: {sorted(unknown)}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_committed_executed_copy_is_current(notebook):
    executed = Path(paths.EXECUTED_DIR) / notebook.name
    if not executed.exists():
        pytest.skip(f"{executed.name} has not been executed yet")
    params = pipeline.load_parameters(paths.RENDERED_PRESET).get(notebook.stem, {})
    reason = pipeline.stale_reason(notebook, executed, params)
    assert reason is None, (
        f"notebooks/executed/{notebook.name} is out of date ({reason}): run `make report` "
        "(python -m rbmlib.report) and commit the executed copy")
    # Made under the rendered preset, or under one with the same parameters for this notebook
    # (protocol 2 extends the paper's: its chapters that read no study need no second run).
    made_with = json.loads(executed.read_text())["metadata"]["rbm-report"]["preset"]
    assert pipeline.load_parameters(made_with).get(notebook.stem, {}) == params


def _defaults(notebook) -> dict:
    cell = next(c for c in _cells(notebook) if "parameters" in c["metadata"].get("tags", []))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(_python(cell)).body}


def test_a_panel_per_model_lines_up_with_its_sub_caption():
    """Each tuning figure comes twice, for the original study's models and for protocol 2's
    controls, with a panel and a sub-caption for each such model of the registry, in its order
    (a run without the model draws a strip that says so)."""
    from rbmlib.models import MODELS

    notebook = next(nb for nb in NOTEBOOKS if nb.stem == "04_tuning")
    groups = {"compared": [m for m in MODELS if not MODELS[m].control],
              "controls": [m for m in MODELS if MODELS[m].control]}
    assert any("compared = [m for m in MODELS if not MODELS[m].control]" in _source(c) for c in _cells(notebook))
    panels = [c for c in _cells(notebook) if "fig-subcap" in _source(c) and "search.panels(" in _source(c)]
    assert len(panels) == 6
    for cell in panels:
        group = re.search(r"search\.panels\([\w.]+, studies, (\w+)", _source(cell))[1]
        subcaps = re.findall(r'^#\|\s+-\s+"(.*)"$', _source(cell), re.M)
        assert subcaps == [MODELS[m].label for m in groups[group]], quarto_label(cell)
