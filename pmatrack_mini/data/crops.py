"""Square crops around a box, as OSTrack cuts its template and search regions, for both modalities.

A crop of side ``side`` (image px) centred at (cx, cy), resized to ``out`` px, is the affine map
(pixel centres at integers)

    u = (x - cx) * out / side + out / 2 - 0.5

The TIR crop is cut *through a pre-alignment* ``H_pre`` (RGB px -> TIR px): pixel q of the TIR crop shows the TIR
image at H_pre C_rgb^-1 q, i.e. its crop matrix is C_tir = C_rgb H_pre^-1 (TIR px -> crop px), a perspective warp
in general. Three choices of H_pre, the tracker's ``--prealign``:

* ``none``: the resolution change S_res alone (a tracker that ignores misalignment: the naive crop);
* ``first-frame``: H0 fitted to the first frame's two boxes (``geometry.fit_box_homography``);
* ``oracle``: the generator's exact H_t (the TIR crop is then pixel-aligned with the RGB crop).

With the true homography H_t, the RGB crop maps onto the TIR crop by H_crop = C_tir H_t C_rgb^-1: what is left
for the alignment network to find (the identity under the oracle).
"""
from __future__ import annotations

import cv2
import numpy as np

from ..geometry import box_center, invert


def crop_matrix(cx: float, cy: float, side: float, out: int) -> np.ndarray:
    """3x3 map image px -> crop px for a square crop of ``side`` px resized to ``out``."""
    s = out / side
    return np.array([[s, 0.0, out / 2 - 0.5 - cx * s], [0.0, s, out / 2 - 0.5 - cy * s], [0.0, 0.0, 1.0]])


def cut(img: np.ndarray, C: np.ndarray, out: int) -> np.ndarray:
    """Apply the crop matrix C (image px -> crop px) with bilinear sampling; outside the image is black.

    Affine C (bottom row 0, 0, 1) goes through cv2.warpAffine, any other through cv2.warpPerspective."""
    flags, border = cv2.INTER_LINEAR, cv2.BORDER_CONSTANT
    if np.allclose(C[2], [0.0, 0.0, 1.0], rtol=0, atol=1e-12):
        return cv2.warpAffine(img, C[:2], (out, out), flags=flags, borderMode=border)
    return cv2.warpPerspective(img, C / C[2, 2], (out, out), flags=flags, borderMode=border)


def crop_side(box_xywh, factor: float) -> float:
    """OSTrack's crop side: factor * sqrt(w * h)."""
    return float(factor * np.sqrt(max(box_xywh[2], 1.0) * max(box_xywh[3], 1.0)))


def crop_pair(rgb: np.ndarray, tir: np.ndarray, center, side: float, out: int, H_pre: np.ndarray):
    """Cut the RGB crop at (center, side) and the TIR crop through the pre-alignment ``H_pre`` (RGB px -> TIR px).

    Returns rgb_crop, tir_crop (out, out, 3) uint8, C_rgb, C_tir (3x3 maps image -> crop).
    """
    C_rgb = crop_matrix(center[0], center[1], side, out)
    C_tir = C_rgb @ invert(H_pre)
    return cut(rgb, C_rgb, out), cut(tir, C_tir, out), C_rgb, C_tir


def crop_around(box_xywh, factor: float) -> tuple[np.ndarray, float]:
    """(centre, side) of OSTrack's crop around a box: its centre, factor * sqrt(w h)."""
    box = np.asarray(box_xywh, dtype=np.float64)
    return box_center(box), crop_side(box, factor)
