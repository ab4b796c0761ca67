"""Tables as Markdown, so that Quarto turns a notebook cell's output into a real table.

A notebook cell labelled ``tbl-...`` that displays ``Markdown(to_markdown(df))``
becomes a captioned, cross-referenceable table in HTML and in the PDF alike
(an HTML table from ``df`` would only look right in HTML).
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd


def _cell(value, floatfmt):
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return "" if np.isnan(value) else format(float(value), floatfmt)
    return str(value).replace("|", r"\|")


def to_markdown(df: pd.DataFrame, *, index=True, floatfmt=".3f", formats=None) -> str:
    """A pipe table: integers with thousands separators, floats with ``floatfmt``.

    Parameters
    ----------
    df : DataFrame
    index : bool
        Write the index as the first column (named after ``df.index.name``).
    floatfmt : str
        Format spec for floats, e.g. ".3f" or ".1%".
    formats : dict of column -> format spec, optional
        Overrides ``floatfmt`` for the named columns.

    Returns
    -------
    str
        Header, alignment row (numbers right-aligned) and one line per row.
    """
    formats = formats or {}
    table = df.reset_index() if index else df
    if index and df.index.name is None:
        table = table.rename(columns={"index": ""})
    header = [str(c) for c in table.columns]
    numeric = [pd.api.types.is_numeric_dtype(table[c]) for c in table.columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if num else ":---" for num in numeric) + "|",
    ]
    for row in table.itertuples(index=False):
        cells = [_cell(v, formats.get(c, floatfmt)) for c, v in zip(table.columns, row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
