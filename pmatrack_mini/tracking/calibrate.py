"""Calibrate a camera pair: the RGB -> TIR homography, fitted from point pairs or from two boxes.

What a homography between two cameras is
----------------------------------------
A homography ``H`` (3x3, defined up to scale: 8 degrees of freedom) maps a pixel of one image to a pixel of
another, ``[u, v, 1]^T ~ H [x, y, 1]^T``: multiply, then divide by the third coordinate. It is exact for two
cameras looking at one *plane*, and for two cameras that share a centre (pure rotation). An RGB and a thermal
camera mounted side by side have different centres, so the map between them depends on depth: a point at
distance Z shifts by the disparity ``f b / Z`` (focal length f, baseline b). When the scene is far away compared
with the baseline (a few centimetres against tens of metres, as in surveillance and driving footage) or nearly
planar (a road, a wall), that shift is small and nearly the same everywhere, and one homography registers the
rig's two images. Close objects in front of a distant background will still be off by their parallax; that is
the residual misalignment the tracker's alignment stages correct frame by frame.

How it is fitted
----------------
Each pair gives two linear equations in the nine entries of H (the direct linear transform, DLT), so four pairs
with no three collinear fix H; more pairs are fitted in the least-squares sense, then refined by OpenCV to
minimise the reprojection error ``|H p_rgb - p_tir|`` (TIR px). ``--ransac PX`` instead fits H to random
four-pair samples and keeps the one most pairs agree with to within PX px (the inliers), so a few wrongly
clicked pairs do not bend the fit. Two boxes of one target give only a per-axis scale and shift
(``geometry.fit_box_homography``): enough when the cameras are parallel, no rotation or perspective.

The written file holds one line of 9 numbers, the row-major H (RGB px -> TIR px), the row format of a
sequence's ``homography.txt``; ``track --homography`` reads it to place the first box in the thermal frame.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import cv2
import numpy as np

from ..cli_args import box_arg, output_file
from ..data.dataset import read_rows
from ..data.videos import first_frame
from ..errors import PMATrackError
from ..geometry import (apply_homography, box_corners, fit_box_homography, homography_problem, invert, normalize_h,
                        warp_image)
from ..utils import atomic_path, write_text_atomic

DEGENERATE_TOL = 1e-8    # relative size of the DLT system's 8th singular value below which H is not determined
SINGULAR_TOL = 1e-12     # 1 / condition number of H below which it is not invertible in floating point


def _data_lines(path: Path) -> list:
    """Line numbers of the non-blank lines of a file: the rows :func:`read_rows` returns, in order."""
    return [i for i, line in enumerate(path.read_text(errors="replace").splitlines(), start=1) if line.strip()]


def read_point_pairs(path: str | Path) -> np.ndarray:
    """(N, 4) point pairs ``x_rgb y_rgb x_tir y_tir`` (px; spaces or commas), one pair a line, N >= 4.

    A pair whose RGB or TIR point repeats an earlier one is refused, naming both lines: it adds no equation."""
    path = Path(path)
    pairs = read_rows(path, 4, "point-pair", "(x_rgb y_rgb x_tir y_tir)")            # (N, 4)
    if len(pairs) < 4:
        raise PMATrackError(f"{path}: {len(pairs)} point pair(s); a homography needs at least 4 (8 unknowns, "
                            "2 equations per pair)")
    lines = _data_lines(path)
    for side, cols in (("RGB", slice(0, 2)), ("TIR", slice(2, 4))):
        seen = {}
        for i, p in enumerate(map(tuple, pairs[:, cols])):
            if p in seen:
                raise PMATrackError(f"{path}:{lines[i]}: {side} point ({p[0]:g}, {p[1]:g}) repeats line "
                                    f"{lines[seen[p]]}; each pair needs its own points")
            seen[p] = i
    return pairs


def _hartley(pts: np.ndarray) -> np.ndarray:
    """(N, 2) points moved to mean 0 and mean distance sqrt(2) from it, so that the DLT is well conditioned."""
    c = pts - pts.mean(axis=0)
    d = np.sqrt((c ** 2).sum(axis=1)).mean()
    return c * (np.sqrt(2) / d) if d > 0 else c


def dlt_determined(pairs: np.ndarray) -> bool:
    """Whether the point pairs fix a unique homography: the DLT system ``A h = 0`` (2N x 9, two rows a pair)

        [x, y, 1, 0, 0, 0, -u x, -u y, -u] h = 0,    [0, 0, 0, x, y, 1, -v x, -v y, -v] h = 0

    must have rank 8, leaving one solution up to scale. Repeated points, all points on a line, or all but one on
    a line leave a larger null space: any H in it fits (OpenCV then returns one of them, finite and wrong)."""
    (x, y), (u, v) = _hartley(pairs[:, :2]).T, _hartley(pairs[:, 2:]).T
    one, zero = np.ones_like(x), np.zeros_like(x)
    A = np.concatenate([np.stack([x, y, one, zero, zero, zero, -u * x, -u * y, -u], axis=1),
                        np.stack([zero, zero, zero, x, y, one, -v * x, -v * y, -v], axis=1)])  # (2N, 9)
    s = np.linalg.svd(A, compute_uv=False)
    return len(s) >= 8 and s[7] > DEGENERATE_TOL * s[0]


def check_homography(H: np.ndarray, where: str) -> np.ndarray:
    """``H`` as a (3, 3) float array scaled to H[2, 2] = 1 (when H[2, 2] != 0), or an error naming ``where``:
    non-finite, all zero, or singular (``geometry.homography_problem``: it would fold the image onto a line)."""
    H = np.asarray(H, dtype=np.float64).reshape(3, 3)
    if not np.any(H):
        raise PMATrackError(f"{where}: the homography is all zero")
    problem = homography_problem(H, max_condition=1 / SINGULAR_TOL)
    if problem:
        raise PMATrackError(f"{where}: the homography cannot be used: {problem}")
    s = np.linalg.svd(H, compute_uv=False)
    return normalize_h(H) if abs(H[2, 2]) > SINGULAR_TOL * s[0] else H


def fit_homography(pairs: np.ndarray, ransac_px: float | None = None):
    """Fit the RGB -> TIR homography to (N, 4) pairs ``x_rgb y_rgb x_tir y_tir`` with ``cv2.findHomography``:
    least squares over all pairs, or RANSAC with an inlier threshold of ``ransac_px`` TIR px.

    Returns ``(H (3, 3), errors (N,) TIR px, inliers (N,) bool)``: ``errors[i] = |H p_rgb_i - p_tir_i|``;
    ``inliers`` is RANSAC's choice (all True for least squares)."""
    pairs = np.asarray(pairs, dtype=np.float64).reshape(-1, 4)
    if len(pairs) < 4:
        raise PMATrackError(f"{len(pairs)} point pair(s); a homography needs at least 4")
    if not dlt_determined(pairs):
        raise PMATrackError(f"the {len(pairs)} point pairs do not fix a homography: fewer than 4 of them are in "
                            "general position (repeated points, all on a line, or all but one on a line)")
    src, dst = pairs[:, :2], pairs[:, 2:]
    if ransac_px is None:
        H, _ = cv2.findHomography(src, dst, 0)
        inliers = np.ones(len(pairs), dtype=bool)
    else:
        H, mask = cv2.findHomography(src, dst, cv2.RANSAC, float(ransac_px), maxIters=5000, confidence=0.999)
        inliers = mask.reshape(-1).astype(bool) if mask is not None else np.zeros(len(pairs), dtype=bool)
        if H is not None and (inliers.sum() < 4 or not dlt_determined(pairs[inliers])):
            raise PMATrackError(f"RANSAC kept {inliers.sum()} of {len(pairs)} pairs within {ransac_px:g} px, too "
                                "few (or degenerate) to fix a homography; raise --ransac or check the pairs")
    if H is None:
        raise PMATrackError(f"OpenCV found no homography for the {len(pairs)} point pairs (degenerate points)")
    H = check_homography(H, "the fitted homography (degenerate points?)")
    # Noise (or rounding) in the TIR points lifts the DLT's 8th singular value even when the RGB points are
    # degenerate; on the pairs the fit itself predicts (exact, consistent data) the configuration alone decides.
    used = src[inliers]
    if not dlt_determined(np.hstack([used, apply_homography(H, used)])):
        raise PMATrackError(f"the {len(used)} point pairs do not fix a homography: fewer than 4 of the RGB points "
                            "are in general position (all on a line, or all but one on a line); the fit is arbitrary")
    errors = np.linalg.norm(apply_homography(H, src) - dst, axis=1)                      # (N,)
    return H, errors, inliers


def format_homography(H: np.ndarray) -> str:
    """One line of 9 numbers, row-major, ``%.10g``: a row of ``homography.txt``."""
    return " ".join(f"{v:.10g}" for v in np.asarray(H, dtype=np.float64).reshape(-1)) + "\n"


def write_homography_file(path: str | Path, H: np.ndarray) -> None:
    """Write H (RGB px -> TIR px) as one line of 9 numbers, atomically; a bad H is refused before writing."""
    write_text_atomic(path, format_homography(check_homography(H, str(path))))


def read_homography_file(path: str | Path) -> np.ndarray:
    """The (3, 3) RGB px -> TIR px homography of a calibration file (one line of 9 numbers, spaces or commas),
    scaled to H[2, 2] = 1. Missing file, other line counts or value counts, non-numeric, NaN/inf, all-zero or
    singular matrices are errors naming the file and line."""
    path = Path(path)
    rows = read_rows(path, 9, "homography", "(a row-major 3x3 matrix)")                 # (N, 9)
    if len(rows) != 1:
        raise PMATrackError(f"{path}: {len(rows)} homography lines; a calibration file holds one (the rig's "
                            "RGB -> TIR homography)")
    return check_homography(rows[0], f"{path}:{_data_lines(path)[0]}")


def overlay_png(rgb: np.ndarray, tir: np.ndarray, H: np.ndarray, pairs: np.ndarray, errors: np.ndarray,
                inliers: np.ndarray, title: str) -> bytes:
    """PNG bytes of the check figure: the TIR frame warped into RGB px by H^-1 and blended on the RGB frame (left)
    and a checkerboard of the two (right; edges run on across the squares when H fits), with the RGB points
    (green circles) and the TIR points mapped by H^-1 (red crosses; outliers grey)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    h, w = rgb.shape[:2]
    Hinv = invert(H)
    warped = warp_image(tir, Hinv, (w, h)).astype(np.float64)                           # (h, w, 3)
    cover = warp_image(np.ones(tir.shape[:2], np.float32), Hinv, (w, h))[..., None]     # (h, w, 1) 1 where TIR is
    blend = rgb * (1 - 0.5 * cover) + 0.5 * cover * warped
    cell = max(8, min(w, h) // 8)
    ys, xs = np.mgrid[0:h, 0:w]
    board = (((xs // cell + ys // cell) % 2 == 1)[..., None] * cover) > 0.5            # (h, w, 1)
    checker = np.where(board, warped, rgb)
    mapped = apply_homography(Hinv, pairs[:, 2:])                                        # (N, 2) RGB px
    fig = Figure(figsize=(2 * 4.5 * w / max(h, 1) + 0.4, 5.0), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    for k, (img, name) in enumerate(((blend, "TIR warped by $H^{-1}$, blended"), (checker, "checkerboard"))):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.imshow(np.clip(img, 0, 255).astype(np.uint8))
        ax.scatter(pairs[:, 0], pairs[:, 1], s=40, facecolors="none", edgecolors="lime", label="RGB points")
        ax.scatter(mapped[inliers, 0], mapped[inliers, 1], s=40, marker="x", color="red",
                   label="TIR points, $H^{-1}$")
        if not inliers.all():
            ax.scatter(mapped[~inliers, 0], mapped[~inliers, 1], s=40, marker="x", color="0.6", label="outliers")
        ax.set(title=name, xlim=(-0.5, w - 0.5), ylim=(h - 0.5, -0.5))
        ax.axis("off")
    fig.axes[0].legend(fontsize=9, loc="lower left")
    fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _px(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not np.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a threshold in px > 0, got {text!r}")
    return v


def add_cli(sub) -> None:
    c = sub.add_parser("calibrate", help="fit the RGB -> TIR homography of a camera pair (for track --homography)")
    c.add_argument("--rgb", required=True, help="RGB video, folder of frames or image (its first frame is used)")
    c.add_argument("--tir", required=True, help="TIR video, folder of frames or image (its first frame is used)")
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument("--points", help="point pairs, one a line: x_rgb y_rgb x_tir y_tir (spaces or commas), >= 4")
    src.add_argument("--boxes", nargs=2, type=box_arg, metavar=("RGB_BOX", "TIR_BOX"),
                     help="one target's box in each frame, x,y,w,h: per-axis scale and shift only (quote a box "
                          "that starts with a minus sign with a leading space: ' -5,3,10,10')")
    c.add_argument("--out", required=True, help="homography file: one line of 9 numbers, row-major")
    c.add_argument("--ransac", type=_px, default=None, metavar="PX",
                   help="fit with RANSAC, inlier threshold PX (TIR px), to ignore wrong pairs (with --points)")
    c.add_argument("--figure", default=None, help="overlay PNG (default: --out with .png)")
    c.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args) -> None:
    """Fit, check, draw, then write H and the figure (nothing is written when anything fails first)."""
    figure = Path(args.figure) if args.figure else Path(args.out).with_suffix(".png")
    output_file(args.out)
    output_file(str(figure))
    if figure.resolve() == Path(args.out).resolve():
        raise PMATrackError(f"{args.out}: the homography and the figure would be the same file; give --figure")
    if args.boxes is not None and args.ransac is not None:
        raise PMATrackError("--ransac needs --points (two boxes give exactly 4 corner pairs)")
    rgb, tir = first_frame(args.rgb), first_frame(args.tir)                            # (H, W, 3), (h, w, 3)
    if args.points is not None:
        pairs = read_point_pairs(args.points)
        H, errors, inliers = fit_homography(pairs, args.ransac)
    else:
        box_rgb, box_tir = args.boxes
        pairs = np.concatenate([box_corners(box_rgb)[0], box_corners(box_tir)[0]], axis=1)   # (4, 4)
        H = check_homography(fit_box_homography(box_rgb, box_tir), "--boxes")
        errors = np.linalg.norm(apply_homography(H, pairs[:, :2]) - pairs[:, 2:], axis=1)
        inliers = np.ones(4, dtype=bool)
    for side, pts, img in (("RGB", pairs[:, :2], rgb), ("TIR", pairs[:, 2:], tir)):
        out = (pts < -0.5).any(axis=1) | (pts[:, 0] > img.shape[1] - 0.5) | (pts[:, 1] > img.shape[0] - 0.5)
        if out.any() and args.points is not None:
            print(f"warning: {out.sum()} {side} point(s) of {args.points} outside the {img.shape[1]}x{img.shape[0]} "
                  f"{side} frame (columns are x_rgb y_rgb x_tir y_tir)", file=sys.stderr)
    e = errors[inliers]
    summary = f"reprojection error: mean {e.mean():.3g} px, max {e.max():.3g} px over {len(e)} pairs"
    if args.ransac is not None:
        summary += f" (RANSAC {args.ransac:g} px: {len(e)} of {len(pairs)} inliers)"
    png = overlay_png(rgb, tir, H, pairs, errors, inliers, summary)
    with atomic_path(figure) as tmp:
        tmp.write_bytes(png)
        write_homography_file(args.out, H)          # the figure is renamed into place only if this succeeds
    print("H (RGB px -> TIR px):")
    for row in H:
        print("  " + " ".join(f"{v:14.6g}" for v in row))
    print(summary)
    lines = _data_lines(Path(args.points)) if args.points is not None else None       # the pairs' line numbers
    worst = int(np.argmax(errors))
    if args.ransac is None and lines and errors[worst] > 3 * max(np.median(errors), 1.0):
        print(f"{args.points}:{lines[worst]}: this pair is off by {errors[worst]:.3g} px: a wrong pair? "
              "--ransac PX would leave it out")
    if not inliers.all():
        print(f"outliers ({args.points}): " + ", ".join(f"line {lines[i]} ({errors[i]:.3g} px)"
                                                         for i in np.flatnonzero(~inliers)))
    print(f"wrote {args.out} (for track --homography) and {figure} (overlay)")
