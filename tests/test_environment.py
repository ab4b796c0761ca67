"""The pip route (pyproject.toml), the conda route (environment.yml) and the lock agree."""

import re
import tomllib

import yaml

from rbmlib import paths


def _normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(requirements):
    pins = {}
    for req in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", req.strip())
        if match:
            pins[_normalise(match[1])] = match[2]
    return pins


def _pyproject_pins(*, every_extra=True):
    """Requirements and pins of the core and its extras: every extra, or those that ``all`` names.

    The conda environment is ``all``; extras outside it (``bench``, ``render``) are installed on demand.
    """
    project = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    in_all = set(re.fullmatch(r"rbmlib\[(.*)\]", extras["all"][0])[1].split(","))
    requirements = list(project["dependencies"])
    for group, reqs in extras.items():
        if every_extra or group in in_all:
            requirements += [r for r in reqs if not r.startswith("rbmlib")]
    return requirements, _pins(requirements)


def _conda_pins():
    env = yaml.safe_load((paths.ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return [r for r in pip_section if not r.startswith("-e")], env


def test_every_requirement_is_pinned_exactly():
    requirements, pins = _pyproject_pins()
    assert len(pins) == len(requirements), "every dependency in pyproject.toml uses =="


def test_conda_environment_names_the_same_packages_and_versions():
    _, pip_pins = _pyproject_pins(every_extra=False)
    conda_requirements, env = _conda_pins()
    assert _pins(conda_requirements) == pip_pins
    assert "python=3.11" in env["dependencies"]


def test_lock_file_agrees_with_the_pins():
    _, pins = _pyproject_pins()
    lock = _pins(line for line in (paths.ROOT / "constraints.txt").read_text().splitlines()
                 if line and not line.startswith("#"))
    mismatched = {name: (version, lock.get(name)) for name, version in pins.items() if lock.get(name) != version}
    assert not mismatched, f"constraints.txt disagrees with pyproject.toml: {mismatched} (run `make lock`)"


def test_torch_and_torchvision_installed_are_the_pinned_pair():
    import torch
    import torchvision

    _, pins = _pyproject_pins()
    assert torch.__version__.split("+")[0] == pins["torch"]
    assert torchvision.__version__.split("+")[0] == pins["torchvision"]
