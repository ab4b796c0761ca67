"""Environment variables set for the length of a ``with`` block, then restored."""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def temporary_environ(values: dict):
    """Set ``values`` in ``os.environ`` (children started inside inherit them); restore on exit."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update({name: str(value) for name, value in values.items()})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
