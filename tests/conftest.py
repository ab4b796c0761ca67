"""Fixtures shared by the test folders (tests/, tests/tuning/, tests/report/).

``fashion_mnist``: the real data set, found and verified without downloading;
tests that need it are skipped with the reason when it is missing.
Tests marked ``slow`` (seconds to minutes each: real training, notebooks,
servers) can be left out with ``pytest -m "not slow"``.
"""

from __future__ import annotations

import pytest

from rbmlib import data


@pytest.fixture(scope="session")
def fashion_mnist():
    """The folder holding the verified Fashion-MNIST files (skips the test when there is none)."""
    try:
        return data.ensure_data(download=False)
    except data.DataError as exc:
        pytest.skip(f"Fashion-MNIST is not available here: {exc}")
