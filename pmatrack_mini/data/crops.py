"""Square crops around a box, as OSTrack cuts its template and search regions, for both modalities.

A crop of side ``side`` (image px) centred at (cx, cy), resized to ``out`` px, is the affine map
(pixel centres at integers)

    u = (x - cx) * out / side + out / 2 - 0.5

The TIR crop of a tracker that ignores misalignment is cut at the *same* place mapped by the
resolution change only: C_tir = C_rgb @ S_res^-1 (TIR px -> crop px). With the true homography
H_t (RGB px -> TIR px), the RGB crop is mapped onto the TIR crop by H_crop = C_tir H_t C_rgb^-1.
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
    """Apply crop matrix C (affine) with bilinear sampling; outside the image is black."""
    return cv2.warpAffine(img, C[:2], (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def crop_side(box_xywh, factor: float) -> float:
    """OSTrack's crop side: factor * sqrt(w * h)."""
    return float(factor * np.sqrt(max(box_xywh[2], 1.0) * max(box_xywh[3], 1.0)))


def crop_pair(rgb: np.ndarray, tir: np.ndarray, center, side: float, out: int, S_res: np.ndarray):
    """Cut the RGB crop at (center, side) and the naive TIR crop at the same place.

    Returns rgb_crop, tir_crop (out, out, 3) uint8, C_rgb, C_tir (3x3 maps image -> crop).
    """
    C_rgb = crop_matrix(center[0], center[1], side, out)
    C_tir = C_rgb @ invert(S_res)
    return cut(rgb, C_rgb, out), cut(tir, C_tir, out), C_rgb, C_tir


def box_center_xy(box_xywh) -> np.ndarray:
    return box_center(np.asarray(box_xywh, dtype=np.float64)[None])[0]


def aligned_tir_crop(tir: np.ndarray, C_rgb: np.ndarray, H: np.ndarray, out: int) -> np.ndarray:
    """The TIR crop an *oracle* would cut: pixel p of it shows what pixel p of the RGB crop shows.

    TIR px -> RGB px is H^-1, RGB px -> crop px is C_rgb, so the crop is warped by C_rgb H^-1.
    """
    M = C_rgb @ np.linalg.inv(H)
    return cv2.warpPerspective(tir, M / M[2, 2], (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
