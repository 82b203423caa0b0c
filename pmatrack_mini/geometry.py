"""Boxes, homographies and warps.

Conventions used throughout the package
---------------------------------------
* Pixel centres sit at integer coordinates (OpenCV's convention). Pixel ``(i, j)`` covers the
  continuous square ``[i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]``.
* A box ``x, y, w, h`` (the datasets' top-left format) covers the pixels ``x .. x + w - 1``,
  i.e. the continuous extent ``[x - 0.5, x + w - 0.5]``. :func:`warp_boxes` maps that extent.
* A homography ``H`` (3x3, row-major) maps a source pixel to a target pixel:
  ``[u, v, 1]^T ~ H [x, y, 1]^T``. In the generator ``H_t`` maps RGB pixels to TIR pixels.
* Box-format converters work on numpy arrays and torch tensors alike (last axis = 4).
* One box centre, two coordinate systems. :func:`box_center` gives the centre in pixel-centre coordinates,
  ``(x + (w - 1) / 2, y + (h - 1) / 2)``: the LasHeR toolkit's centre, used by the metrics, the crops, the
  generator and the alignment targets. ``cx, cy`` in the ``cxcywh`` formats are in *edge* coordinates (a box
  spans ``[x, x + w]``), the OSTrack convention for the network's normalised boxes, where 0 and 1 are the crop's
  outer edges; subtract 0.5 px to get the pixel-centre coordinate (``normalized_to_crop_px``).
* Alignment parameters (dx, dy, log sx, log sy) are anchored at the search-crop centre ``(S - 1) / 2``
  (:func:`crop_center`), a point the network and the tracker both know:
  ``H = T(c + d) diag(sx, sy, 1) T(-c)`` maps RGB crop px to TIR crop px (:func:`params_to_homography`);
  :func:`alignment_params` reads them back. Successive stages compose by homography products.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .errors import PMATrackError

# ----------------------------------------------------------------------------- boxes


def _stack(cols, like):
    if isinstance(like, torch.Tensor):
        return torch.stack(cols, dim=-1)
    return np.stack(cols, axis=-1)


def xywh_to_xyxy(b):
    """(..., 4) x, y, w, h  ->  x1, y1, x2, y2 with x2 = x + w (continuous extent, no -1)."""
    x, y, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return _stack([x, y, x + w, y + h], b)


def xyxy_to_xywh(b):
    x1, y1, x2, y2 = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return _stack([x1, y1, x2 - x1, y2 - y1], b)


def xywh_to_cxcywh(b):
    x, y, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return _stack([x + w / 2, y + h / 2, w, h], b)


def cxcywh_to_xywh(b):
    cx, cy, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return _stack([cx - w / 2, cy - h / 2, w, h], b)


def xyxy_to_cxcywh(b):
    return xywh_to_cxcywh(xyxy_to_xywh(b))


def cxcywh_to_xyxy(b):
    return xywh_to_xyxy(cxcywh_to_xywh(b))


def box_center(b):
    """Centre of x, y, w, h boxes in pixel-centre coordinates: (x + (w - 1) / 2, y + (h - 1) / 2).

    The package's one box centre (see the module docstring); numpy or torch, any leading shape."""
    return _stack([b[..., 0] + (b[..., 2] - 1) / 2, b[..., 1] + (b[..., 3] - 1) / 2], b)


def normalized_to_crop_px(xy, size: int):
    """Normalised edge coordinates (0 and 1 = the crop's outer edges) -> pixel-centre crop px: u = x S - 0.5."""
    return xy * size - 0.5


def crop_center(size: int) -> float:
    """The centre of an S-px crop in pixel-centre coordinates, (S - 1) / 2: the anchor of alignment parameters."""
    return (size - 1) / 2


# ----------------------------------------------------------------------------- homographies


def translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def homography_from_params(dx: float = 0.0, dy: float = 0.0, sx: float = 1.0, sy: float = 1.0,
                           center=(0.0, 0.0), angle_deg: float = 0.0) -> np.ndarray:
    """Alignment parameters -> 3x3 homography.

    The point ``center`` moves by ``(dx, dy)``; around it the plane is scaled by ``(sx, sy)``
    and rotated by ``angle_deg``:  p' = c + d + R S (p - c),  i.e.  H = T(c + d) R S T(-c).
    """
    cx, cy = center
    a = np.deg2rad(angle_deg)
    rs = np.array([[np.cos(a) * sx, -np.sin(a) * sy, 0.0],
                   [np.sin(a) * sx, np.cos(a) * sy, 0.0],
                   [0.0, 0.0, 1.0]])
    return translation(cx + dx, cy + dy) @ rs @ translation(-cx, -cy)


def fit_box_homography(box_src, box_dst) -> np.ndarray:
    """H0 from two boxes of one target (x, y, w, h; e.g. the first-frame RGB and TIR boxes): the map that takes
    the extent of ``box_src`` onto the extent of ``box_dst``, per axis a scale and a shift,

        u = x0' + (x - x0) w' / w,   v = y0' + (y - y0) h' / h      (x0 = x - 0.5: the box's left edge)

    which is what ``cv2.findHomography`` returns for the four corner pairs of two axis-aligned boxes (tested):
    4 correspondences, 4 degrees of freedom; no rotation or perspective can be read from two boxes.
    """
    (xs, ys), (xd, yd) = box_corners(box_src)[0, 0], box_corners(box_dst)[0, 0]
    sx = float(box_dst[2]) / float(box_src[2])
    sy = float(box_dst[3]) / float(box_src[3])
    return np.array([[sx, 0.0, xd - sx * xs], [0.0, sy, yd - sy * ys], [0.0, 0.0, 1.0]])


def resize_homography(src_size, dst_size) -> np.ndarray:
    """Pixel map of a resize from ``src_size`` (W, H) to ``dst_size`` (W, H), as cv2.resize samples it.

    With pixel centres at integers: u = (x + 0.5) * W_dst / W_src - 0.5.
    """
    sx = dst_size[0] / src_size[0]
    sy = dst_size[1] / src_size[1]
    return translation(-0.5, -0.5) @ np.diag([sx, sy, 1.0]) @ translation(0.5, 0.5)


def normalize_h(H: np.ndarray) -> np.ndarray:
    """Scale so that H[2, 2] == 1."""
    H = np.asarray(H, dtype=np.float64)
    return H / H[..., 2:3, 2:3]


def compose(*Hs: np.ndarray) -> np.ndarray:
    """compose(A, B, C) = A @ B @ C: C is applied first, A last."""
    out = np.eye(3)
    for H in Hs:
        out = out @ np.asarray(H, dtype=np.float64)
    return normalize_h(out)


def invert(H: np.ndarray) -> np.ndarray:
    return normalize_h(np.linalg.inv(np.asarray(H, dtype=np.float64)))


def valid_box(box, what: str) -> np.ndarray:
    """``box`` as a (4,) float array x, y, w, h, or a PMATrackError naming ``what`` unless it is 4 finite numbers with
    w, h > 0."""
    b = np.asarray(box, dtype=np.float64)
    if b.shape != (4,) or not np.all(np.isfinite(b)) or b[2] <= 0 or b[3] <= 0:
        raise PMATrackError(f"{what} must be 4 finite numbers with w, h > 0, got {b.tolist()}")
    return b


def homography_problem(H, max_condition: float = 1e10) -> str | None:
    """Why ``H`` cannot serve as a homography (not 3x3, not finite, singular or nearly so: the ratio of its largest
    to its smallest singular value above ``max_condition``), or None when it can."""
    H = np.asarray(H, dtype=np.float64)
    if H.shape != (3, 3):
        return f"expected a 3x3 matrix, got shape {H.shape}"
    if not np.all(np.isfinite(H)):
        return "it holds NaN or infinite values"
    s = np.linalg.svd(H, compute_uv=False)
    if s[0] == 0 or s[-1] <= s[0] / max_condition:
        return "it is singular (not invertible)"
    return None


def apply_homography(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (N, 2) points: [u, v, w]^T = H [x, y, 1]^T, then divide by w."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    hom = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ np.asarray(H, dtype=np.float64).T  # (N, 3)
    return hom[:, :2] / hom[:, 2:3]


def box_corners(boxes_xywh: np.ndarray) -> np.ndarray:
    """(N, 4) boxes -> (N, 4, 2) corners of their continuous extent [x - 0.5, x + w - 0.5]."""
    b = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    x0, y0 = b[:, 0] - 0.5, b[:, 1] - 0.5
    x1, y1 = x0 + b[:, 2], y0 + b[:, 3]
    return np.stack([np.stack([x0, y0], -1), np.stack([x1, y0], -1),
                     np.stack([x1, y1], -1), np.stack([x0, y1], -1)], axis=1)


def warp_boxes(H: np.ndarray, boxes_xywh: np.ndarray) -> np.ndarray:
    """Axis-aligned bounding boxes (x, y, w, h) of boxes mapped by H (one H, or one per box)."""
    corners = box_corners(boxes_xywh)  # (N, 4, 2)
    H = np.asarray(H, dtype=np.float64)
    if H.ndim == 2:
        mapped = apply_homography(H, corners.reshape(-1, 2)).reshape(-1, 4, 2)
    else:
        mapped = np.stack([apply_homography(h, c) for h, c in zip(H, corners)])
    lo, hi = mapped.min(axis=1), mapped.max(axis=1)
    return np.concatenate([lo + 0.5, hi - lo], axis=1)


def warp_image(img: np.ndarray, H: np.ndarray, dsize, border_value=0) -> np.ndarray:
    """Warp an image with OpenCV: out(p) = img(H^-1 p), bilinear, constant border. dsize = (W, H)."""
    return cv2.warpPerspective(img, np.asarray(H, dtype=np.float64), tuple(int(v) for v in dsize),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)


# ----------------------------------------------------------------------------- torch (features)


def pixel_grid(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(h, w, 2) pixel-centre coordinates (x, y)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=dtype),
                            torch.arange(w, device=device, dtype=dtype), indexing="ij")
    return torch.stack([xs, ys], dim=-1)


def apply_homography_torch(H: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """H (B, 3, 3), pts (B, ..., 2) -> mapped (B, ..., 2). Differentiable in both."""
    B = H.shape[0]
    flat = pts.reshape(B, -1, 2)                                       # (B, P, 2)
    hom = torch.cat([flat, torch.ones_like(flat[..., :1])], dim=-1)    # (B, P, 3)
    out = hom @ H.transpose(1, 2)                                       # (B, P, 3)
    out = out[..., :2] / out[..., 2:3]
    return out.reshape(pts.shape)


def homography_sampling_grid(H: torch.Tensor, src_hw, dst_hw) -> torch.Tensor:
    """Normalised grid for ``F.grid_sample`` that warps a (src_h, src_w) map by H into (dst_h, dst_w).

    H (B, 3, 3) maps source pixels to destination pixels. Each destination pixel p samples the
    source at H^-1 p, normalised with align_corners=True: g = 2 x / (W - 1) - 1.
    """
    B = H.shape[0]
    Hinv = torch.linalg.inv(H)
    grid = pixel_grid(dst_hw[0], dst_hw[1], device=H.device, dtype=H.dtype)   # (h, w, 2)
    src = apply_homography_torch(Hinv, grid.expand(B, *grid.shape))         # (B, h, w, 2)
    sh, sw = src_hw
    scale = torch.tensor([2.0 / max(sw - 1, 1), 2.0 / max(sh - 1, 1)], device=H.device, dtype=H.dtype)
    return src * scale - 1.0


def warp_features(feat: torch.Tensor, H: torch.Tensor, out_hw=None) -> torch.Tensor:
    """Differentiable, batched warp of feature maps: feat (B, C, h, w), H (B, 3, 3) -> (B, C, h', w').

    Matches :func:`warp_image` (cv2.warpPerspective, bilinear, zero border) up to OpenCV's
    fixed-point interpolation weights.
    """
    if feat.ndim != 4 or H.shape[-2:] != (3, 3) or H.shape[0] != feat.shape[0]:
        raise ValueError(f"warp_features wants feat (B,C,h,w) and H (B,3,3); got {tuple(feat.shape)}, {tuple(H.shape)}")
    out_hw = out_hw or feat.shape[-2:]
    grid = homography_sampling_grid(H.to(feat.dtype), feat.shape[-2:], out_hw)
    return F.grid_sample(feat, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def params_to_homography(params: torch.Tensor, center) -> torch.Tensor:
    """Alignment parameters -> homography, batched and differentiable.

    params (B, 4): dx, dy (px), log sx, log sy, anchored at ``center`` (a point, or (B, 2)); returns (B, 3, 3)

        H = T(c + d) diag(sx, sy, 1) T(-c):   p' = c + d + diag(sx, sy) (p - c)
    """
    B = params.shape[0]
    c = torch.as_tensor(center, dtype=params.dtype, device=params.device).expand(B, 2)
    s = torch.exp(params[:, 2:4])                                      # (B, 2)
    t = c + params[:, :2] - s * c                                      # (B, 2)
    H = params.new_zeros(B, 3, 3)
    H[:, 0, 0], H[:, 1, 1], H[:, 2, 2] = s[:, 0], s[:, 1], 1.0
    H[:, 0, 2], H[:, 1, 2] = t[:, 0], t[:, 1]
    return H


def invert_homography_torch(H: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) -> inverses normalised to H[2, 2] = 1."""
    inv = torch.linalg.inv(H)
    return inv / inv[:, 2:3, 2:3]


def alignment_params(H: torch.Tensor, center) -> torch.Tensor:
    """Alignment parameters of a homography at a point, batched: the inverse of :func:`params_to_homography`
    at the same anchor (exact for that family), and the ground truth of the alignment stages.

    H (B, 3, 3) maps RGB crop px -> TIR crop px; center (B, 2) or (2,) is the anchor (crop px).
    Returns (B, 4): the centre displacement d = H(c) - c and the log local scales, from the Jacobian of
    u = (h11 x + h12 y + h13) / w, v = (h21 x + h22 y + h23) / w, w = h31 x + h32 y + h33 at c:
        s_x = du/dx = (h11 - u h31) / w,    s_y = dv/dy = (h22 - v h32) / w.
    Identity gives zeros; a pure shift gives the shift; a pure scale about c gives (0, 0, log s_x, log s_y).
    """
    center = torch.as_tensor(center, dtype=H.dtype, device=H.device).expand(H.shape[0], 2)
    x, y = center[:, 0], center[:, 1]
    w = H[:, 2, 0] * x + H[:, 2, 1] * y + H[:, 2, 2]
    u = (H[:, 0, 0] * x + H[:, 0, 1] * y + H[:, 0, 2]) / w
    v = (H[:, 1, 0] * x + H[:, 1, 1] * y + H[:, 1, 2]) / w
    sx = (H[:, 0, 0] - u * H[:, 2, 0]) / w
    sy = (H[:, 1, 1] - v * H[:, 2, 1]) / w
    return torch.stack([u - x, v - y, torch.log(sx), torch.log(sy)], dim=1)


def homography_in_cells(H: torch.Tensor, patch: int) -> torch.Tensor:
    """A crop-px homography (B, 3, 3) expressed on the token grid: token j's centre is crop px P j + (P - 1) / 2,
    so with A = [[P, 0, (P - 1) / 2], [0, P, (P - 1) / 2], [0, 0, 1]] (cells -> px), H_cell = A^-1 H A."""
    o = (patch - 1) / 2
    A = H.new_tensor([[patch, 0.0, o], [0.0, patch, o], [0.0, 0.0, 1.0]])
    A_inv = H.new_tensor([[1.0 / patch, 0.0, -o / patch], [0.0, 1.0 / patch, -o / patch], [0.0, 0.0, 1.0]])
    return A_inv @ H @ A


def cell_grid_to_normalized(p: torch.Tensor, grid: int) -> torch.Tensor:
    """Token-cell coordinates (token j at j) -> ``grid_sample`` coordinates with align_corners=True: 2 p / (G - 1) - 1.

    This pairing is the package's one grid convention: cell centres at integers and align_corners=True, so an
    identity map samples every token exactly at itself (the official code mixes an align_corners=False
    reference grid with align_corners=True sampling and lands half a token off)."""
    return p * (2.0 / max(grid - 1, 1)) - 1.0
