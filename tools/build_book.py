"""Export the executed notebooks to static HTML with an index page, for readers who will not run Jupyter.

    python tools/build_book.py [--out book]

The notebooks are exported as stored (run ``make notebooks`` first to refresh their outputs); nothing is executed.
The index lists each notebook's title (its first heading) and first paragraph. Files are written atomically.
"""
import argparse
import html
import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pmatrack_mini.utils import write_text_atomic  # noqa: E402


def title_and_summary(nb) -> tuple[str, str]:
    """The first markdown heading and the paragraph after it."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = [ln.strip() for ln in cell.source.splitlines()]
        heads = [ln.lstrip("#").strip() for ln in lines if ln.startswith("#")]
        if heads:
            body = [ln for ln in lines if ln and not ln.startswith("#")]
            return heads[0], (body[0] if body else "")
    return "", ""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "book"))
    a = p.parse_args(argv)
    out = Path(a.out)
    exporter = HTMLExporter()
    entries = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        body, _ = exporter.from_notebook_node(nb)
        write_text_atomic(out / f"{path.stem}.html", body)
        title, summary = title_and_summary(nb)
        entries.append((path.stem, title or path.stem, summary))
        print(f"{path.name} -> {out / (path.stem + '.html')}")
    items = "\n".join(f'<li><a href="{html.escape(stem)}.html">{html.escape(title)}</a><br><small>'
                      f"{html.escape(summary)}</small></li>" for stem, title, summary in entries)
    index = (f"<!doctype html><html><head><meta charset='utf-8'><title>pmatrack-mini notebooks</title></head>"
             f"<body style='font-family: sans-serif; max-width: 50em; margin: 2em auto'>"
             f"<h1>pmatrack-mini: the notebooks</h1><p>A small, readable reproduction of PMATrack (Progressive "
             f"Multi-cue Alignment for Unaligned RGBT Tracking, CVPR 2026). Each page is a notebook as executed "
             f"(its first cell says in which mode).</p><ol>{items}</ol></body></html>\n")
    write_text_atomic(out / "index.html", index)
    print(f"index: {out / 'index.html'}")


if __name__ == "__main__":
    main()
