"""Inference: a tracker with OSTrack's ``initialize`` / ``track`` interface, for one sequence or several at once.

    tracker = Tracker(model, cfg, device, prealign="first-frame")
    tracker.initialize(rgb, tir, box_rgb, box_tir)   # boxes x, y, w, h in RGB / TIR pixels
    box = tracker.track(rgb, tir)                    # next frame -> x, y, w, h in RGB pixels

Each frame: cut the RGB search region (factor 4) around the last box and the TIR search region *through the
tracker's RGB -> TIR homography* (a perspective warp of the crop, ``data.crops``); run the network; multiply the
score map by a Hann window (a prior for small motion); decode the arg-max; map the box back to the image; clip it.

The homography, ``--prealign``:

* ``none``: the resolution change only (a tracker that ignores misalignment);
* ``first-frame`` (default): H0 fitted to the first frame's RGB and TIR boxes (``geometry.fit_box_homography``:
  per axis a scale and a shift that take one box onto the other), used for the TIR template and every search crop;
* ``oracle``: the generator's exact H_t of every frame (``homography.txt``): the ceiling alignment can reach.

Every network runs under each, the stage-1 tracker included, so comparisons are fair and the headroom visible.
A stage-2 network also reports, per frame, its stages' expert choices and alignment (``last_info``). With a
stage-2 network and a TOCUConfig, the running homography is updated by TOCU (``tocu``).

One tracker follows one sequence (``initialize`` / ``track``) or several at once (``start`` / ``step``, one state
each, one forward for the batch); ``track_run`` tracks datasets and holds the ``track`` command.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..config import Config
from ..data.crops import crop_around, crop_pair
from ..data.dataset import Sequence
from ..data.sampler import to_tensor_images
from ..errors import PMATrackError
from ..geometry import (box_center, cxcywh_to_xywh, fit_box_homography, homography_problem, invert, resize_homography,
                        valid_box, warp_boxes)
from ..models.head import decode
from ..models.inference import fast_kernels_for_inference, traced_for_inference
from ..profile import frame_macs, network_cost_table
from .tocu import TOCU, TOCUConfig, lift_alignment
from .track_outputs import frame_row

PREALIGN = ("none", "first-frame", "oracle")


def hann2d(n: int) -> torch.Tensor:
    w = torch.hann_window(n + 2, periodic=False)[1:-1]   # strictly positive inside
    return w[:, None] * w[None, :]


def clip_box(box: np.ndarray, size, margin: int = 10) -> np.ndarray:
    """Keep at least ``margin`` px of the box inside the image (W, H), as OSTrack's clip_box."""
    W, H = size
    x, y, w, h = box
    x1, y1 = min(max(x, 0.0), W - margin), min(max(y, 0.0), H - margin)
    x2, y2 = min(max(x + w, margin), W), min(max(y + h, margin), H)
    return np.array([x1, y1, max(margin, x2 - x1), max(margin, y2 - y1)], dtype=np.float64)


@dataclass
class TrackState:
    """One sequence's tracking state (pytracking keeps one per target; a batched run holds several)."""
    box: np.ndarray                 # last box, x, y, w, h (RGB px)
    H: np.ndarray                   # running RGB px -> TIR px homography the TIR crops are cut through
    z: tuple                        # templates (z_rgb, z_tir), (1, 3, St, St) each
    first: tuple                    # (rgb, tir, box) of frame 1, for TOCU's check
    rgb_size: tuple                 # (W, H) of the RGB frames
    tocu: TOCU | None = None


class Tracker:
    """``tocu``: a TOCUConfig to update the running homography from the network's alignment (stage-2 networks,
    ``prealign`` none or first-frame), or None to keep it fixed. ``traced``: run DPE's U-Nets traced and frozen
    (``models.inference``: the same outputs to float rounding, faster on a CPU); ``fast_kernels``: the experts' faster
    kernels (``models.inference.fast_kernels_for_inference``, same outputs to float rounding); MACs are still counted
    on the eager reference network.

    Two interfaces on one code path: ``initialize`` / ``track`` follow one sequence (OSTrack's); ``start`` / ``step``
    follow several, each with its own :class:`TrackState`, and run the network once per frame index on the stacked
    crops (``track_run.track_dataset --batch``). ``track`` is ``step`` on a batch of one."""

    def __init__(self, model: torch.nn.Module, cfg: Config, device="cpu", hann: bool = True,
                 prealign: str = "first-frame", tocu: TOCUConfig | None = None, traced: bool = False,
                 fast_kernels: bool = False):
        if prealign not in PREALIGN:
            raise PMATrackError(f"prealign must be one of {PREALIGN}, got {prealign!r}")
        if tocu is not None and (cfg.train.stage != 2 or prealign == "oracle"):
            raise PMATrackError("TOCU updates the running homography from a stage-2 network's alignment; "
                                f"not available with a stage-{cfg.train.stage} network or prealign {prealign!r}")
        self.model = model.to(device).eval()
        self.reference = self.model             # the eager network: MACs are counted on it
        if traced:                              # DPE's U-Nets traced and frozen (models.inference); same outputs
            self.model = traced_for_inference(self.model)
        if fast_kernels:                        # TRE's scaling transport, FME's channels-last pyramid; same outputs
            self.model = fast_kernels_for_inference(self.model)
        self.cfg, self.device, self.prealign, self.tocu_cfg = cfg, torch.device(device), prealign, tocu
        self.window = hann2d(cfg.model.feat_size).to(self.device) if hann else None
        self.current: TrackState | None = None        # the sequence of initialize / track
        self.last_score = None
        self.last_info: dict = {}
        self.cost_table = None                  # MACs per component (profile.network_cost_table), at start

    @property
    def state(self) -> np.ndarray | None:
        return None if self.current is None else self.current.box

    @property
    def H(self) -> np.ndarray:
        return self.current.H

    def _check(self, rgb, tir):
        if rgb.ndim != 3 or rgb.shape[2] != 3 or tir.ndim != 3 or tir.shape[2] != 3:
            raise PMATrackError(f"expected (H, W, 3) RGB and TIR frames, got {rgb.shape} and {tir.shape}")

    def _homography(self, state: TrackState, H_true) -> np.ndarray:
        """The RGB px -> TIR px homography this frame's TIR crops are cut through."""
        if self.prealign == "oracle":
            if H_true is None:
                raise PMATrackError("prealign 'oracle' needs the true homography of every frame (homography.txt)")
            return np.asarray(H_true, dtype=np.float64)
        return state.H

    def _crops(self, rgb, tir, box, factor: float, size: int, H) -> tuple:
        """RGB and TIR crops around ``box`` as (1, 3, S, S) tensors, and the RGB crop matrix."""
        center, side = crop_around(box, factor)
        c_rgb, c_tir, C_rgb, _ = crop_pair(rgb, tir, center, side, size, H)
        return to_tensor_images([c_rgb]).to(self.device), to_tensor_images([c_tir]).to(self.device), C_rgb

    def _locate(self, z_rgb, z_tir, x_rgb, x_tir, C_rgb: list) -> tuple:
        """Run the network on a batch of pairs (B, 3, S, S) each -> per pair: boxes in image px (unclipped, (B, 4)),
        raw and windowed peak scores (B,), MACs (B,), and the network's output."""
        m = self.cfg.model
        out = self.model(z_rgb, x_rgb, z_tir, x_tir)
        raw = out["score_map"]                                                                 # (B, 1, Hf, Wf)
        score = raw * self.window if self.window is not None else raw
        box_n = decode(score, out["size_map"], out["offset_map"]).double().cpu().numpy()     # (B, 4) cx, cy, w, h
        boxes = np.stack([warp_boxes(invert(C), cxcywh_to_xywh(b * m.search_size)[None])[0]   # crop px -> image px
                          for C, b in zip(C_rgb, box_n)])
        macs = [frame_macs(self.cost_table, out.get("align", []), i) for i in range(len(C_rgb))]
        return boxes, raw.flatten(1).amax(1).tolist(), score.flatten(1).amax(1).tolist(), macs, out

    @torch.no_grad()
    def _first_frame_boxes(self, checks: list) -> tuple[list, list]:
        """TOCU's check for (state, H) pairs, in one forward: each sequence's first frame re-run with its TIR
        template and search crop cut through H. -> (predicted RGB boxes, MACs per check)."""
        m = self.cfg.model
        z_r, z_t, x_r, x_t, C = [], [], [], [], []
        for state, H in checks:
            rgb, tir, box = state.first
            z_t.append(self._crops(rgb, tir, box, m.template_factor, m.template_size, H)[1])
            xr, xt, C_rgb = self._crops(rgb, tir, box, m.search_factor, m.search_size, H)
            z_r.append(state.z[0]), x_r.append(xr), x_t.append(xt), C.append(C_rgb)
        boxes, _, _, macs, _ = self._locate(torch.cat(z_r), torch.cat(z_t), torch.cat(x_r), torch.cat(x_t), C)
        return list(boxes), macs

    def start(self, rgb: np.ndarray, tir: np.ndarray, box, box_tir=None, H_true=None, H0=None) -> TrackState:
        """A new sequence's state from its first frame. box: the RGB box; box_tir: the TIR box of the same frame
        (TIR px), or H0: the rig's calibration (RGB px -> TIR px, ``calibrate``), needed by ``first-frame``;
        H_true: this frame's true homography, needed by ``oracle``."""
        self._check(rgb, tir)
        box = valid_box(box, "initial box")
        m = self.cfg.model
        if self.cost_table is None:
            self.cost_table = network_cost_table(self.reference)
        rgb_size = (rgb.shape[1], rgb.shape[0])
        if self.prealign == "first-frame" and H0 is not None:
            problem = homography_problem(H0)
            if problem:
                raise PMATrackError(f"the calibration homography cannot be used: {problem}")
            H = np.asarray(H0, dtype=np.float64)
        elif self.prealign == "first-frame":
            if box_tir is None:
                raise PMATrackError("prealign 'first-frame' needs the first-frame TIR box (infrared.txt) or a "
                                    "calibration homography")
            H = fit_box_homography(box, valid_box(box_tir, "initial TIR box"))
        else:
            H = resize_homography(rgb_size, (tir.shape[1], tir.shape[0]))
        state = TrackState(box=box, H=H, z=(), first=(rgb, tir, box), rgb_size=rgb_size)
        z_rgb, z_tir, _ = self._crops(rgb, tir, box, m.template_factor, m.template_size, self._homography(state, H_true))
        state.z = (z_rgb, z_tir)
        if self.tocu_cfg is not None:
            state.tocu = TOCU(self.tocu_cfg, box, lambda H_check: self._first_frame_boxes([(state, H_check)])[0][0])
        return state

    @torch.no_grad()
    def step(self, states: list[TrackState], frames: list[tuple]) -> list[tuple[np.ndarray, dict]]:
        """The next frame of each sequence, ``frames[i] = (rgb, tir, H_true or None)``, in one forward (and one
        more for the TOCU checks of the batch, if any) -> per sequence (box x, y, w, h in RGB px, info). ``info``
        holds the frame's scores, the stages' expert choices and alignment, the homography used, TOCU's decision,
        the MACs of the frame's network forward (``macs``) and of its TOCU check's forwards (``tocu_macs``)."""
        m = self.cfg.model
        H_used, z_r, z_t, x_r, x_t, C = [], [], [], [], [], []
        for state, (rgb, tir, H_true) in zip(states, frames):
            self._check(rgb, tir)
            H_used.append(self._homography(state, H_true))
            xr, xt, C_rgb = self._crops(rgb, tir, state.box, m.search_factor, m.search_size, H_used[-1])
            z_r.append(state.z[0]), z_t.append(state.z[1]), x_r.append(xr), x_t.append(xt), C.append(C_rgb)
        boxes, raw, score, macs, out = self._locate(torch.cat(z_r), torch.cat(z_t), torch.cat(x_r), torch.cat(x_t), C)
        infos, pending = [], []
        for i, state in enumerate(states):
            state.box = clip_box(boxes[i], state.rgb_size)
            info = dict(score=score[i], raw_score=raw[i], C_rgb=C[i], H_used=H_used[i], macs=macs[i], tocu_macs=0,
                        align=[alignment_summary(r, i) for r in out.get("align", [])])
            if out.get("H") is not None:
                info["delta"] = lift_alignment(out["H"][i].double().cpu().numpy(), C[i])    # RGB image px
            if state.tocu is not None:
                rec, needed = state.tocu.screen(state.H, info["delta"], raw[i], box_center(state.box))
                if needed is None:
                    info["tocu"] = rec
                else:
                    pending.append((i, rec, [(state, H) for H in needed]))
            infos.append(info)
        if pending:                                            # every check of the batch in one forward
            check_boxes, check_macs = self._first_frame_boxes([c for _, _, checks in pending for c in checks])
            k = 0
            for i, rec, checks in pending:
                n = len(checks)
                infos[i]["tocu"] = states[i].tocu.conclude(rec, check_boxes[k:k + n])
                infos[i]["tocu_macs"] = sum(check_macs[k:k + n])
                k += n
        for state, info in zip(states, infos):
            if "tocu" in info:
                state.H = info["tocu"]["H"]
        return [(state.box.copy(), info) for state, info in zip(states, infos)]

    def initialize(self, rgb: np.ndarray, tir: np.ndarray, box, box_tir=None, H_true=None) -> None:
        """Start following one sequence (see :meth:`start`)."""
        self.current = self.start(rgb, tir, box, box_tir, H_true)

    def track(self, rgb: np.ndarray, tir: np.ndarray, H_true=None) -> np.ndarray:
        """The next frame -> the target's box (x, y, w, h, RGB px); ``last_info`` holds what :meth:`step` reports."""
        if self.current is None:
            raise PMATrackError("call initialize() before track()")
        box, self.last_info = self.step([self.current], [(rgb, tir, H_true)])[0]
        self.last_score = self.last_info["score"]
        return box


def alignment_summary(record: dict, i: int = 0) -> dict:
    """One stage's record, sample i -> plain numbers: expert chosen, router probabilities, parameters, H_k."""
    return dict(role=record["role"], expert=record["names"][int(record["choice"][i])],
                probs={n: float(p) for n, p in zip(record["names"], record["probs"][i].tolist())},
                params=[float(v) for v in record["params"][i, :4].tolist()],
                H=record["H"][i].double().cpu().numpy())


def track_sequence(tracker: Tracker, seq: Sequence, progress=None) -> tuple[np.ndarray, float, list]:
    """Run over a whole sequence; returns ((T, 4) boxes, frames per second of tracking, per-frame rows for
    ``<seq>.align.csv``, see ``track_outputs``)."""
    boxes = np.zeros((len(seq), 4))
    boxes[0] = seq.init_box
    H = seq.homography if seq.homography is not None else [None] * len(seq)
    if tracker.prealign == "oracle" and seq.homography is None:
        raise PMATrackError(f"{seq.path}: --prealign oracle needs homography.txt (generated data only)")
    tracker.initialize(seq.rgb(0), seq.tir(0), seq.init_box, seq.gt_infrared[0], H[0])
    spent, rows = 0.0, []
    for t in range(1, len(seq)):
        rgb, tir = seq.rgb(t), seq.tir(t)
        t0 = time.perf_counter()
        boxes[t] = tracker.track(rgb, tir, H[t])
        spent += time.perf_counter() - t0
        rows.append(frame_row(t, tracker.last_info, H[t], seq.gt_visible[t]))
        if progress is not None:
            progress.update(1)
    return boxes, (len(seq) - 1) / max(spent, 1e-9), rows
