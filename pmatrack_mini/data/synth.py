"""A synthetic unaligned RGBT benchmark whose misalignment is known exactly.

One scene, two cameras. Objects live in the RGB camera's pixel frame ("the world" here):

* RGB sees colour and texture; the illumination can drop (low-illumination segment).
* TIR sees temperature: a warm target, a background with its own structure (unrelated to the
  RGB texture), optics blur, sensor and column noise. The target can cool down to the
  background's temperature (thermal-crossover segment). No pixel-wise function maps RGB to TIR.
* Distractors: one looks like the target in RGB but is cold; one is as warm as the target in
  TIR but looks like background in RGB. An occluder (cold, plain colour) crosses the target in
  the occlusion segment: partial at its ends, full in its middle.

The misalignment is a per-frame homography H_t mapping RGB pixels to TIR pixels:

    H_t = S_res  @  H_rig  @  D_t

S_res is the resolution change (:func:`~pmatrack_mini.geometry.resize_homography`), H_rig a fixed
per-sequence rig transform about the image centre (translation, scale != 1, small rotation,
slight perspective) and D_t a smooth time-varying translation: a slow wobble plus a parallax
term that grows when the target comes closer (larger) or lower in the frame. The TIR image is
the thermal scene warped by H_t, so ``infrared.txt`` is exactly ``warp_boxes(H_t, visible box)``.

Writing sequences and whole generated sets, with their records: ``data.synth_sets``.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import PMATrackError
from ..geometry import (apply_homography, box_center, fit_box_homography, homography_from_params, resize_homography,
                        translation, warp_boxes)
from ..utils import read_json, write_boxes, write_json_atomic, write_text_atomic

CHALLENGES = ("low_illumination", "thermal_crossover", "occlusion", "fast_motion")
ATTRIBUTES = CHALLENGES + ("large_offset", "distractor", "prealign_drift", "modality_failure")

# Ranges per offset level (RGB pixels / degrees). With targets kept within ~130 px of the image
# centre horizontally, the target-centre displacement stays <= 15 px for "small" (LasHeR-Unaligned
# regime) and is mostly >= 40 px for "large" (MUART244 regime); tests check both on many seeds.
# "dynamic" is the large rig on a moving platform (MUART244's hard cases): stronger wobble and parallax plus a
# linear drift of ``drift`` px (length, random direction) and a scale drift of up to ``scale_drift`` over the
# sequence, so that a homography fitted to the first frame falls behind: the residual after first-frame
# pre-alignment exceeds 20 px on average in most sequences (tested on many seeds).
OFFSET_LEVELS = {
    "none":    dict(shift=(0.0, 0.0), scale=0.0, rot=0.0, persp=0.0, wobble=0.0, parallax=0.0),
    "small":   dict(shift=(2.0, 5.0), scale=0.03, rot=0.5, persp=2e-5, wobble=2.0, parallax=2.0),
    "large":   dict(shift=(42.0, 56.0), scale=0.10, rot=2.0, persp=5e-5, wobble=5.0, parallax=5.0),
    "dynamic": dict(shift=(42.0, 56.0), scale=0.10, rot=2.0, persp=5e-5, wobble=10.0, parallax=12.0,
                    drift=(35.0, 55.0), scale_drift=0.10),
}
LARGE_OFFSET_PX = 30.0     # frames whose target-centre displacement exceeds this are tagged large_offset
PREALIGN_DRIFT_PX = 15.0   # frames whose residual after first-frame pre-alignment exceeds this: prealign_drift
MIN_FRAMES = 10            # shorter sequences leave no room for the challenge segments
ASPECT_RANGE = (0.5, 1.6)  # target h / w
MARGIN = (30, 24)          # px kept between the target's box and the RGB frame's border (x, y)
MAX_SEQUENCE_BYTES = 4 * 2**30  # a sequence's frames are rendered in memory before they are written
BACKGROUNDS = ("procedural", "photo", "mixed", "photo-heldout")


def config_record(cfg: "SynthConfig") -> dict:
    """The parameters a generated sequence or set records: every field but ``extra``, and ``background`` only when
    it is not the procedural default (so the records of procedural sets read as before photographs existed)."""
    return {k: v for k, v in asdict(cfg).items()
            if k != "extra" and not (k == "background" and v == "procedural")}


@dataclass
class SynthConfig:
    frames: int = 100
    offset: str = "small"
    rgb_size: tuple = (320, 256)          # (W, H)
    tir_size: tuple = (160, 128)          # (W, H)
    challenges: tuple | None = None       # None: each challenge with probability 1/2
    target_side: tuple = (20.0, 36.0)     # base target size range, RGB px (geometric mean of w, h)
    speed: float = 1.5                    # target speed, RGB px / frame
    jpeg_quality: int = 85
    failure: bool = False                 # a stretch where the target vanishes in one modality (modality_failure)
    background: str = "procedural"        # procedural textures | photo (``data.photos``) | mixed (each sequence
                                          # one or the other, with probability 1/2) | photo-heldout (photographs
                                          # no training set uses: for test sets)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.offset not in OFFSET_LEVELS:
            raise PMATrackError(f"offset must be one of {sorted(OFFSET_LEVELS)}, got {self.offset!r}")
        if self.background not in BACKGROUNDS:
            raise PMATrackError(f"background must be one of {list(BACKGROUNDS)}, got {self.background!r}")
        if self.frames < MIN_FRAMES:
            raise PMATrackError(f"frames must be >= {MIN_FRAMES}, got {self.frames}")
        if self.challenges is not None:
            bad = set(self.challenges) - set(CHALLENGES)
            if bad:
                raise PMATrackError(f"unknown challenge(s) {sorted(bad)}; known: {list(CHALLENGES)}")
        (W, H), (w, h), (W_min, H_min) = self.rgb_size, self.tir_size, self.min_rgb_size()
        if W < W_min or H < H_min:
            raise PMATrackError(f"rgb_size must be at least {W_min}x{H_min} (room for a target of side up to "
                                f"{self.target_side[1]:g} px and its margins), got {W}x{H}")
        if w < 64 or h < 48:
            raise PMATrackError(f"tir_size must be at least 64x48, got {w}x{h}")
        need = self.frames * (W * H * 3 + w * h)
        if need > MAX_SEQUENCE_BYTES:
            raise PMATrackError(f"{self.frames} frames of {W}x{H} RGB and {w}x{h} TIR need {need / 2**30:.1f} GiB "
                                f"in memory (at most {MAX_SEQUENCE_BYTES / 2**30:.0f}); "
                                "use fewer frames or smaller images")

    def min_rgb_size(self) -> tuple:
        """Smallest RGB frame (W, H) that holds the largest target with its margins (see render_sequence)."""
        side = self.target_side[1]
        w = side / np.sqrt(ASPECT_RANGE[0])        # base w = side / sqrt(aspect)
        h = side * np.sqrt(ASPECT_RANGE[1])        # base h = side * sqrt(aspect)
        return int(np.ceil(2 * (MARGIN[0] + w))), int(np.ceil(2 * (MARGIN[1] + h)))


# ----------------------------------------------------------------------------- pieces


def _smooth_noise(rng, h, w, cells, channels=1):
    """Low-frequency noise in [0, 1]: random values on a coarse grid, upsampled bicubically."""
    coarse = rng.random((cells[1], cells[0], channels)).astype(np.float32)
    up = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(up.reshape(h, w, channels), 0, 1)


def _path(rng, frames, start, speed, bounds, fast=None):
    """Smooth random walk of a centre inside bounds (x0, y0, x1, y1); ``fast`` frames move 4x faster."""
    heading = rng.uniform(0, 2 * np.pi)
    freqs, phases = rng.uniform(0.5, 2.0, 3), rng.uniform(0, 2 * np.pi, 3)
    pos = np.zeros((frames, 2))
    pos[0] = start
    vel = speed * np.array([np.cos(heading), np.sin(heading)])
    for t in range(1, frames):
        # the heading turns smoothly: a sum of slow sinusoids
        turn = 0.08 * np.sum(np.sin(2 * np.pi * freqs * t / frames + phases))
        c, s = np.cos(turn), np.sin(turn)
        vel = np.array([c * vel[0] - s * vel[1], s * vel[0] + c * vel[1]])
        vel = vel / (np.linalg.norm(vel) + 1e-9) * speed
        step = vel * (4.0 if fast is not None and fast[t] else 1.0)
        nxt = pos[t - 1] + step
        for k, (lo, hi) in enumerate(((bounds[0], bounds[2]), (bounds[1], bounds[3]))):
            if nxt[k] < lo or nxt[k] > hi:  # bounce
                vel[k] = -vel[k]
                nxt[k] = np.clip(nxt[k], lo, hi)
        pos[t] = nxt
    return pos


def _paste(canvas, patch, x, y):
    """Paste patch with its top-left at integer (x, y), clipped to the canvas."""
    H, W = canvas.shape[:2]
    h, w = patch.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]


def _int_box(center, size):
    w, h = max(int(round(size[0])), 4), max(int(round(size[1])), 4)
    return np.array([int(round(center[0] - (w - 1) / 2)), int(round(center[1] - (h - 1) / 2)), w, h])


def _segments(rng, frames, challenges):
    """One segment per challenge: 20-30 % of the sequence, never in the first 10 %."""
    flags = {name: np.zeros(frames, bool) for name in CHALLENGES}
    for name in challenges:
        length = max(3, int(round(frames * rng.uniform(0.2, 0.3))))
        start = int(rng.integers(max(2, frames // 10), max(frames // 10 + 1, frames - length)))
        flags[name][start:start + length] = True
    return flags


def _rig(rng, level, rgb_size):
    """Per-sequence rig transform H_rig (about the image centre) and the parallax direction."""
    p = OFFSET_LEVELS[level]
    mag = rng.uniform(*p["shift"])
    ang = rng.uniform(0, 2 * np.pi)
    d = mag * np.array([np.cos(ang), np.sin(ang)])
    s = 1.0 + rng.choice([-1, 1]) * rng.uniform(0.5, 1.0) * p["scale"]
    aspect = 1.0 + rng.uniform(-0.2, 0.2) * p["scale"]
    rot = np.deg2rad(rng.uniform(-1, 1) * p["rot"])
    persp = rng.uniform(-1, 1, 2) * p["persp"]
    # centred rig: [[R S, d], [persp, 1]] acting on p - c
    A = np.array([[np.cos(rot) * s * aspect, -np.sin(rot) * s, d[0]],
                  [np.sin(rot) * s * aspect, np.cos(rot) * s, d[1]],
                  [persp[0], persp[1], 1.0]])
    c = np.array(rgb_size, dtype=float) / 2 - 0.5
    H_rig = translation(*c) @ A @ translation(*(-c))
    u = np.array([np.cos(ang), np.sin(ang)]) if mag > 0 else np.array([1.0, 0.0])
    return H_rig, u, dict(shift=d.tolist(), scale=s, aspect=aspect, rot_deg=float(np.rad2deg(rot)),
                          persp=persp.tolist())


# ----------------------------------------------------------------------------- the renderer


def render_sequence(cfg: SynthConfig, seed: int) -> dict:
    """Render one sequence in memory.

    Returns a dict with ``rgb`` (T, H, W, 3) uint8 in RGB order, ``tir`` (T, h, w) uint8,
    ``visible`` / ``infrared`` (T, 4) boxes x, y, w, h, ``homography`` (T, 3, 3) RGB -> TIR,
    ``attributes`` {name: (T,) bool}, ``displacement`` (T,) target-centre offset in RGB px
    after removing the resolution change, and ``meta``.
    """
    rng = np.random.default_rng(seed)
    T = cfg.frames
    W, H = cfg.rgb_size
    w_t, h_t = cfg.tir_size
    level = OFFSET_LEVELS[cfg.offset]
    challenges = (tuple(c for c in CHALLENGES if rng.random() < 0.5)
                  if cfg.challenges is None else tuple(cfg.challenges))
    flags = _segments(rng, T, challenges)
    failure, failed = _failure_segment(seed, T) if cfg.failure else (np.zeros(T, bool), None)

    # --- sizes and motion
    side = rng.uniform(*cfg.target_side)
    aspect = rng.uniform(*ASPECT_RANGE)  # h / w
    base = np.array([side / np.sqrt(aspect), side * np.sqrt(aspect)])
    scale_t = np.exp(0.25 * np.sin(2 * np.pi * np.arange(T) / rng.uniform(0.8 * T, 1.6 * T) + rng.uniform(0, 2 * np.pi)))
    margin_x, margin_y = MARGIN[0] + base[0], MARGIN[1] + base[1]
    bounds = (max(margin_x, W / 2 - 130), margin_y, min(W - margin_x, W / 2 + 130), H - margin_y)
    start = rng.uniform(bounds[:2], bounds[2:])
    centers = _path(rng, T, start, cfg.speed, bounds, fast=flags["fast_motion"])
    boxes = np.stack([_int_box(c, base * s) for c, s in zip(centers, scale_t)]).astype(np.float64)

    distractor_paths = []
    for _ in range(2):  # 0: RGB look-alike (cold), 1: TIR look-alike (warm, drab in RGB)
        d_start = rng.uniform(bounds[:2], bounds[2:])
        distractor_paths.append(_path(rng, T, d_start, cfg.speed * 0.8, bounds))

    # --- misalignment: H_t = S_res @ H_rig @ D_t
    S_res = resize_homography(cfg.rgb_size, cfg.tir_size)
    H_rig, u, rig_meta = _rig(rng, cfg.offset, cfg.rgb_size)
    wob_f, wob_p = rng.uniform(0.5, 1.5, 2), rng.uniform(0, 2 * np.pi, 2)
    t_norm = np.arange(T) / T
    wobble = level["wobble"] * np.stack([np.sin(2 * np.pi * wob_f[0] * t_norm + wob_p[0]),
                                         np.sin(2 * np.pi * wob_f[1] * t_norm + wob_p[1])], 1)
    # parallax proxy: closer (larger, lower in the frame) targets shift more along the baseline u
    nearness = 0.5 * np.log(scale_t) / 0.25 + 0.5 * (centers[:, 1] - H / 2) / (H / 2)
    drift = wobble + level["parallax"] * np.clip(nearness, -1, 1)[:, None] * u[None]
    D = np.stack([translation(*dr) for dr in drift])                          # (T, 3, 3)
    if "drift" in level:   # moving platform: a linear drift and a scale drift about the image centre
        ang = rng.uniform(0, 2 * np.pi)
        lin = rng.uniform(*level["drift"]) * np.array([np.cos(ang), np.sin(ang)])
        s_end = 1.0 + rng.choice([-1, 1]) * rng.uniform(0.5, 1.0) * level["scale_drift"]
        c = np.array(cfg.rgb_size, dtype=float) / 2 - 0.5
        D = np.stack([translation(*(lin * a)) @ homography_from_params(sx=s_end ** a, sy=s_end ** a, center=c) @ d
                      for a, d in zip(t_norm, D)])
    Hs = np.stack([S_res @ H_rig @ d for d in D])
    Hs /= Hs[:, 2:3, 2:3]

    ctr = box_center(boxes)
    in_rgb_units = np.stack([apply_homography(np.linalg.inv(S_res) @ h, c[None])[0] for h, c in zip(Hs, ctr)])
    displacement = np.linalg.norm(in_rgb_units - ctr, axis=1)
    ir_boxes = warp_boxes(Hs, boxes)
    residual = prealign_residual(boxes, ir_boxes, Hs)

    # --- appearance, fixed per sequence
    bg = (40 + 170 * _smooth_noise(rng, H, W, (6, 5), 3)).astype(np.float32)
    for _ in range(int(rng.integers(15, 30))):  # texture: random rectangles
        rw, rh = rng.integers(6, 50, 2)
        x, y = rng.integers(0, W - 4), rng.integers(0, H - 4)
        bg[y:y + rh, x:x + rw] = 0.5 * bg[y:y + rh, x:x + rw] + 0.5 * rng.uniform(30, 220, 3)
    bg += rng.normal(0, 6, bg.shape).astype(np.float32)
    colors = rng.uniform(0, 255, (2, 3))
    colors[:, rng.integers(0, 3)] = rng.choice([30, 230])  # saturated
    pattern = np.zeros((32, 32, 3), np.float32)
    pattern[:16], pattern[16:] = colors[0], colors[1]
    pattern[::4] *= 0.7                                     # stripes
    look_alike = np.clip(pattern + rng.normal(0, 10, 3), 0, 255)
    drab = np.full((32, 32, 3), bg.mean(axis=(0, 1)), np.float32) + rng.normal(0, 12, (32, 32, 3))
    occ_color = rng.uniform(20, 235, 3)

    P = 100  # thermal canvas padding: the TIR camera sees beyond the RGB field of view
    Hc, Wc = H + 2 * P, W + 2 * P
    t_bg = (0.32 + 0.22 * _smooth_noise(rng, Hc, Wc, (5, 4))[..., 0]).astype(np.float32)
    # photographs: drawn from their own random stream, after the textures' draws, so that the rest of a sequence
    # (motion, offsets, challenges, noise) is the same whichever background it has
    prng = np.random.default_rng([seed, 5])
    photo = cfg.background in ("photo", "photo-heldout") or (cfg.background == "mixed" and prng.random() < 0.5)
    photos = None
    if photo:
        from .photos import photo_appearance

        look = photo_appearance(prng, (W, H), (Wc, Hc), "heldout" if cfg.background == "photo-heldout" else "train")
        bg = look["background"] + prng.normal(0, 6, (H, W, 3)).astype(np.float32)
        pattern, look_alike, t_bg, photos = look["target"], look["look_alike"], look["thermal"], look["photos"]
        drab = np.full((32, 32, 3), bg.mean(axis=(0, 1)), np.float32) + prng.normal(0, 12, (32, 32, 3))
    yy, xx = np.mgrid[0:Hc, 0:Wc]
    for _ in range(int(rng.integers(2, 5))):  # warm static structures (engines, windows)
        cx, cy, r = rng.uniform(0, Wc), rng.uniform(0, Hc), rng.uniform(8, 25)
        t_bg += rng.uniform(0.1, 0.25) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)).astype(np.float32)
    body = np.linspace(0.08, -0.04, 32, dtype=np.float32)[:, None] + rng.normal(0, 0.02, (32, 32)).astype(np.float32)
    column_noise = rng.normal(0, 0.012, w_t).astype(np.float32)
    crossover_level = float(np.median(t_bg)) + 0.02

    def ramp(mask, t):  # 0 -> 1 over 3 frames at the start of a segment, back at its end
        lo, hi = max(0, t - 3), min(T, t + 4)
        return float(np.mean(mask[lo:hi]))

    rgb_frames = np.empty((T, H, W, 3), np.uint8)
    tir_frames = np.empty((T, h_t, w_t), np.uint8)
    occluded = np.zeros(T, bool)
    near_distractor = np.zeros(T, bool)
    for t in range(T):
        box = boxes[t].astype(int)
        tw, th = box[2], box[3]
        rgb = bg.copy()
        thermal = t_bg.copy()
        for k, path in enumerate(distractor_paths):
            dbox = _int_box(path[t], base * scale_t[t] * (1.0 if k == 0 else 0.9))
            look = look_alike if k == 0 else drab
            _paste(rgb, cv2.resize(look, (dbox[2], dbox[3])), dbox[0], dbox[1])
            temp = 0.40 if k == 0 else 0.80
            _paste(thermal, np.full((dbox[3], dbox[2]), temp, np.float32)
                   + cv2.resize(body, (dbox[2], dbox[3])), dbox[0] + P, dbox[1] + P)
            if np.linalg.norm(path[t] - centers[t]) < 2.0 * max(tw, th):
                near_distractor[t] = True
        # target
        _paste(rgb, cv2.resize(pattern, (tw, th)), box[0], box[1])
        cool = ramp(flags["thermal_crossover"], t)
        temp = (1 - cool) * 0.82 + cool * crossover_level
        tbody = temp + (1 - cool) * cv2.resize(body, (tw, th))
        if not (failed == "tir" and failure[t]):      # a TIR failure: the target is not rendered in TIR at all
            _paste(thermal, tbody.astype(np.float32), box[0] + P, box[1] + P)
        # occluder sweeps across the target: partial at the ends of the segment, full in the middle
        if flags["occlusion"][t]:
            idx = np.flatnonzero(flags["occlusion"])
            frac = (t - idx[0]) / max(1, idx[-1] - idx[0])
            ow, oh = int(tw * 1.6) + 4, int(th * 1.4) + 4
            reach = (ow + tw) / 2 + 2
            oc = centers[t] + np.array([(-1 + 2 * frac) * reach, 0.0])
            obox = _int_box(oc, (ow, oh))
            _paste(rgb, np.full((oh, ow, 3), occ_color, np.float32) + rng.normal(0, 5, (oh, ow, 3)), obox[0], obox[1])
            _paste(thermal, np.full((oh, ow), 0.28, np.float32), obox[0] + P, obox[1] + P)
            occluded[t] = True
        # low illumination: dark and noisy RGB
        dark = ramp(flags["low_illumination"], t)
        if dark > 0:
            rgb = rgb * (1 - 0.88 * dark) + rng.normal(0, 9 * dark, rgb.shape)
        if failed == "rgb" and failure[t]:             # an RGB failure: the camera blacks out
            rgb = rgb * 0.03 + np.random.default_rng([seed, 8, t]).normal(0, 3, rgb.shape)
        rgb_frames[t] = np.clip(rgb, 0, 255).astype(np.uint8)
        # TIR: thermal scene seen through H_t (canvas -> RGB frame -> TIR), blur, noise
        M = Hs[t] @ translation(-P, -P)
        tir = cv2.warpPerspective(thermal, M, (w_t, h_t), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        tir = cv2.GaussianBlur(tir, (0, 0), 0.8)
        tir = tir + rng.normal(0, 0.015, tir.shape).astype(np.float32) + column_noise[None]
        tir_frames[t] = np.clip(tir * 255, 0, 255).astype(np.uint8)

    attributes = dict(flags)
    attributes["occlusion"] = occluded
    attributes["large_offset"] = displacement > LARGE_OFFSET_PX
    attributes["distractor"] = near_distractor
    attributes["prealign_drift"] = residual > PREALIGN_DRIFT_PX
    attributes["modality_failure"] = failure
    meta = dict(seed=int(seed), config=config_record(cfg), background="photo" if photo else "procedural",
                photos=photos,
                challenges=list(challenges), rig=rig_meta, parallax_direction=u.tolist(),
                displacement_px=dict(mean=float(displacement.mean()), max=float(displacement.max())),
                prealign_residual_px=dict(mean=float(residual.mean()), max=float(residual.max())),
                failed_modality=failed)
    return dict(rgb=rgb_frames, tir=tir_frames, visible=boxes, infrared=ir_boxes, homography=Hs,
                attributes=attributes, displacement=displacement, prealign_residual=residual, meta=meta)


def _failure_segment(seed: int, frames: int) -> tuple[np.ndarray, str]:
    """A stretch (15-25 % of the sequence, never in the first 10 %) where the target vanishes in one modality:
    the RGB camera blacks out, or the target is not rendered in TIR (as if fully crossed over). Drawn from its own
    random stream, so a sequence with ``failure`` is otherwise the same as without."""
    frng = np.random.default_rng([seed, 7])
    failed = "rgb" if frng.random() < 0.5 else "tir"
    length = max(3, int(round(frames * frng.uniform(0.15, 0.25))))
    start = int(frng.integers(max(2, frames // 10), max(frames // 10 + 1, frames - length)))
    mask = np.zeros(frames, bool)
    mask[start:start + length] = True
    return mask, failed


def prealign_residual(visible: np.ndarray, infrared: np.ndarray, Hs: np.ndarray) -> np.ndarray:
    """(T,) RGB px between the target centre and where a first-frame pre-alignment puts its TIR counterpart:
    || H0^-1 H_t c_t - c_t ||, H0 fitted to the first frame's two boxes (the tracker's ``--prealign first-frame``)."""
    back = np.linalg.inv(fit_box_homography(visible[0], infrared[0]))
    ctr = box_center(visible)
    seen = np.stack([apply_homography(back @ h, c[None])[0] for h, c in zip(Hs, ctr)])
    return np.linalg.norm(seen - ctr, axis=1)
