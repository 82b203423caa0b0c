"""Export the executed notebooks to static HTML with an index page, for readers who will not run Jupyter.

    python tools/build_book.py [--out book] [notebooks/00_*.ipynb ...]

The notebooks are exported as stored (run ``make notebooks`` first to refresh their outputs); nothing is executed.
Figures are embedded in the pages; each notebook's widget state (stored when it was executed) is embedded too, so a
browser with the widget manager shows each widget's initial view. The index holds the scorecard of the paper's claims
(``pmatrack_mini.experiments.scorecard``) and, per notebook, its title and the question it answers. ``check_book``
verifies the result: every notebook has a page linked from the index, every image in a page decodes, every stored
widget state made it into its page. Files are written atomically.
"""
import argparse
import base64
import html
import io
import re
import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.filters import markdown2html

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pmatrack_mini.experiments.scorecard import markdown as scorecard_markdown, scorecard  # noqa: E402
from pmatrack_mini.utils import write_text_atomic  # noqa: E402

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def title_and_summary(nb) -> tuple[str, str]:
    """The first markdown heading and the paragraph after it (the question, where the notebook states one)."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = [ln.strip() for ln in cell.source.splitlines()]
        heads = [ln.lstrip("#").strip() for ln in lines if ln.startswith("#")]
        if heads:
            body = [ln for ln in lines if ln and not ln.startswith("#")]
            question = next((ln for ln in body if ln.startswith("**Question.**")), None)
            return heads[0], question or (body[0] if body else "")
    return "", ""


def build(out: Path, paths: list[Path]) -> list[Path]:
    """The pages of ``paths`` and the index in ``out``; returns the pages written."""
    exporter, entries, pages = HTMLExporter(), [], []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        body, _ = exporter.from_notebook_node(nb)
        page = out / f"{path.stem}.html"
        write_text_atomic(page, body)
        title, summary = title_and_summary(nb)
        entries.append((path.stem, title or path.stem, summary))
        pages.append(page)
        print(f"{path.name} -> {page}")
    items = "\n".join(f'<li><a href="{html.escape(stem)}.html">{html.escape(title)}</a><br><small>'
                      f"{markdown2html(summary)}</small></li>" for stem, title, summary in entries)
    card = markdown2html(scorecard_markdown(scorecard(ROOT / "results")))
    index = (f"<!doctype html><html><head><meta charset='utf-8'><title>pmatrack-mini notebooks</title>"
             f"<style>table {{border-collapse: collapse; font-size: 90%}} td, th {{border: 1px solid #ccc; "
             f"padding: .3em; vertical-align: top}}</style></head>"
             f"<body style='font-family: sans-serif; max-width: 70em; margin: 2em auto'>"
             f"<h1>pmatrack-mini: the notebooks</h1><p>A small, readable reproduction of PMATrack (Progressive "
             f"Multi-cue Alignment for Unaligned RGBT Tracking, CVPR 2026). Each page is a notebook as executed "
             f"(its first cell says in which mode).</p><h2>Does the paper's story hold here?</h2>{card}"
             f"<h2>The notebooks</h2><ol>{items}</ol></body></html>\n")
    write_text_atomic(out / "index.html", index)
    print(f"index: {out / 'index.html'}")
    return pages


def check_book(out: Path, paths: list[Path]) -> list[str]:
    """Problems of the book in ``out`` built from ``paths`` (empty: none): a notebook without a page or without a
    link from the index, an image that does not decode, a stored widget state missing from its page."""
    from PIL import Image

    problems, index = [], (out / "index.html").read_text()
    for path in paths:
        page = out / f"{path.stem}.html"
        if not page.is_file():
            problems.append(f"{path.name}: no page")
            continue
        if f'href="{path.stem}.html"' not in index:
            problems.append(f"{path.name}: not linked from the index")
        text = page.read_text()
        for k, (kind, data) in enumerate(re.findall(r'<img[^>]*src="data:image/(\w+);base64,([^"]+)"', text)):
            try:
                Image.open(io.BytesIO(base64.b64decode(data))).load()
            except Exception as exc:                 # any decoding failure is a broken image
                problems.append(f"{page.name}: image {k + 1} ({kind}) does not decode: {exc}")
        if "<img" in text and not re.search(r'<img[^>]*src="data:image', text):
            problems.append(f"{page.name}: images that are not embedded")
        if WIDGET_STATE in nbformat.read(path, as_version=4).metadata.get("widgets", {}) and WIDGET_STATE not in text:
            problems.append(f"{page.name}: the notebook's widget state is not embedded")
    return problems


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "book"))
    p.add_argument("notebooks", nargs="*", help="default: every notebook in notebooks/")
    a = p.parse_args(argv)
    paths = [Path(n) for n in a.notebooks] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    build(Path(a.out), paths)
    problems = check_book(Path(a.out), paths)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
