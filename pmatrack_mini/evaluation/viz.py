"""Pictures: tracked boxes drawn on both modalities, a homography's grid, GIFs; where TCMDA samples the other
modality; the notebooks' widget panels (``redraw_panel``)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..data.dataset import Sequence
from ..geometry import apply_homography, box_corners, resize_homography, warp_boxes
from ..utils import atomic_path

GREEN, RED = (0, 220, 0), (255, 40, 40)


NOTEBOOK_STYLE = {"figure.dpi": 110, "font.size": 9, "legend.fontsize": 9, "axes.titlesize": 10}


def notebook_style() -> None:
    """The notebooks' figure settings: stored figures readable at 110 dpi with text of 9 pt or more."""
    import matplotlib.pyplot as plt

    plt.rcParams.update(NOTEBOOK_STYLE)


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


def draw_homography_grid(img: np.ndarray, H: np.ndarray, size: tuple, lines: int = 8, color=(80, 220, 80)) -> None:
    """Draw on ``img`` the grid of an RGB frame of ``size`` (w, h), ``lines`` cells a side, mapped through ``H``
    (RGB px -> ``img`` px): a drifting alignment shows as a moving, bending grid. In place."""
    w, h = size
    u = np.linspace(0, 1, 32)
    for k in range(lines + 1):
        for line in (np.stack([np.full_like(u, k * w / lines), u * h], 1),
                     np.stack([u * w, np.full_like(u, k * h / lines)], 1)):
            pts = apply_homography(H, line)
            if np.all(np.isfinite(pts)):
                cv2.polylines(img, [np.round(pts).astype(np.int32)], False, color, 1, cv2.LINE_AA)


def draw_mapped_box(img: np.ndarray, box, H: np.ndarray, color, thickness: int = 2) -> None:
    """Draw the corners of an RGB box (x, y, w, h) mapped through ``H`` (RGB px -> ``img`` px) as a polygon."""
    if not np.all(np.isfinite(box)):
        return
    corners = apply_homography(H, box_corners(np.asarray(box, dtype=np.float64)[None])[0])
    if np.all(np.isfinite(corners)):
        cv2.polylines(img, [np.round(corners).astype(np.int32)], True, color, thickness, cv2.LINE_AA)


def side_by_side(rgb: np.ndarray, tir: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(copy of rgb, tir scaled to the RGB height, S: TIR px -> displayed TIR px)."""
    h = rgb.shape[0]
    s = h / tir.shape[0]
    right = cv2.resize(tir, (max(1, int(round(tir.shape[1] * s))), h), interpolation=cv2.INTER_LINEAR)
    return rgb.copy(), right, np.diag([s, s, 1.0])


def save_gif(frames: list, path: str | Path, ms_per_frame: int = 120, scale: float = 1.0) -> Path:
    """Frames (H, W, 3) uint8 -> an animated GIF (64 colours), written atomically."""
    from PIL import Image

    images = []
    for f in frames:
        if scale != 1.0:
            f = cv2.resize(f, (int(f.shape[1] * scale), int(f.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        images.append(Image.fromarray(f).convert("P", palette=Image.ADAPTIVE, colors=64))
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0)
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


def score_bars(per_sequence: dict, labels: list, level: str, metrics=("PR", "NPR", "SR")):
    """One panel per metric: each row's score at ``level`` as a bar, with its per-sequence bootstrap 95 % interval
    (``intervals.mean_interval``). ``per_sequence``: {label: {level: {sequence: {metric: value}}}}. Returns the
    figure and {label: {metric: (mean, low, high)}} in points."""
    import matplotlib.pyplot as plt

    from .intervals import mean_interval

    stats = {lab: {m: tuple(100 * v for v in mean_interval([s[m] for s in per_sequence[lab][level].values()]))
                   for m in metrics} for lab in labels}
    n = len(per_sequence[labels[0]][level])
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 0.32 * len(labels) + 1.2), sharey=True)
    axes = np.atleast_1d(axes)
    colours = [plt.cm.tab20(i % 20) for i in range(len(labels))]
    for ax, m in zip(axes, metrics):
        mean, low, high = np.array([stats[lab][m] for lab in labels]).T             # (3, rows)
        ax.barh(range(len(labels)), mean, xerr=np.nan_to_num([mean - low, high - mean]), color=colours,
                error_kw=dict(lw=0.8, capsize=2))
        ax.set(xlabel=f"{m} (%)", title=f"{m}, offset {level} ({n} sequences)")
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].invert_yaxis()
    fig.tight_layout()
    return fig, stats


# ----------------------------------------------------------------------------- notebook widgets


def redraw_panel(draw, controls: dict):
    """An ipywidgets ``Output`` that redraws ``draw(**{name: control.value})`` each time one of ``controls``
    ({name: widget}) changes, and stays **empty until then**: the notebook draws the initial view itself, as a normal
    figure, so that a stored notebook holds that view once (``widgets.interactive_output`` would draw it a second
    time inside the widget's stored state). Display the controls and the returned panel above the initial figure."""
    import ipywidgets as widgets

    panel = widgets.Output()

    def redraw(change):
        with panel:
            panel.clear_output(wait=True)
            draw(**{name: w.value for name, w in controls.items()})

    for w in controls.values():
        w.observe(redraw, names="value")
    return panel
