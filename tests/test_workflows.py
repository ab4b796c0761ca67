"""The GitHub workflows: CI runs `make test`; the manuscript is rendered and published with Quarto's actions.

actionlint (the `lint` extra, `pip install -c constraints.txt -e .[lint]`; its
install downloads the actionlint binary from GitHub, so it is not part of
`all`) checks them as GitHub would read them; without it that test is skipped
and says so. What the workflows must do is checked here in any case.
"""

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import yaml

from rbmlib import paths

WORKFLOWS = Path(paths.ROOT) / ".github" / "workflows"


def _workflow(name):
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as true
    return workflow


def _steps(workflow):
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def _actionlint():
    for command in ("actionlint", str(Path(sysconfig.get_path("scripts")) / "actionlint")):
        if shutil.which(command):
            return shutil.which(command)
    pytest.skip("actionlint is not installed: pip install -c constraints.txt -e .[lint] "
                "(downloads the actionlint binary from GitHub while installing)")


def test_actionlint_finds_nothing_in_the_workflows():
    files = sorted(str(path) for path in WORKFLOWS.glob("*.yml"))
    assert len(files) >= 2
    out = subprocess.run([_actionlint(), "-no-color", *files], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"actionlint:\n{out.stdout}{out.stderr}"


def test_ci_runs_make_test_after_checkout_and_python():
    workflow = _workflow("ci.yml")
    assert "push" in workflow["on"] and "pull_request" in workflow["on"]
    steps = _steps(workflow)
    uses = [step.get("uses", "") for step in steps]
    runs = [step.get("run", "") for step in steps]
    assert uses[0].startswith("actions/checkout@") and any(u.startswith("actions/setup-python@") for u in uses)
    assert runs[-1].strip() == "make test"
    python = next(step for step in steps if step.get("uses", "").startswith("actions/setup-python@"))
    assert str(python["with"]["python-version"]) == "3.11"  # the version the pins were tested on


def test_publish_renders_and_pushes_the_manuscript_to_gh_pages_with_quarto_s_actions():
    workflow = _workflow("publish.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert workflow["permissions"]["contents"] == "write"  # it pushes the gh-pages branch
    steps = _steps(workflow)
    uses = [step.get("uses", "") for step in steps]
    assert uses[0].startswith("actions/checkout@")
    assert "quarto-dev/quarto-actions/setup@v2" in uses and "quarto-dev/quarto-actions/publish@v2" in uses
    assert uses.index("quarto-dev/quarto-actions/setup@v2") < uses.index("quarto-dev/quarto-actions/publish@v2")
    publish = steps[uses.index("quarto-dev/quarto-actions/publish@v2")]
    assert publish["with"]["target"] == "gh-pages"
    assert publish["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"


def test_both_install_the_quarto_version_the_render_extra_pins():
    import tomllib

    extras = tomllib.loads((Path(paths.ROOT) / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pinned = next(req.split("==")[1] for req in extras["render"] if req.startswith("quarto-cli=="))
    for name in ("ci.yml", "publish.yml"):
        setup = next(step for step in _steps(_workflow(name))
                     if step.get("uses") == "quarto-dev/quarto-actions/setup@v2")
        assert str(setup["with"]["version"]) == pinned, name
