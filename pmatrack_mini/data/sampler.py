"""Training pairs (template, search) over LasHeR-format sequences, both modalities.

For each sample: a sequence, a template frame and a search frame at most ``max_gap`` apart (or the sequence's
first valid frame as the template: ``template_frame="first"``, the tracker's setting, for evaluation). The
template is cut around the RGB box (factor 2); the search region around a jittered box (OSTrack:
size * exp(N(0, 1) * scale_jitter), centre + sqrt(w h) * center_jitter * U(-0.5, 0.5); factor 4).

TIR crops are cut through a pre-alignment, as the tracker cuts them at test time (``train.prealign``; the
train/test protocol must match):

* ``none``: resolution change only, template and search (naive);
* ``first-frame``: template and search through H0 = ``fit_box_homography`` of the template frame's RGB and TIR
  boxes (the tracker's first-frame pre-alignment with the template frame as frame 1);
* ``mixture``: template through H0; search through the true H_t perturbed by a residual Q (RGB image px, about
  the target centre): H_pre = H_t Q^-1, Q drawn from {zero, small (N(0, small_px) per axis, scale N(0, 2 %)),
  large (length U(0, large_px), scale 1 +- residual_scale per axis), the template frame's H0 itself}, with
  probabilities ``residual_mix``. The alignment network so learns to output ~0 when the crops already agree and
  to correct large residuals. Needs ``homography.txt`` (generated data).

Ground truth exposed per sample, in the search crop:
  ``box``      RGB target, normalised cx, cy, w, h        (what the tracker regresses)
  ``tir_box``  TIR target in the TIR crop, same units
  ``offset``   TIR centre - RGB centre, crop pixels       (what alignment has to undo)
  ``H_crop``   RGB crop px -> TIR crop px (exact, from homography.txt; NaN when unknown)
  ``px_per_crop_px``  RGB image px per search-crop px (to report errors in image pixels)
  ``residual_kind``   which mixture component cut the TIR search crop (0 zero, 1 small, 2 large, 3 first-frame;
                      -1 outside ``mixture``)
  ``seq``, ``frame``  where the search frame came from (for per-attribute evaluation)
  ``template_frame``  the frame the template was cut from

The target is not always visible in a crop: the box of an occluded or dark frame is still the target's place (as
LasHeR annotates it), the search jitter can put the box at the crop's edge, and a naive TIR crop can miss the TIR
target altogether; :func:`target_visibility` says which, per sample.

Batches are a pure function of (seed, step, rank): a resumed run sees the same data, and so does a run whose
batches are cut by other processes. :func:`batch_loader` serves them to the training loop through a torch
DataLoader: item k of :class:`StepBatches` is the batch of step ``start + k`` of one rank, cut in ``num_workers``
worker processes (decoding and warping leave the training loop's thread) and delivered in step order, the same
batches for any number of workers.

Decoded frames are cached per process (small, generated sets only): with workers, each worker keeps its own cache,
so the cap :data:`CACHE_MAX_FRAMES` is shared out among a rank's workers and the memory per rank stays bounded.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import ModelConfig, TrainConfig
from ..errors import PMATrackError
from ..geometry import fit_box_homography, homography_from_params, resize_homography, warp_boxes, xywh_to_cxcywh
from .crops import crop_around, crop_pair
from .dataset import Sequence


CACHE_MAX_FRAMES = 20000   # per rank: about 6 GB of decoded 320x256 RGB + 160x128 TIR frames
RESIDUAL_KINDS = ("zero", "small", "large", "first-frame")


class PairSampler:
    def __init__(self, sequences: list[Sequence], model_cfg: ModelConfig, train_cfg: TrainConfig,
                 cache: bool | None = None, template_frame: str = "random", cache_frames: int = CACHE_MAX_FRAMES):
        if not sequences:
            raise PMATrackError("the pair sampler needs at least one sequence")
        if template_frame not in ("random", "first"):
            raise PMATrackError(f"template_frame must be 'random' or 'first', got {template_frame!r}")
        if train_cfg.prealign == "mixture":
            missing = [s.name for s in sequences if s.homography is None]
            if missing:
                raise PMATrackError(f"train.prealign=mixture perturbs the true homography; {missing[0]} has no "
                                    f"homography.txt (use generated data, or train.prealign=first-frame)")
        self.template_frame = template_frame
        self.seqs = sequences
        self.m, self.t = model_cfg, train_cfg
        if cache is None:  # keep decoded frames in memory only for small (generated) sets, not for LasHeR
            cache = sum(len(s) for s in sequences) <= cache_frames
        self.cache = {} if cache else None
        self.S_res = [resize_homography(*s.sizes()) for s in sequences]
        self.valid = [np.flatnonzero((s.gt_visible[:, 2:] > 0).all(1) & (s.gt_infrared[:, 2:] > 0).all(1))
                      for s in sequences]
        if not any(len(v) for v in self.valid):
            raise PMATrackError("no frame with a valid box in the training sequences")
        mix = np.asarray(train_cfg.residual_mix, dtype=np.float64)
        self.mix = mix / mix.sum()

    def _frames(self, i: int, t: int):
        key = (i, t)
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        pair = (self.seqs[i].rgb(t), self.seqs[i].tir(t))
        if self.cache is not None:
            self.cache[key] = pair
        return pair

    def _search_prealign(self, seq: Sequence, tx: int, H0: np.ndarray, S: np.ndarray, rng) -> tuple:
        """(H_pre, residual kind index) for the TIR search crop of frame tx."""
        if self.t.prealign == "none":
            return S, -1
        if self.t.prealign == "first-frame":
            return H0, -1
        kind = int(rng.choice(len(RESIDUAL_KINDS), p=self.mix))
        if RESIDUAL_KINDS[kind] == "first-frame":
            return H0, kind
        d, log_s = np.zeros(2), np.zeros(2)
        if RESIDUAL_KINDS[kind] == "small":
            d = rng.standard_normal(2) * self.t.residual_small_px
            log_s = rng.standard_normal(2) * 0.02
        elif RESIDUAL_KINDS[kind] == "large":
            ang = rng.uniform(0, 2 * np.pi)
            d = rng.uniform(0, self.t.residual_large_px) * np.array([np.cos(ang), np.sin(ang)])
            log_s = rng.uniform(-1, 1, 2) * np.log1p(self.t.residual_scale)
        c, _ = crop_around(seq.gt_visible[tx], 1.0)
        Q = homography_from_params(d[0], d[1], np.exp(log_s[0]), np.exp(log_s[1]), center=c)
        return seq.homography[tx] @ np.linalg.inv(Q), kind

    def sample(self, rng: np.random.Generator) -> dict:
        while True:
            i = int(rng.integers(len(self.seqs)))
            if len(self.valid[i]):
                break
        seq, valid, S = self.seqs[i], self.valid[i], self.S_res[i]
        tz = int(valid[0]) if self.template_frame == "first" else int(rng.choice(valid))
        near = valid[np.abs(valid - tz) <= self.t.max_gap] if self.template_frame == "random" else valid[valid > tz]
        tx = int(rng.choice(near if len(near) else valid))
        # template: no jitter, TIR through H0 (or the resolution change alone)
        bz = seq.gt_visible[tz]
        H0 = S if self.t.prealign == "none" else fit_box_homography(bz, seq.gt_infrared[tz])
        z_center, z_side = crop_around(bz, self.m.template_factor)
        z_rgb, z_tir, _, _ = crop_pair(*self._frames(i, tz), z_center, z_side, self.m.template_size, H0)
        # search: OSTrack's jitter; TIR through the pre-alignment
        bx = seq.gt_visible[tx]
        size = bx[2:] * np.exp(rng.standard_normal(2) * self.t.scale_jitter)
        max_off = np.sqrt(np.prod(size)) * self.t.center_jitter
        center = crop_around(bx, 1.0)[0] + max_off * (rng.random(2) - 0.5)
        side = self.m.search_factor * np.sqrt(np.prod(size))
        out = self.m.search_size
        H_pre, kind = self._search_prealign(seq, tx, H0, S, rng)
        x_rgb, x_tir, C_rgb, C_tir = crop_pair(*self._frames(i, tx), center, side, out, H_pre)
        box = xywh_to_cxcywh(warp_boxes(C_rgb, bx[None])[0]) / out
        tir_box = xywh_to_cxcywh(warp_boxes(C_tir, seq.gt_infrared[tx][None])[0]) / out
        if seq.homography is not None:
            H_crop = C_tir @ seq.homography[tx] @ np.linalg.inv(C_rgb)
            H_crop /= H_crop[2, 2]
        else:
            H_crop = np.full((3, 3), np.nan)
        return dict(z_rgb=z_rgb, x_rgb=x_rgb, z_tir=z_tir, x_tir=x_tir, box=box, tir_box=tir_box,
                    offset=(tir_box[:2] - box[:2]) * out, H_crop=H_crop, px_per_crop_px=np.float64(side / out),
                    residual_kind=np.int64(kind), seq=np.int64(i), frame=np.int64(tx), template_frame=np.int64(tz))

    def batch(self, step: int, batch_size: int, seed: int = 0, rank: int = 0, float_images: bool = True) -> dict:
        """The batch of ``step`` for ``rank``; images float in [0, 1], or uint8 with ``float_images=False``."""
        rng = np.random.default_rng([seed, step, rank])
        items = [self.sample(rng) for _ in range(batch_size)]
        return collate(items, float_images)


class StepBatches(torch.utils.data.Dataset):
    """Item k: the batch of step ``start + k`` for ``rank`` (``PairSampler.batch``), for steps [start, end).

    Images stay uint8: a quarter of the bytes to pass from a worker process and to copy to the GPU (measured here:
    about 18 ms instead of 68 ms per paper-size batch of 32 through two workers); the training step turns them
    into floats in [0, 1] on its device."""

    def __init__(self, sampler: PairSampler, start: int, end: int, per_rank: int, seed: int, rank: int):
        self.sampler, self.start, self.end = sampler, start, end
        self.per_rank, self.seed, self.rank = per_rank, seed, rank

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __getitem__(self, k: int) -> dict:
        if not 0 <= k < len(self):
            raise IndexError(k)
        return self.sampler.batch(self.start + k, self.per_rank, seed=self.seed, rank=self.rank, float_images=False)


def batch_loader(sequences: list[Sequence], model_cfg: ModelConfig, train_cfg: TrainConfig, start: int, end: int,
                 per_rank: int, rank: int = 0, pin_memory: bool = False,
                 cache: bool | None = None) -> torch.utils.data.DataLoader:
    """The training batches of steps [start, end) for ``rank``, in step order, cut by ``train_cfg.num_workers``
    processes (0: in the calling thread). Each worker's frame cache gets 1 / num_workers of the cap (``cache``
    forces it on or off, as :class:`PairSampler`'s).

    The loader has its own random generator: creating it must not draw from the global torch stream, which
    drop-path and Gumbel noise use and which a resumed run restores. (Workers are forked and leave OpenCV's
    threads alone: ``cv2.setNumThreads`` hangs in a forked child of a process that used them.)"""
    workers = train_cfg.num_workers
    share = CACHE_MAX_FRAMES // max(1, workers)
    sampler = PairSampler(sequences, model_cfg, train_cfg, cache=cache, cache_frames=share)
    data = StepBatches(sampler, start, end, per_rank, train_cfg.seed, rank)
    return torch.utils.data.DataLoader(data, batch_size=None, shuffle=False, num_workers=workers,
                                       persistent_workers=workers > 0, prefetch_factor=2 if workers else None,
                                       pin_memory=pin_memory, generator=torch.Generator().manual_seed(train_cfg.seed))


def to_tensor_images(imgs: list | np.ndarray, as_float: bool = True) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W): float32 in [0, 1], or uint8 as they are (``as_float=False``)."""
    t = torch.from_numpy(np.ascontiguousarray(np.stack(imgs))).permute(0, 3, 1, 2)
    return t.float().div_(255.0) if as_float else t.contiguous()


def collate(items: list[dict], float_images: bool = True) -> dict:
    out = {k: to_tensor_images([it[k] for it in items], float_images) for k in ("z_rgb", "x_rgb", "z_tir", "x_tir")}
    for k in ("box", "tir_box", "offset", "H_crop", "px_per_crop_px"):
        out[k] = torch.from_numpy(np.stack([it[k] for it in items])).float()
    for k in ("residual_kind", "seq", "frame", "template_frame"):
        out[k] = torch.from_numpy(np.stack([it[k] for it in items]))
    return out


def inside_fraction(boxes: torch.Tensor) -> torch.Tensor:
    """(B, 4) normalised cx, cy, w, h -> (B,) the fraction of each box's area that lies inside the crop [0, 1]^2."""
    lo, hi = boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2
    inside = (hi.clamp(0, 1) - lo.clamp(0, 1)).clamp_min(0).prod(1)
    return (inside / boxes[:, 2:].prod(1).clamp_min(1e-12)).clamp(max=1.0)


def target_visibility(sampler: PairSampler, batch: dict) -> dict:
    """Why the target may not show in a batch's crops, per sample (numpy arrays (B,)):
    ``template_occluded`` / ``search_occluded`` and ``template_dark`` / ``search_dark`` (the frame's ``occlusion`` /
    ``low_illumination`` flag: the box marks where the target is, an occluder or the dark hides it),
    ``rgb_inside`` / ``tir_inside`` (the fraction of the RGB / TIR box inside its search crop; the template crop is
    centred on its box and always holds it)."""
    out = {}
    for when, key in (("template", "template_frame"), ("search", "frame")):
        for name, flag in (("occluded", "occlusion"), ("dark", "low_illumination")):
            out[f"{when}_{name}"] = np.array([bool(sampler.seqs[s].attributes.get(flag, np.zeros(t + 1, bool))[t])
                                              for s, t in zip(batch["seq"].tolist(), batch[key].tolist())])
    out["rgb_inside"] = inside_fraction(batch["box"]).numpy()
    out["tir_inside"] = inside_fraction(batch["tir_box"]).numpy()
    return out
