"""List the numbers a notebook's prose states that none of its stored outputs shows: a reviewing aid for rebuilds.

    python tools/prose_numbers.py notebooks/05_router_cpesl.ipynb [...] [--also results/reproduce/components.md ...]

After a rebuild with new networks, every measured figure in a markdown cell should be one its outputs print (or one
of the files named with ``--also``, e.g. a results table the prose cites). A prose number counts as shown when some
output number rounds to it at the prose's precision, sign aside, also as a percentage of a fraction (83 % <- 0.834).
Checked: numbers with a decimal point and integer percentages; plain integers (counts, section numbers, steps) are
too often not measurements. Code spans, LaTeX and links are skipped. Advisory: a listed number may be the paper's, a
difference of two outputs or arithmetic in the text; each one listed needs a reader's look, not an automatic fix.
Exit status 1 when any number is listed, 0 otherwise.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

NUMBER = re.compile(r"(?<![\w.])[-+\u2212]?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(\s?%)?")
SKIP = re.compile(r"`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|\]\([^)]*\)|https?://\S+", re.S)
TAG = re.compile(r"<[^>]+>")


def numbers(text: str) -> list[tuple[str, float, int, bool]]:
    """(as written, value, decimals, is a percentage) of each number in ``text``."""
    out = []
    for m in NUMBER.finditer(text):
        digits = m.group(1).replace(",", "")
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        out.append((m.group(0).strip(), float(digits), decimals, bool(m.group(2))))
    return out


def output_text(cell: dict) -> str:
    """The text a code cell's stored outputs show (streams, plain text, markdown, HTML without its tags)."""
    parts = []
    for o in cell.get("outputs", []):
        parts.append("".join(o.get("text", "")))
        data = o.get("data", {})
        for kind in ("text/plain", "text/markdown", "text/html"):
            parts.append(TAG.sub(" ", "".join(data.get(kind, ""))))
    return "\n".join(parts)


def shown(value: float, decimals: int, percent: bool, pool: list[float]) -> bool:
    """Does some number of ``pool`` round to ``value`` at ``decimals`` (also x 100 when ``percent``)?"""
    half = 0.5 * 10 ** -decimals + 1e-9
    scales = (1.0, 100.0) if percent else (1.0,)
    return any(abs(abs(o) * s - value) <= half for o in pool for s in scales)


def unshown(notebook: Path, also: list[Path] = ()) -> list[tuple[int, str]]:
    """(cell index, number as written) of each prose number no output of ``notebook`` (or file of ``also``) shows."""
    cells = json.loads(notebook.read_text())["cells"]
    text = "\n".join(output_text(c) for c in cells if c["cell_type"] == "code")
    text += "\n".join(p.read_text() for p in also)
    pool = [v for _, v, _, _ in numbers(text)]
    found = []
    for i, c in enumerate(cells):
        if c["cell_type"] != "markdown":
            continue
        prose = SKIP.sub(" ", "".join(c["source"]))
        for written, value, decimals, percent in numbers(prose):
            if (decimals or percent) and not shown(value, decimals, percent, pool):
                found.append((i, written))
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="+", type=Path)
    p.add_argument("--also", nargs="*", type=Path, default=[], help="files whose numbers count as shown too")
    a = p.parse_args(argv)
    for path in a.notebooks + a.also:
        if not path.is_file():
            print(f"error: no such file: {path}", file=sys.stderr)
            return 2
    listed = 0
    for nb in a.notebooks:
        try:
            found = unshown(nb, a.also)
        except (ValueError, KeyError, TypeError, AttributeError) as e:     # not JSON, or not a notebook's layout
            print(f"error: {nb} is not a notebook ({type(e).__name__}: {e})", file=sys.stderr)
            return 2
        listed += len(found)
        print(f"{nb.name}: {len(found)} prose number(s) not in its outputs")
        for cell, written in found:
            print(f"  cell {cell}: {written}")
    return 1 if listed else 0


if __name__ == "__main__":
    sys.exit(main())
