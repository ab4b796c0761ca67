"""Static checks of the Quarto manuscript, without Quarto.

The article (index.qmd) must: be a manuscript project that renders without
running code; embed only cells that exist, with a label, in the source notebooks
(and have outputs in the executed copies that are there); cite only keys that
references.bib defines; and cross-reference only figures, tables, equations and
sections that exist.
"""

import json
import re
from pathlib import Path

import bibtexparser
import pytest
import yaml

from quarto_cells import quarto_label
from rbmlib import paths
from rbmlib.report import variables

ROOT = Path(paths.ROOT)
ARTICLE = ROOT / "index.qmd"
CONFIG = ROOT / "_quarto.yml"
BIB = ROOT / "references.bib"

EMBED = re.compile(r"\{\{<\s*embed\s+(?P<path>[^\s#>]+)#(?P<label>[^\s>]+)[^>]*>\}\}")
CROSSREF = re.compile(r"(?<![\w@])-?@(?P<label>(?:fig|tbl|eq|sec)-[A-Za-z0-9_-]*[A-Za-z0-9_])")
CITATION = re.compile(r"(?<![\w@.])-?@(?P<key>[A-Za-z][A-Za-z0-9_:-]*[A-Za-z0-9_])")
LABEL_DEF = re.compile(r"\{#(?P<label>(?:eq|sec)-[A-Za-z0-9_-]+)[^}]*\}")
CROSSREF_PREFIXES = ("fig-", "tbl-", "eq-", "sec-")
VARIABLE = re.compile(r"\{\{<\s*var\s+(?P<name>[\w.-]+)\s*>\}\}")


def _strip_comments(text):
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


def _prose():
    """The article without HTML comments, code spans and embed shortcodes."""
    text = _strip_comments(ARTICLE.read_text())
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return EMBED.sub("", text)


def _embeds():
    return [(m["path"], m["label"]) for m in EMBED.finditer(_strip_comments(ARTICLE.read_text()))]


def _find_cell(notebook_path, label):
    cells = json.loads(Path(notebook_path).read_text())["cells"]
    for cell in cells:
        if cell.get("id") == label or quarto_label(cell) == label:
            return cell
    return None


def test_config_declares_a_manuscript_that_renders_without_running_code():
    config = yaml.safe_load(CONFIG.read_text())
    assert config["project"]["type"] == "manuscript"
    assert config["manuscript"]["article"] == "index.qmd" and ARTICLE.exists()
    formats = config["format"]
    assert formats["html"]["code-fold"] is True and formats["html"]["code-tools"] is True
    assert "typst" in formats, "the PDF is built with Typst (no LaTeX needed)"
    assert config["execute"]["enabled"] is False
    assert (ROOT / config["bibliography"]).exists()
    for entry in config["manuscript"]["notebooks"]:
        executed = Path(entry["notebook"])
        assert executed.parent == Path("notebooks/executed"), executed
        assert (ROOT / "notebooks" / executed.name).exists(), f"no source notebook for {executed}"


def test_article_has_no_code_to_execute():
    text = _strip_comments(ARTICLE.read_text())
    # Raw output blocks ({=typst}) pass through to one format; anything else in braces would execute.
    assert not re.search(r"^```+[ \t]*\{(?!=)", text, re.M), "index.qmd must not contain executable code cells"
    assert not re.search(r"`\{(python|r|julia)\}", text), "index.qmd must not contain inline code"


def test_embed_shortcodes_are_not_hidden_in_comments():
    for comment in re.findall(r"<!--.*?-->", ARTICLE.read_text(), flags=re.S):
        assert "{{<" not in comment, "Quarto may still expand a shortcode inside an HTML comment"


def test_the_article_embeds_something():
    assert len(_embeds()) >= 10


@pytest.mark.parametrize("path,label", _embeds(), ids=[f"{p}#{l}" for p, l in _embeds()])
def test_embedded_cell_exists_and_has_outputs(path, label):
    executed = ROOT / path
    assert executed.parent == ROOT / "notebooks" / "executed", f"embed the executed copy, not {path}"
    source = ROOT / "notebooks" / executed.name
    assert source.exists(), f"{path}: no source notebook {source.name}"
    cell = _find_cell(source, label)
    assert cell is not None, f"{source.name} has no cell labelled {label!r}"
    assert quarto_label(cell) == label, f"cell {label!r} needs a '#| label: {label}' line"
    if not executed.exists():
        pytest.skip(f"{path} not executed yet (python -m rbmlib.report)")
    cell = _find_cell(executed, label)
    assert cell is not None and cell["outputs"], f"{path}: cell {label!r} has no outputs"
    assert not [o for o in cell["outputs"] if o["output_type"] == "error"]
    kinds = {key for o in cell["outputs"] for key in o.get("data", {})}
    if label.startswith("fig-"):
        assert "image/png" in kinds, f"{label}: a figure cell must output an image"
    else:
        assert "text/markdown" in kinds, f"{label}: tables and sentences are emitted as Markdown"


def _bib():
    library = bibtexparser.parse_file(str(BIB))
    return library


def test_bibliography_parses_cleanly():
    library = _bib()
    assert not library.failed_blocks, [b.error for b in library.failed_blocks if hasattr(b, "error")]
    keys = [entry.key for entry in library.entries]
    assert len(keys) == len(set(keys)), "duplicate keys"
    for entry in library.entries:
        fields = {f.key.lower() for f in entry.fields}
        assert {"author", "title", "year"} <= fields, f"{entry.key} lacks author, title or year"
        venue = {"journal", "booktitle", "publisher", "institution", "howpublished", "eprint", "note"}
        assert fields & venue, f"{entry.key} says nowhere where it appeared"


def _citations():
    return {m["key"] for m in CITATION.finditer(_prose()) if not m["key"].startswith(CROSSREF_PREFIXES)}


def test_every_citation_resolves():
    keys = {entry.key for entry in _bib().entries}
    cited = _citations()
    assert cited, "no citations found"
    assert not cited - keys, f"cited but not in references.bib: {sorted(cited - keys)}"


def test_every_reference_is_cited():
    keys = {entry.key for entry in _bib().entries}
    assert not keys - _citations(), f"in references.bib but never cited: {sorted(keys - _citations())}"


def _defined_labels():
    text = _strip_comments(ARTICLE.read_text())
    defined = [m["label"] for m in LABEL_DEF.finditer(text)]
    embedded = [label for _, label in _embeds() if label.startswith(("fig-", "tbl-"))]
    return defined, embedded


def test_labels_are_unique():
    defined, embedded = _defined_labels()
    for labels in (defined, embedded):
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        assert not duplicates, f"labels defined twice: {duplicates}"
    assert any(label.startswith("eq-") for label in defined)


def test_every_cross_reference_has_its_label():
    defined, embedded = _defined_labels()
    referenced = {m["label"] for m in CROSSREF.finditer(_prose())}
    missing = referenced - set(defined) - set(embedded)
    assert not missing, f"cross-references without a label: {sorted(missing)}"


def test_every_embedded_figure_and_table_is_referenced_in_the_text():
    _, embedded = _defined_labels()
    referenced = {m["label"] for m in CROSSREF.finditer(_prose())}
    assert not set(embedded) - referenced, f"never referenced: {sorted(set(embedded) - referenced)}"


def test_every_numbered_equation_is_referenced():
    defined, _ = _defined_labels()
    referenced = {m["label"] for m in CROSSREF.finditer(_prose())}
    unused = [label for label in defined if label.startswith("eq-") and label not in referenced]
    assert not unused, f"equations never referenced: {unused}"


def _quoted_variables(text=None):
    return VARIABLE.findall(_strip_comments(ARTICLE.read_text() if text is None else text))


def test_committed_variables_are_current():
    """_variables.yml is what the pipeline writes from the committed results, character for character."""
    committed = (ROOT / variables.VARIABLES_FILE).read_text()
    assert committed == variables.variables_text(variables.RENDERED_PRESET), (
        f"{variables.VARIABLES_FILE} is out of date: run `python -m rbmlib.report --write-variables` and commit it")


def test_negative_numbers_in_variables_carry_the_minus_sign():
    defined = yaml.safe_load((ROOT / variables.VARIABLES_FILE).read_text())
    hyphened = {k: v for k, v in defined.items() if re.search(r"(?<![\w.])-\d", str(v))}
    assert not hyphened, f"a hyphen for a minus sign, which the PDF sets as a hyphen: {hyphened}"


def test_every_quoted_variable_is_defined():
    defined = yaml.safe_load((ROOT / variables.VARIABLES_FILE).read_text())
    quoted = _quoted_variables()
    assert quoted, "the prose quotes no generated number"
    assert not set(quoted) - set(defined), f"quoted but not in {variables.VARIABLES_FILE}: {sorted(set(quoted) - set(defined))}"


def test_abstract_and_introduction_lead_with_the_generated_answer():
    text = _strip_comments(ARTICLE.read_text())
    abstract = yaml.safe_load(text.split("---")[1])["abstract"]
    first_paragraph = text.split("## Introduction", 1)[1].split("\n\n")[1]
    for where, part in (("abstract", abstract.split(". ")[1:3]), ("introduction", [first_paragraph])):
        assert _quoted_variables(" ".join(part)), f"the {where} must open with the answer, in generated numbers"
    assert not re.search(r"\d+\.\d+ ?%", abstract + first_paragraph), "type no result by hand: {{< var name >}}"
