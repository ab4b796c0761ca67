"""The committed executed notebooks hold nothing of the machine that made them, and no warnings.

``python -m rbmlib.report`` scrubs this machine's absolute paths from the
outputs and starts the kernels so that tqdm neither warns nor draws bars
(rbmlib.report.pipeline); this checks the copies in notebooks/executed/ that
the manuscript embeds. Images are not searched: base64 may spell a path by chance.
"""

import json
from pathlib import Path

import pytest

from rbmlib import paths

EXECUTED = sorted(p for p in Path(paths.EXECUTED_DIR).glob("*.ipynb") if not p.name.startswith("."))
IDS = [p.stem for p in EXECUTED]
# Folders of some machine: the CI and container homes and work folders, Linux and macOS
# homes, temporary files, installed packages; and this checkout's own root and home.
MACHINE_PATHS = ("/work/", "/root/", "/home/", "/Users/", "/tmp/", "site-packages",
                 f"{paths.ROOT}/", f"{Path.home()}/")


def _text_outputs(notebook):
    """(cell id, text) of every output's text: streams, errors, ``text/*`` and JSON data."""
    for cell in json.loads(notebook.read_text())["cells"]:
        for output in cell.get("outputs", []):
            parts = [output.get(key, "") for key in ("text", "ename", "evalue", "traceback")]
            parts += [value for mime, value in output.get("data", {}).items()
                      if not mime.startswith("image/")]
            yield cell.get("id"), json.dumps(parts)


def test_there_are_executed_notebooks():
    assert EXECUTED, f"no executed notebooks in {paths.EXECUTED_DIR}"


@pytest.mark.parametrize("notebook", EXECUTED, ids=IDS)
def test_no_machine_paths(notebook):
    content = json.loads(notebook.read_text())
    searched = [("metadata", json.dumps(content["metadata"]))]
    searched += [(c.get("id"), "".join(c["source"])) for c in content["cells"]]
    searched += list(_text_outputs(notebook))
    found = sorted({(where, path) for where, text in searched for path in MACHINE_PATHS if path in text})
    assert not found, (f"{notebook.name} names paths of the machine that executed it (cell, path): {found}; "
                       "re-execute it with `make report FORCE=1`")


@pytest.mark.parametrize("notebook", EXECUTED, ids=IDS)
def test_no_warnings_on_stderr(notebook):
    stderr = [(cell.get("id"), "".join(output["text"]))
              for cell in json.loads(notebook.read_text())["cells"] for output in cell.get("outputs", [])
              if output["output_type"] == "stream" and output["name"] == "stderr"]
    warnings = [(cell, text.strip().splitlines()[0]) for cell, text in stderr if "Warning" in text]
    assert not warnings, f"{notebook.name} stores warnings (cell, first line): {warnings}"
