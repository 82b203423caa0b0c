"""TOCU, Template-Offset Contrastive Update: the tracker's running RGB -> TIR homography (PMATrack, inference).

The tracker cuts every TIR search crop through a running homography H_t (RGB image px -> TIR image px), starting at
H0 fitted to the first frame's two boxes. After each frame the network's final alignment H_k (RGB search crop px ->
TIR search crop px, ``models.pmatrack``) is lifted to image coordinates through the crop matrix C of the RGB search
crop and proposed as the new running homography:

    delta = C^-1 H_k C        (RGB image px -> RGB image px),        H' = H_t delta

H' replaces H_t only when the frame is trusted and a template-offset check agrees (:meth:`TOCU.decide`):

(0) the proposal is a usable homography (finite, not singular: ``geometry.homography_problem``); a broken network
    output is refused and logged (``tocu_reason`` "invalid proposal: ..."), never propagated;
(a) the raw (before the Hann window) peak score of the frame is at least ``score_threshold`` (0.5);
(b) the change is worth checking: delta moves the target centre by at least ``min_change_px`` (5 RGB px; smaller
    proposals are skipped). The floor sits above the network's own precision (a median residual of about 3 px
    on aligned and small offsets, ``results/stage2_alignment.md``): below it a proposal is mostly noise, and
    accepting it every frame makes the running homography random-walk, which the first-frame check cannot see
    (its IoU hardly moves for a few pixels). Measured with the cpu-mini network of ``benchmarks/bench_align.py``
    on 4 dynamic validation sequences of 120 frames (seed 9410, never used for training or the reproduction's
    test sets), PR / SR %: TOCU off 81.0 / 53.3; floor 2 px 76.7 / 52.5 (accepted proposals: 54 better than the
    running homography at that frame, 75 worse), 5 px 84.2 / 59.1, 8 px 87.1 / 57.2, 12 px 81.9 / 53.7;
(c) the template-offset check: the first frame is re-run with its TIR template and TIR search crop cut through H'
    and, separately, through H_t; each run's predicted box is compared with the known first-frame box. H' is
    accepted when its IoU exceeds ``iou_threshold`` (0.7) and is not lower than H_t's by more than
    ``iou_tolerance`` (0.05). H_t's IoU is cached until H_t changes, so a check costs one extra forward pass.
    Nothing of the frame's own forward can stand in for it: the check runs the first frame's crops, not frame t's,
    and its TIR crops change with H'; the one-stream backbone mixes both modalities' tokens from its first block on,
    so the only part that stays fixed is the patch embedding of the first frame's RGB crops (at cpu-mini 80 tokens x
    16 x 16 x 3 x 192 = 11.8 M MACs, under 2 % of a stage-2 forward), not worth a special path.

A rejected proposal leaves H_t unchanged. The TIR template the tracker uses stays the one cut through H0: it comes
from the first frame, where H0 is exact by construction. Departures from the official code: there the check's
"not lower" is strict (ties between two float IoUs decide updates at random); every frame is checked; and an
accepted update also swaps the template for one re-cut through the new homography, which on a drifting rig
misaligns the first-frame template by the drift.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import apply_homography, box_center, homography_problem, invert


@dataclass
class TOCUConfig:
    score_threshold: float = 0.5
    iou_threshold: float = 0.7
    iou_tolerance: float = 0.05
    min_change_px: float = 5.0


def lift_alignment(H_crop: np.ndarray, C_rgb: np.ndarray) -> np.ndarray:
    """The network's final alignment (RGB crop px -> TIR crop px, the TIR crop cut through H_t) as a correction of
    H_t in RGB image px: delta = C^-1 H_k C, so that H' = H_t delta."""
    with np.errstate(all="ignore"):              # a broken output stays NaN here and is refused by screen()
        delta = np.linalg.inv(C_rgb) @ np.asarray(H_crop, dtype=np.float64) @ C_rgb
        return delta / delta[2, 2]


def change_at(delta: np.ndarray, point) -> float:
    """How far delta moves a point (RGB px)."""
    p = np.asarray(point, dtype=np.float64)[None]
    return float(np.linalg.norm(apply_homography(delta, p)[0] - p[0]))


def iou_xywh(a, b) -> float:
    """Pixel-inclusive IoU of two x, y, w, h boxes (the metrics' convention)."""
    from ..evaluation.evaluate import iou_inclusive

    return float(iou_inclusive(np.asarray(a, dtype=np.float64)[None], np.asarray(b, dtype=np.float64)[None])[0])


class TOCU:
    """Decides, frame by frame, whether the running homography takes the network's proposal.

    ``first_frame_box(H) -> box`` runs the network on the first frame with its TIR crops cut through H and returns
    the predicted RGB box; only :meth:`decide` calls it (a batched tracker calls :meth:`screen` and :meth:`conclude`
    itself and may pass None)."""

    def __init__(self, cfg: TOCUConfig, first_box: np.ndarray, first_frame_box=None):
        self.cfg, self.first_box, self.first_frame_box = cfg, np.asarray(first_box, dtype=np.float64), first_frame_box
        self._current_iou = None              # IoU of the first-frame check under the current H_t

    def reset_current(self):
        self._current_iou = None

    def screen(self, H_t: np.ndarray, delta: np.ndarray, raw_score: float, target_center) -> tuple[dict, list | None]:
        """Tests (a) and (b), which need no forward pass. -> (record, the homographies whose first-frame boxes the
        check (c) needs, in order), or (final record, None) when the proposal stops here. A batched tracker runs
        the checks of all its sequences in one forward pass between :meth:`screen` and :meth:`conclude`."""
        cfg = self.cfg
        with np.errstate(all="ignore"):
            H_new = H_t @ delta
            H_new = H_new / H_new[2, 2]
        problem = homography_problem(H_new)
        rec = dict(accept=False, H_proposed=H_new, H=H_t, change_px=float("nan") if problem else
                   change_at(delta, target_center), iou_proposed=float("nan"), iou_current=float("nan"), score=raw_score)
        if problem:                                # a broken network output never reaches the running homography
            return dict(rec, reason=f"invalid proposal: {problem}"), None
        if not raw_score >= cfg.score_threshold:   # NaN scores fail too
            return dict(rec, reason="low score"), None
        if rec["change_px"] < cfg.min_change_px:
            return dict(rec, reason="small change"), None
        return rec, ([H_t] if self._current_iou is None else []) + [H_new]

    def conclude(self, rec: dict, boxes: list) -> dict:
        """Test (c), given the first-frame boxes predicted under the homographies :meth:`screen` asked for.
        -> {"accept", "reason", "H_proposed", "H", "change_px", "iou_proposed", "iou_current", "score"}."""
        cfg = self.cfg
        if self._current_iou is None:
            self._current_iou = iou_xywh(boxes[0], self.first_box)
        rec = dict(rec, iou_current=self._current_iou, iou_proposed=iou_xywh(boxes[-1], self.first_box))
        if rec["iou_proposed"] <= cfg.iou_threshold:
            return dict(rec, reason="check: IoU below threshold")
        if rec["iou_proposed"] < rec["iou_current"] - cfg.iou_tolerance:
            return dict(rec, reason="check: IoU lower than the current homography's")
        self._current_iou = rec["iou_proposed"]
        return dict(rec, accept=True, H=rec["H_proposed"], reason="accepted")

    def decide(self, H_t: np.ndarray, delta: np.ndarray, raw_score: float, target_center) -> dict:
        """One sequence's decision: :meth:`screen`, the check's forward passes (``first_frame_box``), :meth:`conclude`."""
        rec, needed = self.screen(H_t, delta, raw_score, target_center)
        if needed is None:
            return rec
        return self.conclude(rec, [self.first_frame_box(H) for H in needed])


def residual_px(H_used: np.ndarray, H_true: np.ndarray, box) -> float:
    """True alignment residual of a homography at the target (RGB px): || H^-1 H_true c - c ||."""
    c = box_center(np.asarray(box, dtype=np.float64))
    return float(np.linalg.norm(apply_homography(invert(H_used) @ H_true, c[None])[0] - c))
