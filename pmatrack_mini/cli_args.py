"""Argument checks shared by the subcommands: argparse ``type`` functions and an output-path check.

They live below every subcommand module (``tracking``, ``experiments``) and below :mod:`pmatrack_mini.cli`, which
only assembles the subcommands, so that no module has to import the command line itself.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from .errors import PMATrackError


def int_at_least(low: int):
    """An argparse ``type`` for integers >= ``low`` (``--sequences 0`` is an error, not an empty data set)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def output_file(path: str | None) -> None:
    """Refuse an output file path that cannot be written (an existing folder), before any work is done."""
    if path is not None and Path(path).is_dir():
        raise PMATrackError(f"{path}: is a folder; give a file name for this output")


def box_arg(text: str) -> tuple:
    """An argparse ``type`` for a box ``x,y,w,h`` (commas or spaces): 4 finite numbers with w, h > 0."""
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x,y,w,h, got {text!r}") from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected 4 finite numbers x,y,w,h, got {text!r}")
    if values[2] <= 0 or values[3] <= 0:
        raise argparse.ArgumentTypeError(f"box {text!r} has zero size (w and h must be > 0)")
    return tuple(values)
