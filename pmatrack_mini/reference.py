"""Misalignment statistics and two reference predictions that need no model.

* ``static``: the first-frame box, held still (a floor any tracker should beat);
* ``tir-naive``: the *thermal* ground truth read back into RGB pixels through the resolution
  change only. It is what a perfect thermal tracker reports when it ignores the misalignment,
  so its score shows what the cross-modal offset alone costs.
"""
from __future__ import annotations

import numpy as np

from .data.dataset import Sequence
from .errors import PMATrackError
from .geometry import apply_homography, box_center, invert, resize_homography, warp_boxes

REFERENCES = ("static", "tir-naive")


def resolution_homography(seq: Sequence) -> np.ndarray:
    """RGB pixel -> TIR pixel by the resolution change alone."""
    rgb_size, tir_size = seq.sizes()
    return resize_homography(rgb_size, tir_size)


def center_displacement(seq: Sequence) -> np.ndarray:
    """(T,) distance in RGB pixels between the RGB target centre and where the TIR camera sees it,
    once the resolution change is undone. Needs the exact homographies (synthetic data)."""
    if seq.homography is None:
        raise PMATrackError(f"{seq.path}: no homography.txt, the displacement is unknown")
    back = invert(resolution_homography(seq))
    c = box_center(seq.gt_visible)
    seen = np.stack([apply_homography(back @ h, p[None])[0] for h, p in zip(seq.homography, c)])
    return np.linalg.norm(seen - c, axis=1)


def misalignment_stats(seq: Sequence) -> dict:
    """Mean / median / max target-centre displacement, and the GT-box displacement without homographies."""
    back = invert(resolution_homography(seq))
    naive = warp_boxes(back, seq.gt_infrared)  # TIR box in RGB pixels, resolution change undone
    box_shift = np.linalg.norm(box_center(naive) - box_center(seq.gt_visible), axis=1)
    out = dict(frames=len(seq), box_shift_mean=float(box_shift.mean()), box_shift_max=float(box_shift.max()))
    if seq.homography is not None:
        d = center_displacement(seq)
        out.update(disp_mean=float(d.mean()), disp_median=float(np.median(d)), disp_max=float(d.max()))
    return out


def reference_prediction(seq: Sequence, kind: str) -> np.ndarray:
    if kind == "static":
        return np.repeat(seq.init_box[None], len(seq), axis=0)
    if kind == "tir-naive":
        return warp_boxes(invert(resolution_homography(seq)), seq.gt_infrared)
    raise PMATrackError(f"unknown reference prediction {kind!r}; choose from {REFERENCES}")
