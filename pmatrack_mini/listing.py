"""Equation beside code: a function's source printed with the paper's symbols next to the lines that compute them.

    display(annotated_source(cpesl, {"weights * l_e": r"$\\sum_e g_e\\, l_e$", ...}))

Each note is keyed by a fragment of code; it sits beside the first line holding that fragment, and the line is
highlighted. A fragment that no line holds is an error (``PMATrackError`` naming it), so a notebook fails when the
code it explains has changed under its notes. Rendered as an HTML table in Jupyter and in the book (the notes may hold
LaTeX, typeset by MathJax there), and as the source with ``# <- note`` comments where only text is shown.
"""
from __future__ import annotations

import html
import inspect
import textwrap

from .errors import PMATrackError


class AnnotatedSource:
    """The source lines of an object and {line index: note}; ``_repr_html_`` for notebooks, ``str`` for text."""

    def __init__(self, name: str, lines: list[str], notes: dict[int, str]):
        self.name, self.lines, self.notes = name, lines, notes

    def __str__(self) -> str:
        width = max(len(line) for line in self.lines)
        return "\n".join(f"{line:<{width}}  # <- {self.notes[i]}" if i in self.notes else line
                         for i, line in enumerate(self.lines))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = []
        for i, line in enumerate(self.lines):
            mark = " style='background:#fff3c4'" if i in self.notes else ""
            code = html.escape(line) or "&nbsp;"
            rows.append(f"<tr{mark}><td style='text-align:right;color:#888;padding:0 .5em'>{i + 1}</td>"
                        f"<td style='text-align:left;white-space:pre;font-family:monospace;padding:0 1em 0 0'>{code}"
                        f"</td><td style='text-align:left;padding:0 .5em'>{self.notes.get(i, '')}</td></tr>")
        return (f"<div><b>{html.escape(self.name)}</b>: the paper's symbols beside the code"
                f"<table style='border-collapse:collapse;font-size:90%'>{''.join(rows)}</table></div>")


def annotated_source(obj, notes: dict[str, str]) -> AnnotatedSource:
    """``obj``'s source (a function, method or class) with ``notes`` {code fragment: note} beside the first line
    holding each fragment. Raises PMATrackError naming the fragments that no line holds."""
    lines = textwrap.dedent(inspect.getsource(obj)).rstrip("\n").split("\n")
    placed, missing = {}, []
    for fragment, note in notes.items():
        hit = next((i for i, line in enumerate(lines) if fragment in line), None)
        if hit is None:
            missing.append(fragment)
        else:
            placed[hit] = f"{placed[hit]}; {note}" if hit in placed else note
    if missing:
        raise PMATrackError(f"{obj.__qualname__}: no line holds {', '.join(repr(m) for m in missing)} "
                            "(the code changed under its notes)")
    return AnnotatedSource(obj.__qualname__, lines, placed)
