"""drafts/protocol2-index.qmd, the article that replaces index.qmd once protocol 2 is evaluated:
until then it is not rendered, so these static checks keep it in step with the notebooks it embeds."""

import json
import re
from pathlib import Path

import pytest
from quarto_cells import quarto_label

from rbmlib import paths

ROOT = Path(paths.ROOT)
DRAFT = ROOT / "drafts" / "protocol2-index.qmd"
EMBED = re.compile(r"\{\{<\s*embed\s+notebooks/executed/(?P<notebook>[\w.]+)#(?P<label>[^\s>]+)\s*>\}\}")
CROSSREF = re.compile(r"(?<![\w@])-?@(?P<label>(?:fig|tbl|sec)-[A-Za-z0-9_-]*[A-Za-z0-9_])")
SECTION = re.compile(r"\{#(?P<label>sec-[A-Za-z0-9_-]+)[^}]*\}")


def _text() -> str:
    return re.sub(r"<!--.*?-->", "", DRAFT.read_text(), flags=re.S)


def _embeds() -> list[tuple[str, str]]:
    return [(m["notebook"], m["label"]) for m in EMBED.finditer(_text())]


def _labels(notebook: str) -> set[str]:
    cells = json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]
    return {quarto_label(cell) for cell in cells} - {None}


@pytest.mark.parametrize("notebook,label", _embeds(), ids=[f"{n}#{l}" for n, l in _embeds()])
def test_every_embed_names_a_labelled_cell_of_its_source_notebook(notebook, label):
    assert label in _labels(notebook), f"{notebook} has no cell labelled {label!r}"


def test_every_cross_reference_has_its_label_and_every_embedded_float_is_referenced():
    text = _text()
    embedded = {label for _, label in _embeds() if label.startswith(("fig-", "tbl-"))}
    referenced = {m["label"] for m in CROSSREF.finditer(EMBED.sub("", text))}
    sections = {m["label"] for m in SECTION.finditer(text)}
    assert not referenced - embedded - sections, f"no such label: {sorted(referenced - embedded - sections)}"
    assert not embedded - referenced, f"embedded, never referenced: {sorted(embedded - referenced)}"
