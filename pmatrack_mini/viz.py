"""Pictures: tracked boxes drawn on both modalities, saved as a GIF; where TCMDA samples the other modality."""
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


# ----------------------------------------------------------------------------- TCMDA's sampling points


def cells_to_crop_px(points, patch: int):
    """Token-cell coordinates (token j at j) -> search-crop px (pixel centres at integers): token j's centre is at
    P j + (P - 1) / 2, the convention of ``geometry.homography_in_cells``. numpy or torch, any shape (..., 2)."""
    return points * patch + (patch - 1) / 2


def draw_query(ax, token: int, grid: int, patch: int, color="cyan", label: str | None = "query"):
    """Mark query token ``token`` (flat index, row-major over the grid x grid search tokens) on a search crop."""
    from matplotlib.patches import Rectangle

    x, y = cells_to_crop_px(np.array([token % grid, token // grid], dtype=np.float64), patch)
    ax.add_patch(Rectangle((x - patch / 2, y - patch / 2), patch, patch, fill=False, color=color, lw=1.5, label=label))
    return x, y


def draw_sampling_points(ax, info: dict, token: int, patch: int, sample: int = 0, heads=None, offsets: bool = True,
                         prior: bool = True, size: float = 60.0, cmap: str = "tab10"):
    """Where one query token of TCMDA samples the other modality, drawn on an axis showing that modality's search
    crop (crop px): the geometric prior p_t + dH (white cross) and, with ``offsets``, each head's K points
    G = p_t + dH + dL (one colour per head, marker area proportional to the weight A).

    ``info``: a TCMDA info dict (``record["fusion"]["rgb"]``: RGB queries, points in the TIR crop;
    ``["tir"]``: TIR queries, points in the RGB crop); ``heads``: the heads to draw (default all)."""
    import matplotlib.pyplot as plt

    grid = int(round(np.sqrt(info["prior"].shape[1])))                              # N = grid x grid queries
    p_t = np.array([token % grid, token // grid], dtype=np.float64)                 # the query's own cell
    if prior:
        p = cells_to_crop_px(p_t + _np(info["prior"][sample, token]), patch)
        ax.plot(p[0], p[1], "x", color="white", ms=9, mew=2, label="prior $p_t + \\Delta H$")
    if offsets:
        pts = cells_to_crop_px(_np(info["points"][sample, token]), patch)            # (h, K, 2)
        w = _np(info["weights"][sample, token])                                        # (h, K)
        colors = plt.get_cmap(cmap)
        for h in range(pts.shape[0]) if heads is None else heads:
            ax.scatter(pts[h, :, 0], pts[h, :, 1], s=size * pts.shape[1] * w[h], color=colors(h % 10),
                       edgecolors="black", linewidths=0.5, label=f"head {h}")


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
