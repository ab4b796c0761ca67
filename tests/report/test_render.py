"""The manuscript rendered for real: `quarto render` of the committed executed notebooks, HTML and PDF.

Needs Quarto on the PATH (`.ci/run` puts the project's shared build there when
no Quarto is installed); without it the test is skipped and says so. The
static checks of the article are in test_manuscript.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rbmlib import paths

pytestmark = pytest.mark.slow  # about a minute

ROOT = Path(paths.ROOT)
EMBED = re.compile(r"\{\{<\s*embed\s+[^\s#>]+#(?P<label>[^\s>]+)[^>]*>\}\}")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The project copied to a temporary folder and rendered there: (quarto's output, output folder)."""
    quarto = shutil.which("quarto")
    if quarto is None:
        pytest.skip("Quarto is not on the PATH: install it (https://quarto.org/docs/get-started/), "
                    "or run .ci/run, which uses the project's shared build")
    work = tmp_path_factory.mktemp("render")
    for name in ("_quarto.yml", "index.qmd", "references.bib", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, work / name)
    shutil.copytree(ROOT / "notebooks" / "executed", work / "notebooks" / "executed")
    out = subprocess.run([quarto, "render"], cwd=work, capture_output=True, text=True, timeout=600)
    log = out.stdout + out.stderr
    assert out.returncode == 0, f"quarto render failed:\n{log[-3000:]}"
    return log, work / "_manuscript"


def test_render_succeeds_without_warnings(rendered):
    log, out = rendered
    warnings = [line for line in log.splitlines() if re.search(r"\bWARN(ING)?\b", line)]
    assert not warnings, "quarto render warned:\n" + "\n".join(warnings)
    assert (out / "index.html").exists() and (out / "index.pdf").exists()


def test_html_has_every_embed_and_no_unresolved_reference(rendered):
    _, out = rendered
    html = (out / "index.html").read_text()
    assert "?@" not in html and "??" not in re.sub(r"<script.*?</script>", "", html, flags=re.S)
    labels = [m["label"] for m in EMBED.finditer((ROOT / "index.qmd").read_text())]
    missing = [label for label in labels if f'id="{label}"' not in html and label not in html]
    assert not missing, f"embeds missing from the HTML: {missing}"


def test_pdf_has_a_caption_for_every_embedded_table_and_figure(rendered):
    _, out = rendered
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (Debian's poppler-utils) is not installed")
    text = subprocess.run(["pdftotext", str(out / "index.pdf"), "-"], capture_output=True, text=True).stdout
    labels = [m["label"] for m in EMBED.finditer((ROOT / "index.qmd").read_text())]
    n_tables = len({label for label in labels if label.startswith("tbl-")})
    n_figures = len({label for label in labels if label.startswith("fig-")})
    # Captions are "Table N:" / "Figure N:"; prose refers to them without the colon.
    assert len(set(re.findall(r"Table (\d+):", text))) == n_tables
    assert len(set(re.findall(r"Figure (\d+):", text))) == n_figures
    assert "Every look at the test set" in text


def test_pdf_equations_convert_and_the_bibliography_has_one_heading(rendered):
    _, out = rendered
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (Debian's poppler-utils) is not installed")
    text = subprocess.run(["pdftotext", str(out / "index.pdf"), "-"], capture_output=True, text=True).stdout
    # \big\langle once reached Typst as the literal text "angle.l"; Typst adds its own heading to the bibliography.
    assert "angle.l" not in text and "angle.r" not in text
    assert text.count("Bibliography") == 1 and not re.search(r"^References$", text, flags=re.M)
    html = (out / "index.html").read_text()
    assert 'id="refs"' in html and html.count('id="ref-') >= 20  # the HTML keeps its reference list
