"""pmatrack-mini: a small, readable reproduction of PMATrack.

PMATrack ("Progressive Multi-cue Alignment for Unaligned RGBT Tracking", CVPR 2026)
aligns RGB and thermal (TIR) features progressively inside a one-stream ViT tracker.
This package holds every piece of logic; the notebooks in ``notebooks/`` import it.
"""

__version__ = "0.1.0"

from .errors import PMATrackError  # noqa: F401
from .utils import set_seed  # noqa: F401
