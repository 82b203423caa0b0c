"""Training pairs (template, search) over LasHeR-format sequences, both modalities.

For each sample: a sequence, a template frame and a search frame at most ``max_gap`` apart. The
template is cut around the RGB box (factor 2); the search region around a jittered box (OSTrack:
size * exp(N(0, 1) * scale_jitter), centre + sqrt(w h) * center_jitter * U(-0.5, 0.5); factor 4).
TIR crops are cut at the RGB crop's place mapped by the resolution change only (naive). With
``tir_template="gt"`` the TIR *template* is instead centred on the TIR box of the template frame, as a tracker
initialised with both first-frame boxes does (the alignment experts' setting); the search crops stay naive.

Ground truth exposed per sample, in the search crop:
  ``box``      RGB target, normalised cx, cy, w, h        (what the tracker regresses)
  ``tir_box``  TIR target in the naive TIR crop, same units
  ``offset``   TIR centre - RGB centre, crop pixels       (what alignment has to undo)
  ``H_crop``   RGB crop px -> TIR crop px (exact, from homography.txt; NaN when unknown)
  ``px_per_crop_px``  RGB image px per search-crop px (to report errors in image pixels)
  ``seq``, ``frame``  where the search frame came from (for per-attribute evaluation)

Batches are a pure function of (seed, step, rank): a resumed run sees the same data.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import ModelConfig, TrainConfig
from ..errors import PMATrackError
from ..geometry import apply_homography, resize_homography, warp_boxes, xywh_to_cxcywh
from .crops import box_center_xy, crop_matrix, crop_pair, crop_side, cut
from .dataset import Sequence


CACHE_MAX_FRAMES = 20000   # about 6 GB of decoded 320x256 RGB + 160x128 TIR frames


class PairSampler:
    def __init__(self, sequences: list[Sequence], model_cfg: ModelConfig, train_cfg: TrainConfig,
                 cache: bool | None = None, tir_template: str = "naive"):
        if not sequences:
            raise PMATrackError("the pair sampler needs at least one sequence")
        if tir_template not in ("naive", "gt"):
            raise PMATrackError(f"tir_template must be 'naive' or 'gt', got {tir_template!r}")
        self.tir_template = tir_template
        self.seqs = sequences
        self.m, self.t = model_cfg, train_cfg
        if cache is None:  # keep decoded frames in memory only for small (generated) sets, not for LasHeR
            cache = sum(len(s) for s in sequences) <= CACHE_MAX_FRAMES
        self.cache = {} if cache else None
        self.S_res = [resize_homography(*s.sizes()) for s in sequences]
        self.valid = [np.flatnonzero((s.gt_visible[:, 2:] > 0).all(1) & (s.gt_infrared[:, 2:] > 0).all(1))
                      for s in sequences]
        if not any(len(v) for v in self.valid):
            raise PMATrackError("no frame with a valid box in the training sequences")

    def _frames(self, i: int, t: int):
        key = (i, t)
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        pair = (self.seqs[i].rgb(t), self.seqs[i].tir(t))
        if self.cache is not None:
            self.cache[key] = pair
        return pair

    def sample(self, rng: np.random.Generator) -> dict:
        while True:
            i = int(rng.integers(len(self.seqs)))
            if len(self.valid[i]):
                break
        seq, valid, S = self.seqs[i], self.valid[i], self.S_res[i]
        tz = int(rng.choice(valid))
        near = valid[np.abs(valid - tz) <= self.t.max_gap]
        tx = int(rng.choice(near))
        # template: no jitter
        bz = seq.gt_visible[tz]
        z_side = crop_side(bz, self.m.template_factor)
        z_rgb, z_tir, _, _ = crop_pair(*self._frames(i, tz), box_center_xy(bz), z_side, self.m.template_size, S)
        if self.tir_template == "gt":  # centred on the TIR box, same scale as the RGB template
            c_tir = apply_homography(np.linalg.inv(S), box_center_xy(seq.gt_infrared[tz])[None])[0]
            C = crop_matrix(c_tir[0], c_tir[1], z_side, self.m.template_size) @ np.linalg.inv(S)
            z_tir = cut(self._frames(i, tz)[1], C, self.m.template_size)
        # search: OSTrack's jitter
        bx = seq.gt_visible[tx]
        size = bx[2:] * np.exp(rng.standard_normal(2) * self.t.scale_jitter)
        max_off = np.sqrt(np.prod(size)) * self.t.center_jitter
        center = box_center_xy(bx) + max_off * (rng.random(2) - 0.5)
        side = self.m.search_factor * np.sqrt(np.prod(size))
        out = self.m.search_size
        x_rgb, x_tir, C_rgb, C_tir = crop_pair(*self._frames(i, tx), center, side, out, S)
        box = xywh_to_cxcywh(warp_boxes(C_rgb, bx[None])[0]) / out
        tir_box = xywh_to_cxcywh(warp_boxes(C_tir, seq.gt_infrared[tx][None])[0]) / out
        if seq.homography is not None:
            H_crop = C_tir @ seq.homography[tx] @ np.linalg.inv(C_rgb)
            H_crop /= H_crop[2, 2]
        else:
            H_crop = np.full((3, 3), np.nan)
        return dict(z_rgb=z_rgb, x_rgb=x_rgb, z_tir=z_tir, x_tir=x_tir, box=box, tir_box=tir_box,
                    offset=(tir_box[:2] - box[:2]) * out, H_crop=H_crop, px_per_crop_px=np.float64(side / out),
                    seq=np.int64(i), frame=np.int64(tx))

    def batch(self, step: int, batch_size: int, seed: int = 0, rank: int = 0) -> dict:
        rng = np.random.default_rng([seed, step, rank])
        items = [self.sample(rng) for _ in range(batch_size)]
        return collate(items)


def to_tensor_images(imgs: list | np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [0, 1]."""
    arr = np.ascontiguousarray(np.stack(imgs))
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)


def collate(items: list[dict]) -> dict:
    out = {k: to_tensor_images([it[k] for it in items]) for k in ("z_rgb", "x_rgb", "z_tir", "x_tir")}
    for k in ("box", "tir_box", "offset", "H_crop", "px_per_crop_px"):
        out[k] = torch.from_numpy(np.stack([it[k] for it in items])).float()
    for k in ("seq", "frame"):
        out[k] = torch.from_numpy(np.stack([it[k] for it in items]))
    return out
