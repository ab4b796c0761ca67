"""Every path the project uses, in one place.

Notebooks, scripts and tests import from here instead of writing ``../``.
The project root is the folder that holds ``pyproject.toml``; set
``RBMLIB_ROOT`` to point an installed copy of the package at another checkout.
"""

from __future__ import annotations

import os
from pathlib import Path


def _find_root() -> Path:
    env = os.environ.get("RBMLIB_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    # An installed (non-editable) package: fall back to the working directory.
    return Path.cwd().resolve()


ROOT = _find_root()
#: Where Fashion-MNIST is cached (torchvision's ``root``); ``RBMLIB_DATA_DIR`` overrides it.
DATA_DIR = Path(os.environ.get("RBMLIB_DATA_DIR", ROOT / "data")).expanduser()
#: Debian's ``dataset-fashion-mnist`` package installs the gzip IDX files here.
DEBIAN_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
RESULTS_DIR = ROOT / "results"
NOTEBOOKS_DIR = ROOT / "notebooks"
BENCHMARKS_DIR = RESULTS_DIR / "benchmarks"
