"""Pictures: tracked boxes drawn on both modalities, saved as a GIF."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .data.dataset import Sequence
from .geometry import resize_homography, warp_boxes
from .utils import atomic_path

GREEN, RED = (0, 220, 0), (255, 40, 40)


def _rect(img, box, color):
    x, y, w, h = np.round(box).astype(int)
    cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), color, 1)


def tracking_frame(seq: Sequence, t: int, pred: np.ndarray) -> np.ndarray:
    """RGB | TIR (resized to the RGB height) with the GT (green) and the prediction (red).

    On TIR the prediction is shown where a tracker that ignores misalignment puts it (resolution change only).
    """
    rgb, tir = seq.rgb(t).copy(), seq.tir(t).copy()
    S = resize_homography((rgb.shape[1], rgb.shape[0]), (tir.shape[1], tir.shape[0]))
    _rect(rgb, seq.gt_visible[t], GREEN)
    _rect(rgb, pred[t], RED)
    _rect(tir, seq.gt_infrared[t], GREEN)
    _rect(tir, warp_boxes(S, pred[t][None])[0], RED)
    tir = cv2.resize(tir, (round(tir.shape[1] * rgb.shape[0] / tir.shape[0]), rgb.shape[0]), interpolation=cv2.INTER_NEAREST)
    return np.concatenate([rgb, tir], axis=1)


def save_tracking_gif(seq: Sequence, pred: np.ndarray, path: str | Path, every: int = 2, scale: float = 0.5,
                      ms_per_frame: int = 120) -> Path:
    from PIL import Image

    frames = []
    for t in range(0, len(seq), every):
        f = tracking_frame(seq, t, pred)
        f = cv2.resize(f, (int(f.shape[1] * scale), int(f.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        frames.append(Image.fromarray(f).convert("P", palette=Image.ADAPTIVE, colors=64))
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0)
    return Path(path)
