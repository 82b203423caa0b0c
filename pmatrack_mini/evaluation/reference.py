"""Misalignment statistics and two reference predictions that need no model.

* ``static``: the first-frame box, held still (a floor any tracker should beat);
* ``tir-naive``: the *thermal* ground truth read back into RGB pixels through the resolution
  change only. It is what a perfect thermal tracker reports when it ignores the misalignment,
  so its score shows what the cross-modal offset alone costs.

And one model-free measurement of the premise of FME (notebook 03): how well the two modalities agree, band by band,
on crops cut through the true homography (:func:`band_agreement`).
"""
from __future__ import annotations

import numpy as np

from ..data.dataset import Sequence
from ..errors import PMATrackError
from ..geometry import apply_homography, box_center, invert, resize_homography, warp_boxes

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


BANDS = ("raw", "low", "high_abs", "high")


def band_agreement(sequences: list, factor: float = 4.0, size: int = 128, shifts=(0,), step: int = 1,
                   low_k: int = 5, high_k: int = 3) -> dict:
    """Cross-modal correlation of each band (``models.experts.fme.band_correlations``) on every ``step``-th frame of
    generated sequences: the RGB crop of side ``factor`` sqrt(w h) around the RGB target, resized to ``size`` px,
    and the TIR crop cut through the frame's true homography, so both show the same place (grey levels; only pixels
    inside both images count). ``shifts`` (crop px): the TIR crop also shifted right by each amount, a control for
    how sharply a band's agreement depends on alignment.

    Returns {"sequence": (n,) names, "frame": (n,), "attributes": {name: (n,) bool}, "shifts": list,
    band: (n, len(shifts)) for band in :data:`BANDS`}."""
    import torch

    from ..data.crops import crop_around, crop_pair, cut
    from ..models.experts.fme import band_correlations

    out = {"sequence": [], "frame": [], "attributes": {}, "shifts": list(shifts), **{b: [] for b in BANDS}}
    attr_names = sorted({a for s in sequences for a in s.attributes})
    for a in attr_names:
        out["attributes"][a] = []
    for seq in sequences:
        if seq.homography is None:
            raise PMATrackError(f"{seq.path}: band agreement needs the true homography (homography.txt)")
        frames = range(0, len(seq), step)
        grey, valid = [], []
        for t in frames:
            rgb_img, tir_img = seq.rgb(t), seq.tir(t)
            center, side = crop_around(seq.gt_visible[t], factor)
            rgb, tir, C_rgb, C_tir = crop_pair(rgb_img, tir_img, center, side, size, seq.homography[t])
            inside = [cut(np.ones(img.shape[:2], np.float32), C, size) > 0.999
                      for img, C in ((rgb_img, C_rgb), (tir_img, C_tir))]
            grey.append(np.stack([rgb.mean(-1), tir.mean(-1)]) / 255.0)
            valid.append(np.stack(inside))
        g = torch.tensor(np.stack(grey), dtype=torch.float32)                 # (T, 2, S, S): RGB, TIR
        v = torch.from_numpy(np.stack(valid))                                  # (T, 2, S, S) bool
        corr = band_correlations(g[:, 0:1], g[:, 1:2], v, low_k, high_k, shifts)
        for b in BANDS:
            out[b].append(corr[b].numpy())                                     # (T, len(shifts))
        out["sequence"] += [seq.name] * len(frames)
        out["frame"] += list(frames)
        for a in attr_names:
            flags = seq.attributes.get(a)
            out["attributes"][a] += [bool(flags[t]) if flags is not None else False for t in frames]
    for b in BANDS:
        out[b] = np.concatenate(out[b]) if out[b] else np.zeros((0, len(shifts)))
    out["sequence"], out["frame"] = np.asarray(out["sequence"]), np.asarray(out["frame"])
    out["attributes"] = {a: np.asarray(v, bool) for a, v in out["attributes"].items()}
    return out


def band_agreement_summary(result: dict, attributes=("low_illumination", "thermal_crossover", "occlusion")) -> dict:
    """Statistics of :func:`band_agreement` per band, at the first shift (aligned) unless said otherwise:
    {band: {"mean", "sd", "p10", "p90", "positive" (fraction of frames with r > 0), "mean_abs",
    "by_sequence": (min, max) of the per-sequence means, "by_attribute": {name: (mean with, mean without)},
    "mean_abs_by_shift": [mean |r| at each shift]}}, and "frames"."""
    out = {"frames": int(len(result["frame"]))}
    names = result["sequence"]
    for b in BANDS:
        r = result[b][:, 0]
        per_seq = [float(r[names == s].mean()) for s in dict.fromkeys(names.tolist())]
        by_attr = {}
        for a in attributes:
            flags = result["attributes"].get(a)
            if flags is not None and flags.any() and (~flags).any():
                by_attr[a] = (float(r[flags].mean()), float(r[~flags].mean()))
        out[b] = dict(mean=float(r.mean()), sd=float(r.std()), p10=float(np.quantile(r, 0.1)),
                      p90=float(np.quantile(r, 0.9)), positive=float((r > 0).mean()), mean_abs=float(np.abs(r).mean()),
                      by_sequence=(min(per_seq), max(per_seq)), by_attribute=by_attr,
                      mean_abs_by_shift=[float(np.abs(result[b][:, k]).mean()) for k in range(result[b].shape[1])])
    return out
