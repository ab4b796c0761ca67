"""The manuscript rendered for real: `quarto render` of the committed executed notebooks, HTML and PDF.

Needs Quarto, on the PATH (`.ci/run` puts the project's shared build there when
no Quarto is installed) or from the `render` extra; without it the tests are
skipped and say so. The PDF
checks need poppler-utils (pdftotext, pdftoppm) and the layout check of the
HTML needs Chromium (`make test` installs both with apt where it can); each is
skipped, saying why, when its tool is missing. The static checks of the
article are in test_manuscript.py.
"""

from __future__ import annotations

import functools
import html as html_lib
import http.server
import json
import re
import shutil
import subprocess
import threading
import unicodedata
from pathlib import Path

import bibtexparser
import pytest
import yaml

from quarto_cells import quarto_label
from rbmlib import paths
from rbmlib.report.pipeline import VARIABLES_FILE, find_quarto

pytestmark = pytest.mark.slow  # about a minute

ROOT = Path(paths.ROOT)
EMBED = re.compile(r"\{\{<\s*embed\s+(?P<path>[^\s#>]+)#(?P<label>[^\s>]+)[^>]*>\}\}")
#: What the tuning figures are waiting for: their drawing code makes strips that fit a page, and
#: the figures in notebooks/executed/04_tuning.ipynb were drawn before it, taller than a page.


def _config() -> dict:
    return yaml.safe_load((ROOT / "_quarto.yml").read_text())


def _project_files() -> set[str]:
    """The project's files that rendering reads: the article, the configuration and what it names."""
    config = _config()
    css = config["format"]["html"].get("css", [])
    # A filter is a path, or a mapping with its path and the stage it runs at.
    filters = [f["path"] if isinstance(f, dict) else f for f in config.get("filters", [])]
    named = [config.get("bibliography"), config.get("csl"), *filters,
             *([css] if isinstance(css, str) else css), *config["manuscript"].get("environment", [])]
    # Quarto reads _variables.yml by its name: the numbers of {{< var name >}}.
    return {"_quarto.yml", "index.qmd", VARIABLES_FILE, *(name for name in named if name)}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The project copied to a temporary folder and rendered there: (quarto's output, output folder)."""
    quarto = find_quarto()  # the PATH's, else the `render` extra's, as `make report` finds it
    if quarto is None:
        pytest.skip("Quarto is not installed: pip install -e .[render], or see "
                    "https://quarto.org/docs/get-started/, or run .ci/run, which uses the project's "
                    "shared build")
    work = tmp_path_factory.mktemp("render")
    for name in sorted(_project_files()):
        shutil.copy(ROOT / name, work / name)
    shutil.copytree(ROOT / "notebooks" / "executed", work / "notebooks" / "executed")
    out = subprocess.run([quarto, "render"], cwd=work, capture_output=True, text=True, timeout=600)
    log = out.stdout + out.stderr
    assert out.returncode == 0, f"quarto render failed:\n{log[-3000:]}"
    return log, work / "_manuscript"


def _embeds() -> list[tuple[str, str]]:
    """(notebook path, label) of every embed of the article, in order."""
    text = re.sub(r"<!--.*?-->", "", (ROOT / "index.qmd").read_text(), flags=re.S)
    return [(m["path"], m["label"]) for m in EMBED.finditer(text)]


def _embedded_cells() -> list[tuple[str, dict]]:
    """(label, cell) of every embedded cell, read from the executed notebooks that the article embeds."""
    cells = []
    for path, label in _embeds():
        notebook = json.loads((ROOT / path).read_text())
        cells += [(label, cell) for cell in notebook["cells"] if quarto_label(cell) == label]
    return cells


def _cell_options(cell) -> dict:
    """The cell's leading ``#|`` option lines, read as YAML, as Quarto reads them."""
    lines = []
    for line in "".join(cell["source"]).splitlines():
        if not line.startswith("#|"):
            break
        lines.append(line[2:].removeprefix(" "))
    return yaml.safe_load("\n".join(lines)) or {}


def _squash(text: str) -> str:
    """Lower case without spaces and hyphens: text that the PDF's line breaks and hyphens leave comparable."""
    return re.sub(r"[\s\-\u00ad\u2010\u2011]+", "", html_lib.unescape(text)).lower()


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} (Debian's poppler-utils) is not installed; `make test` installs it "
                    "where apt can")
    return path


@functools.cache
def _pdf_text(pdf: Path) -> str:
    out = subprocess.run([_need("pdftotext"), str(pdf), "-"], capture_output=True, text=True, check=True)
    return out.stdout


@functools.cache
def _pdf_pages(pdf: Path) -> list[dict]:
    """Each page of the PDF: its size and the words on it with their boxes (``pdftotext -bbox``)."""
    out = subprocess.run([_need("pdftotext"), "-bbox", str(pdf), "-"],
                         capture_output=True, text=True, check=True).stdout
    pages = []
    for width, height, body in re.findall(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', out,
                                          flags=re.S):
        words = [dict(zip(("x0", "y0", "x1", "y1"), map(float, box)), text=html_lib.unescape(word))
                 for *box, word in re.findall(r'<word xMin="([\d.-]+)" yMin="([\d.-]+)" xMax="([\d.-]+)" '
                                              r'yMax="([\d.-]+)">(.*?)</word>', body)]
        pages.append({"width": float(width), "height": float(height), "words": words})
    return pages


def _on_page_text(pdf: Path) -> str:
    """The words of the PDF that lie within their page, in reading order (text run off a page is left out)."""
    return " ".join(w["text"] for page in _pdf_pages(pdf) for w in page["words"]
                    if min(w["x0"], w["y0"]) >= 0 and w["x1"] <= page["width"] and w["y1"] <= page["height"])


def test_render_succeeds_without_warnings(rendered):
    log, out = rendered
    warnings = [line for line in log.splitlines() if re.search(r"\bWARN(ING)?\b", line)]
    assert not warnings, "quarto render warned:\n" + "\n".join(warnings)
    assert (out / "index.html").exists() and (out / "index.pdf").exists()


def test_html_has_every_embed_and_no_unresolved_reference(rendered):
    _, out = rendered
    html = (out / "index.html").read_text()
    assert "?@" not in html and "??" not in re.sub(r"<script.*?</script>", "", html, flags=re.S)
    labels = [label for _, label in _embeds()]
    missing = [label for label in labels if f'id="{label}"' not in html and label not in html]
    assert not missing, f"embeds missing from the HTML: {missing}"


def test_generated_numbers_are_in_both_formats(rendered):
    """Every {{< var name >}} of the article shows its value from _variables.yml; no shortcode is left."""
    _, out = rendered
    text = re.sub(r"<!--.*?-->", "", (ROOT / "index.qmd").read_text(), flags=re.S)
    quoted = set(re.findall(r"\{\{<\s*var\s+([\w.-]+)\s*>\}\}", text))
    values = yaml.safe_load((ROOT / VARIABLES_FILE).read_text())
    assert quoted
    # The article up to the end of <main>: after it, code-tools' "view source" holds index.qmd as typed.
    article = (out / "index.html").read_text().split("</main>")[0]
    html = html_lib.unescape(re.sub(r"<[^>]+>", " ", article))
    pdf = _squash(_pdf_text(out / "index.pdf"))
    for name, shown in (("HTML", html), ("PDF", pdf)):
        assert "{{<" not in shown and "{{&lt;" not in shown and "?var" not in shown, f"{name}: a shortcode is left"
    html_words = re.sub(r"\s+", " ", html)
    missing = {"HTML": [n for n in quoted if str(values[n]) not in html_words],
               "PDF": [n for n in quoted if _squash(str(values[n])) not in pdf]}
    assert missing == {"HTML": [], "PDF": []}, f"generated numbers missing: {missing}"


def test_negative_numbers_in_the_text_have_a_minus_sign_in_both_formats(rendered):
    """numbers.lua: a generated "-1.47" reads "−1.47"; words such as CD-1 and ranges such as
    24-33 keep their hyphen, and code and mathematics are left alone."""
    _, out = rendered
    article = (out / "index.html").read_text().split("</main>")[0]
    article = re.sub(r"<(script|style|pre|code|math)\b.*?</\1>", " ", article, flags=re.S)
    html = html_lib.unescape(re.sub(r"<[^>]+>", " ", article))
    pdf = _pdf_text(out / "index.pdf")
    hyphen_number = re.compile(r".{0,30}(?<![\w.\-\u2212])-\d.{0,10}")
    for name, text in (("HTML", html), ("PDF", pdf)):
        assert not hyphen_number.findall(text), f"{name}: hyphens as minus signs: {hyphen_number.findall(text)}"
        assert "\u2212" in text and "CD-1" in text, name


def test_html_math_is_mathml_and_nothing_is_loaded_from_another_site(rendered):
    """Offline readers see the equations: MathML, drawn by the browser, instead of MathJax from a CDN."""
    _, out = rendered
    html = (out / "index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*\bsrc=\"([^\"]+)\"", html)
    styles = [re.search(r"\bhref=\"([^\"]+)\"", tag)[1] for tag in re.findall(r"<link\b[^>]*>", html)
              if "stylesheet" in tag and "href=" in tag]
    remote = [url for url in scripts + styles if re.match(r"(https?:)?//", url)]
    assert not remote, f"the HTML loads from other sites (nothing shows offline): {remote}"
    assert "mathjax" not in html.lower() and "katex" not in html.lower()
    equations = len(re.findall(r"\{#eq-[\w-]+\}", (ROOT / "index.qmd").read_text()))
    assert len(re.findall(r"<math\b[^>]*display=\"block\"", html)) >= equations > 0
    tex_left = re.findall(r"<span class=\"math (?:inline|display)\">\s*\\[(\[]", html)
    assert not tex_left, f"{len(tex_left)} formulas left as TeX for a script to typeset"


def test_html_links_every_embed_to_its_cell_in_the_notebook(rendered):
    """Under each embed, Quarto's "Source: <notebook>" link to the cell in the notebook's HTML preview."""
    _, out = rendered
    html = (out / "index.html").read_text()
    links = re.findall(r"<a\b[^>]*>", html)
    links = [a for a in links if "quarto-notebook-link" in a]
    hrefs = [re.search(r'href="([^"]+)"', a)[1] for a in links]
    expected = [f"{Path(path).parent.as_posix()}/{Path(path).stem}-preview.html#{label}"
                for path, label in _embeds()]
    assert hrefs == expected
    for href in sorted(set(hrefs)):
        page, anchor = href.split("#")
        assert f'id="{anchor}"' in (out / page).read_text(), f"{href}: no such cell in the preview"


_MEASURE = """
<script>
// For every table, figure, image and display equation of the article: is it wider than
// the block that holds it, is its content wider than itself, or does it end past the window?
window.addEventListener("load", () => setTimeout(() => {
  const tolerance = 3;
  const holder = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const display = getComputedStyle(p).display;
      if (!display.startsWith("inline") && display !== "contents") return p;
    }
    return document.body;
  };
  const items = document.querySelectorAll(
    "main table, main figure, main img, main math[display='block'], main .math.display");
  const wide = [];
  for (const el of items) {
    const box = el.getBoundingClientRect();
    const width = Math.max(el.scrollWidth, box.width);
    const over = {
      content: el.scrollWidth - el.clientWidth,
      holder: width - holder(el).clientWidth,
      window: box.right - document.documentElement.clientWidth,
    };
    const too = Object.entries(over).filter(([, px]) => px > tolerance);
    if (too.length) {
      const owner = el.closest("[id^='tbl-'], [id^='fig-'], [id^='eq-']");
      wide.push({element: (owner && owner.id) || el.tagName.toLowerCase(), tag: el.tagName.toLowerCase(),
                 px: Object.fromEntries(too.map(([k, px]) => [k, Math.round(px)]))});
    }
  }
  const report = document.createElement("pre");
  report.id = "overflow-report";
  report.textContent = JSON.stringify({checked: items.length, wide: wide});
  document.body.appendChild(report);
}, 300));
</script>
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("Chromium is not installed (Debian's chromium; `make test` installs it where apt can), "
                "so the HTML's layout is not checked")


@pytest.mark.parametrize("width", [1024, 1280, 1920])
def test_html_nothing_is_wider_than_its_column(rendered, chromium, width, tmp_path):
    """Headless Chromium at laptop and desktop widths: no table, figure or equation wider than the block holding it."""
    _, out = rendered
    page = out / "_measure.html"
    page.write_text((out / "index.html").read_text().replace("</body>", _MEASURE + "</body>"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dom = subprocess.run(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},1000",
             "--virtual-time-budget=15000", "--dump-dom",
             f"http://127.0.0.1:{server.server_port}/{page.name}"],
            capture_output=True, text=True, timeout=180).stdout
    finally:
        server.shutdown()
        page.unlink()
    match = re.search(r'<pre id="overflow-report">(.*?)</pre>', dom, flags=re.S)
    assert match, f"the measuring script did not report; Chromium printed:\n{dom[-2000:]}"
    report = json.loads(html_lib.unescape(match[1]))
    assert report["checked"] > 50, report  # every table, figure and equation, not an empty page
    assert not report["wide"], f"wider than their column at {width} px: {report['wide']}"


def test_pdf_has_a_caption_for_every_embedded_table_and_figure(rendered):
    _, out = rendered
    text = _pdf_text(out / "index.pdf")
    labels = [label for _, label in _embeds()]
    n_tables = len({label for label in labels if label.startswith("tbl-")})
    n_figures = len({label for label in labels if label.startswith("fig-")})
    # Captions are "Table N:" / "Figure N:"; prose refers to them without the colon.
    assert len(set(re.findall(r"Table (\d+):", text))) == n_tables
    assert len(set(re.findall(r"Figure (\d+):", text))) == n_figures
    assert "Every look at the test set" in text


def _images(cell) -> int:
    return sum("image/png" in output.get("data", {}) for output in cell.get("outputs", []))


def test_pdf_shows_every_subcaption_of_every_figure(rendered):
    """Each panel's "(a) ..." of every multi-panel figure is on a page, not cut off below it."""
    _, out = rendered
    text = _squash(_on_page_text(out / "index.pdf"))
    # A panel per image drawn: the tuning figures list every protocol-2 model, and a preset
    # with fewer (the same first ones, test_notebooks) draws fewer panels.
    wanted = [f"({chr(ord('a') + i)}) {subcap}"
              for _, cell in _embedded_cells() if cell["cell_type"] == "code"
              for i, subcap in enumerate((_cell_options(cell).get("fig-subcap") or [])[:_images(cell)])]
    assert wanted, "no figure with sub-captions is embedded: this test checks nothing"
    # The same sub-caption may title a panel of several figures: each must be there as often.
    missing = sorted({subcap for subcap in wanted if text.count(_squash(subcap)) < wanted.count(subcap)})
    assert not missing, f"sub-captions missing from the PDF's pages: {missing}"


def test_pdf_shows_the_last_column_header_of_every_table(rendered):
    """A table cut at the right edge loses its last column first."""
    _, out = rendered
    text = _squash(_on_page_text(out / "index.pdf"))
    headers = {}
    for label, cell in _embedded_cells():
        if not label.startswith("tbl-"):
            continue
        markdown = "".join("".join(output.get("data", {}).get("text/markdown", ""))
                           for output in cell.get("outputs", []))
        header = markdown.lstrip().splitlines()[0]
        headers[label] = [c.strip() for c in header.strip().strip("|").split("|")][-1]
    assert len(headers) == len({label for _, label in _embeds() if label.startswith("tbl-")})
    missing = {label: last for label, last in headers.items() if _squash(last) not in text}
    assert not missing, f"last column headers missing from the PDF's pages: {missing}"


def test_pdf_has_no_text_off_its_pages(rendered):
    _, out = rendered
    off = [(n, w["text"])
           for n, page in enumerate(_pdf_pages(out / "index.pdf"), start=1) for w in page["words"]
           if w["x1"] > page["width"] + 1 or w["y1"] > page["height"] + 1 or w["x0"] < -1 or w["y0"] < -1]
    assert not off, f"text beyond the edge of its page (page, word): {off[:20]}"


def _ink_rows(pdf: Path, folder: Path) -> list[list[int]]:
    """Per page: the rows of pixels holding any ink, from a 30-dpi greyscale rendering."""
    import numpy as np
    from PIL import Image

    subprocess.run([_need("pdftoppm"), "-gray", "-r", "30", str(pdf), str(folder / "page")], check=True)
    return [np.flatnonzero((np.asarray(Image.open(png)) < 200).any(axis=1)).tolist()
            for png in sorted(folder.glob("page-*.pgm"))]


def _bands(rows: list[int], gap: int = 4) -> list[list[int]]:
    bands = []
    for y in rows:
        if bands and y - bands[-1][-1] <= gap:
            bands[-1].append(y)
        else:
            bands.append([y])
    return bands


def test_pdf_has_no_page_more_than_half_empty(rendered, tmp_path):
    """Floating figures and tables fill the pages: only the last page, or one before a new top-level
    section, may end before half of the text area (page numbers are left out of the measure)."""
    _, out = rendered
    pdf = out / "index.pdf"
    # The last band of ink on a page is its number.
    content = [[y for band in _bands(rows)[:-1] for y in band] for rows in _ink_rows(pdf, tmp_path)]
    top = min(rows[0] for rows in content if rows)
    bottom = max(rows[-1] for rows in content if rows)
    texts = [" ".join(w["text"] for w in page["words"][:12]) for page in _pdf_pages(pdf)]
    sections = [re.sub(r"\s*\{.*\}$", "", line[3:]).strip()
                for line in (ROOT / "index.qmd").read_text().splitlines() if line.startswith("## ")]
    half_empty = []
    for n, rows in enumerate(content[:-1], start=1):
        used = (rows[-1] - top) / (bottom - top) if rows else 0.0
        starts_section = any(re.match(rf"(\d+ )?{re.escape(title)}\b", texts[n]) for title in sections)
        if used < 0.5 and not starts_section:
            half_empty.append((n, round(used, 2)))
    assert not half_empty, f"pages more than half empty (page, share of the text area used): {half_empty}"


def _cited_keys() -> list[str]:
    text = re.sub(r"<!--.*?-->", "", (ROOT / "index.qmd").read_text(), flags=re.S)
    bib = bibtexparser.parse_string((ROOT / "references.bib").read_text())
    keys = {entry.key for entry in bib.entries}
    return sorted({m for m in re.findall(r"(?<![\w@.])-?@([A-Za-z][\w:-]*\w)", text) if m in keys})


def _fold(text: str) -> str:
    """Accents and typographic apostrophes folded away (Poličar -> Policar, O’Shea -> O'Shea)."""
    text = unicodedata.normalize("NFKD", text.replace("\u2019", "'").replace("\u2018", "'"))
    return "".join(c for c in text if not unicodedata.combining(c))


def _author_year(key: str) -> tuple[str, str]:
    """The first author's family name (its last word, without LaTeX) and the year of a bibliography entry,
    as an author-date style prints them: "Maaten" for "van der Maaten", "Sazl" for "Sazl{\\i}"."""
    bib = bibtexparser.parse_string((ROOT / "references.bib").read_text())
    entry = bib.entries_dict[key]
    first = re.split(r"\s+and\s+", entry["author"].strip())[0]
    family = first.split(",")[0] if "," in first else first.split()[-1]
    family = re.sub(r"[{}]", "", re.sub(r"\\(?:[a-zA-Z]+|.)\s*(?=[{a-zA-Z])|\\[a-zA-Z]+", "", family))
    return _fold(family.split()[-1]), entry["year"].strip("{} ")


def test_citations_are_author_date_in_both_formats(rendered):
    """One style (the CSL file, through citeproc in both formats): "(Hinton 2002)" in HTML and PDF alike."""
    _, out = rendered
    pdf = _fold(re.sub(r"\s+", " ", _pdf_text(out / "index.pdf")))
    body = re.sub(r"<[^>]+>", "", (out / "index.html").read_text())
    html = _fold(re.sub(r"\s+", " ", html_lib.unescape(body)))
    keys = _cited_keys()
    assert len(keys) >= 20
    for name, text in (("PDF", pdf), ("HTML", html)):
        missing = [key for key in keys if not re.search(
            r"{}[^()\[\]]{{0,60}}?\(?{}[a-z]?\b".format(*map(re.escape, _author_year(key))), text)]
        assert not missing, f"{name}: no author-date citation for {missing}"
        numeric = re.findall(r"\[[1-9]\d?(?:[,–-]\s*[1-9]\d?)*\]", text)  # [3], [2, 17], [4-6]; not [0, 1]
        assert not numeric, f"{name}: numeric citations {numeric[:5]}"
    # An author named in the sentence, `Name [-@key]`, is followed by the year alone, in parentheses.
    assert "Wells and Gerstenberger (2025)" in pdf and "Wells and Gerstenberger (2025)" in html


def test_references_and_appendices_come_in_the_same_order_in_both_formats(rendered):
    """The reference list before the appendices, in HTML as in the PDF (index.qmd's #refs div places it)."""
    _, out = rendered
    appendices = [re.sub(r"\s*\{.*\}$", "", line[3:]).strip()
                  for line in (ROOT / "index.qmd").read_text().splitlines()
                  if line.startswith("## ") and ".appendix" in line]
    assert appendices
    html = (out / "index.html").read_text()
    html_headings = [re.sub(r"^\d+\s+", "", html_lib.unescape(re.sub(r"<[^>]+>", "", h)).strip())
                     for h in re.findall(r"<h2\b.*?</h2>", html, flags=re.S)]
    pdf_headings = [re.sub(r"^\d+\s+", "", line.strip())
                    for line in _pdf_text(out / "index.pdf").splitlines()]
    orders = {}
    for name, headings in (("HTML", html_headings), ("PDF", pdf_headings)):
        found = [h for h in headings if h in ("References", "Bibliography", *appendices)]
        orders[name] = ["references" if h in ("References", "Bibliography") else h for h in found]
    assert orders["HTML"] == orders["PDF"] == ["references", *appendices], orders


def test_pdf_equations_convert_and_the_bibliography_has_one_heading(rendered):
    _, out = rendered
    text = _pdf_text(out / "index.pdf")
    # \big\langle once reached Typst as the literal text "angle.l".
    assert "angle.l" not in text and "angle.r" not in text
    # citeproc writes the list where index.qmd's #refs div is, under the article's one heading.
    assert len(re.findall(r"^References$", text, flags=re.M)) == 1 and "Bibliography" not in text
    html = (out / "index.html").read_text()
    assert 'id="refs"' in html and html.count('id="ref-') >= 20  # the HTML keeps its reference list
    # and so does the PDF: every cited work, family name first, as author-date lists print them
    listed = _fold(re.sub(r"\s+", " ", text[re.search(r"^References$", text, flags=re.M).end():]))
    missing = [key for key in _cited_keys()
               if not re.search(rf"{re.escape(_author_year(key)[0])}\w*, ", listed)]
    assert not missing, f"cited but not in the PDF's reference list: {missing}"
