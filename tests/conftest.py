"""Fixtures shared by the test folders (tests/, tests/tuning/, tests/report/).

``fashion_mnist``: the real data set, found and verified without downloading;
tests that need it are skipped with the reason when it is missing.
Tests marked ``slow`` (seconds to minutes each: real training, notebooks,
servers) can be left out with ``pytest -m "not slow"``.

``NotebookChecks``: registered when nbval runs the source notebooks (pyproject.toml's
``--nbval-lax``); it marks their cells slow, starts their kernels with one thread and
without tqdm's bars, skips them without the data, and fails a labelled cell whose new
outputs lack its figure(s) or its Markdown, or a notebook that runs too long.
"""

from __future__ import annotations

import functools

import pytest

from rbmlib import data


@pytest.fixture(scope="session")
def fashion_mnist():
    """The folder holding the verified Fashion-MNIST files (skips the test when there is none)."""
    try:
        return data.ensure_data(download=False)
    except data.DataError as exc:
        pytest.skip(f"Fashion-MNIST is not available here: {exc}")


# ----------------------------------------------------------------------------- notebooks under nbval
#
# `pytest` collects the source notebooks too (pyproject.toml: testpaths, --nbval-lax): nbval runs
# every cell in one kernel, checks that none fails, and compares the cells tagged
# nbval-check-output with their stored outputs (tests/nbval_sanitize.cfg). The plugin below adds
# what nbval does not know about this project, as papermill's execution test did before it.

#: Seconds that one notebook may take at smoke scale: CI must stay fast.
NOTEBOOK_SECONDS = 150


def _subcaptions(source: str) -> list[str]:
    """The items of a cell's `#| fig-subcap:` list (empty when it has none)."""
    import re

    lines = source.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"#\|\s*fig-subcap:\s*$", line)), None)
    if start is None:
        return []
    items = []
    for line in lines[start + 1:]:
        match = re.match(r"#\|\s+-\s+(.*)", line)
        if not match:
            break
        items.append(match[1])
    return items


def _outputs_problem(cell, outputs) -> str | None:
    """What is wrong with the new outputs of a labelled cell, or None: a figure draws its images
    (one, or one per sub-caption), a table or sentence emits Markdown (it renders in HTML and
    PDF alike)."""
    from quarto_cells import quarto_label

    label = quarto_label(cell)
    if label is None:
        return None
    kinds = [key for output in outputs for key in output.get("data", {})]
    if label.startswith("fig-"):
        drawn = kinds.count("image/png")
        subcaptions = _subcaptions(cell["source"])
        if subcaptions:  # a panel per sub-caption (a model's, in the tuning figures)
            if drawn != len(subcaptions):
                return f"{label} must draw {len(subcaptions)} figures (one per sub-caption), drew {drawn}"
        elif drawn != 1:
            return f"{label} must draw 1 figure, drew {drawn}"
    elif "text/markdown" not in kinds:
        return f"{label} must emit Markdown (a table or a sentence)"
    return None


@functools.cache
def _data_missing() -> str | None:
    """Why the data cannot be used (verified once per session), or None."""
    try:
        data.ensure_data(download=False)
    except data.DataError as exc:
        return str(exc)
    return None


class NotebookChecks:
    """Registered when nbval runs: the kernel's environment, the data, labelled outputs, a time limit."""

    def __init__(self):
        self.started = {}  # notebook -> perf_counter() when its first cell started

    @staticmethod
    def _is_cell(item) -> bool:
        from nbval.plugin import IPyNbCell

        return isinstance(item, IPyNbCell)

    def pytest_collection_modifyitems(self, items):
        for item in items:
            if self._is_cell(item):  # minutes in all: `pytest -m "not slow"` leaves them out
                item.add_marker(pytest.mark.slow)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item):
        if not self._is_cell(item):
            return (yield)
        missing = _data_missing()
        if missing:
            pytest.skip(f"Fashion-MNIST is not available here: {missing}")
        from rbmlib.report import pipeline

        # The kernel starts with the notebook's first cell and inherits these: one thread, the
        # numbers of the stored outputs; no tqdm bars or warnings (as `python -m rbmlib.report`).
        with pipeline.kernel_environment({**pipeline.KERNEL_ENVIRONMENT,
                                          "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        if not self._is_cell(item):
            return (yield)
        import time

        start = self.started.setdefault(item.parent.path, time.perf_counter())
        result = yield
        problem = _outputs_problem(item.cell, item.test_outputs or [])
        seconds = time.perf_counter() - start
        if problem is None and seconds > NOTEBOOK_SECONDS:
            problem = (f"{item.parent.path.name} has run {seconds:.0f} s at smoke scale by this cell "
                       f"(limit {NOTEBOOK_SECONDS} s); keep CI fast")
        if problem:
            item.raise_cell_error(problem)
        return result


def pytest_configure(config):
    if getattr(config.option, "nbval", False) or getattr(config.option, "nbval_lax", False):
        config.pluginmanager.register(NotebookChecks(), "rbm-report-notebook-checks")
