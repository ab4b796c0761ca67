"""Quarto's view of a notebook cell, shared by the manuscript and notebook tests."""

import re


def quarto_label(cell):
    """The Quarto label of a code cell: only the leading ``#|`` lines count, as in Quarto."""
    for line in "".join(cell.get("source", "")).splitlines():
        if not line.startswith("#|"):
            return None
        match = re.match(r"#\|\s*label:\s*(\S+)", line)
        if match:
            return match.group(1)
    return None
