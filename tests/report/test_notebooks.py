"""The report's notebooks: thin, parameterised, saved clean, and executable at smoke scale.

The execution tests run every source notebook through papermill at its own
(smoke) defaults, exactly as ``python -m rbmlib.report --preset smoke`` does,
into a temporary folder; the executed copies in notebooks/executed/ are never
touched here.
"""

import ast
import json
import re
import time
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


def _subcaptions(cell):
    """The items of a cell's `#| fig-subcap:` list (empty when it has none)."""
    lines = _source(cell).splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"#\|\s*fig-subcap:\s*$", line)), None)
    if start is None:
        return []
    items = []
    for line in lines[start + 1:]:
        match = re.match(r"#\|\s+-\s+(.*)", line)
        if not match:
            break
        items.append(match.group(1))
    return items


def test_the_report_has_its_notebooks():
    assert {"01_exploration", "02_rbm_anatomy", "03_rbm_likelihood", "04_tuning", "05_results", "06_appendix_speed"} <= set(IDS)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_saved_without_outputs(notebook):
    for cell in _cells(notebook):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, (
                f"{notebook.name}: clear the outputs before saving (cell {cell.get('id')})")


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
    params = pipeline.load_parameters("paper").get(notebook.stem, {})
    reason = pipeline.stale_reason(notebook, executed, params)
    assert reason is None, (
        f"notebooks/executed/{notebook.name} is out of date ({reason}): run `make report` "
        "(python -m rbmlib.report) and commit the executed copy")
    assert json.loads(executed.read_text())["metadata"]["rbm-report"]["preset"] == "paper"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_executes_at_smoke_defaults(notebook, tmp_path, monkeypatch, fashion_mnist):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits it; keeps CI machines responsive
    start = time.perf_counter()
    executed = pipeline.execute_notebook(notebook, tmp_path / notebook.name, {}, preset="smoke")
    seconds = time.perf_counter() - start
    cells = _cells(executed)
    errors = [c.get("id") for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, f"cells with errors: {errors}"
    for cell in cells:
        label = quarto_label(cell)
        if label is None:
            continue
        kinds = [key for o in cell["outputs"] for key in o.get("data", {})]
        if label.startswith("fig-"):
            # One figure, or one per subcaption (Quarto's subfigures: `fig-subcap` lists).
            expected = max(len(_subcaptions(cell)), 1)
            assert kinds.count("image/png") == expected, f"{label} must draw {expected} figure(s)"
        else:
            assert "text/markdown" in kinds, f"{label} must emit Markdown (a table or a sentence)"
    assert seconds < 150, f"{notebook.name} took {seconds:.0f} s at smoke scale; keep CI fast"
