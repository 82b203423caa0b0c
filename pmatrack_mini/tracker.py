"""Inference: a tracker object with OSTrack's ``initialize`` / ``track`` interface, and the ``track`` command.

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
A stage-2 network also reports, per frame, its stages' expert choices and alignment (``last_info``).

    pmatrack-mini track --checkpoint RUN/final.pt --dataset DIR --out RESULTS_DIR [--prealign ...] [--routing ...]
                        [--tocu/--no-tocu]

Besides the toolkit's ``<seq>.txt``, the command writes ``<seq>.align.csv`` and ``track_summary.json``
(``track_outputs``). With a stage-2 network the running homography is updated by TOCU (``tocu``) by default.

Each sequence's result file is written (atomically) as soon as the sequence is tracked. When a later sequence fails
(an unreadable frame, found only when it is decoded), the finished results are kept, since a long run should not
lose hours of work to one bad file, and the error says which were kept and which were not tracked; ``eval`` refuses
a results folder without a file for every sequence, so a partial set is never scored by mistake. Everything that
can be checked before tracking (checkpoint, dataset folders, ground truth, output folder) is checked first, so
those errors leave nothing behind.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from .config import Config
from .data.crops import crop_around, crop_pair
from .data.dataset import Sequence, load_dataset
from .data.sampler import to_tensor_images
from .errors import PMATrackError
from .geometry import box_center, cxcywh_to_xywh, fit_box_homography, invert, resize_homography, warp_boxes
from .models.head import decode
from .profile import frame_macs, network_cost_table
from .tocu import TOCU, TOCUConfig, lift_alignment
from .track_outputs import frame_row, overall_summary, sequence_summary, write_align_csv, write_summary
from .utils import check_device, write_boxes

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


def _valid_box(box, what: str) -> np.ndarray:
    box = np.asarray(box, dtype=np.float64)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        raise PMATrackError(f"{what} must be 4 finite numbers with w, h > 0, got {box.tolist()}")
    return box


class Tracker:
    """``tocu``: a TOCUConfig to update the running homography from the network's alignment (stage-2 networks,
    ``prealign`` none or first-frame), or None to keep it fixed."""

    def __init__(self, model: torch.nn.Module, cfg: Config, device="cpu", hann: bool = True,
                 prealign: str = "first-frame", tocu: TOCUConfig | None = None):
        if prealign not in PREALIGN:
            raise PMATrackError(f"prealign must be one of {PREALIGN}, got {prealign!r}")
        if tocu is not None and (cfg.train.stage != 2 or prealign == "oracle"):
            raise PMATrackError("TOCU updates the running homography from a stage-2 network's alignment; "
                                f"not available with a stage-{cfg.train.stage} network or prealign {prealign!r}")
        self.model = model.to(device).eval()
        self.cfg, self.device, self.prealign, self.tocu_cfg = cfg, torch.device(device), prealign, tocu
        self.window = hann2d(cfg.model.feat_size).to(self.device) if hann else None
        self.state = None
        self.last_score = None
        self.last_info: dict = {}
        self.cost_table = None                  # MACs per component (profile.network_cost_table), at initialize
        self._macs = 0

    def _check(self, rgb, tir):
        if rgb.ndim != 3 or rgb.shape[2] != 3 or tir.ndim != 3 or tir.shape[2] != 3:
            raise PMATrackError(f"expected (H, W, 3) RGB and TIR frames, got {rgb.shape} and {tir.shape}")

    def _homography(self, H_true) -> np.ndarray:
        """The RGB px -> TIR px homography this frame's TIR crops are cut through."""
        if self.prealign == "oracle":
            if H_true is None:
                raise PMATrackError("prealign 'oracle' needs the true homography of every frame (homography.txt)")
            return np.asarray(H_true, dtype=np.float64)
        return self.H

    def _crops(self, rgb, tir, box, factor: float, size: int, H) -> tuple:
        """RGB and TIR crops around ``box`` as (1, 3, S, S) tensors, and the RGB crop matrix."""
        center, side = crop_around(box, factor)
        c_rgb, c_tir, C_rgb, _ = crop_pair(rgb, tir, center, side, size, H)
        return to_tensor_images([c_rgb]).to(self.device), to_tensor_images([c_tir]).to(self.device), C_rgb

    def _locate(self, z, x_rgb, x_tir, C_rgb) -> tuple:
        """Run the network on one pair; -> (box in image px, unclipped; raw peak score; windowed peak; output)."""
        m = self.cfg.model
        out = self.model(z[0], x_rgb, z[1], x_tir)
        self._macs += frame_macs(self.cost_table, out.get("align", []))
        raw = out["score_map"]
        score = raw * self.window if self.window is not None else raw
        box_n = decode(score, out["size_map"], out["offset_map"])[0].double().cpu().numpy()   # cx, cy, w, h in [0, 1]
        box_crop = cxcywh_to_xywh(box_n * m.search_size)                                      # crop px
        return warp_boxes(invert(C_rgb), box_crop[None])[0], float(raw.max()), float(score.max()), out

    @torch.no_grad()
    def _first_frame_box(self, H: np.ndarray) -> np.ndarray:
        """TOCU's check: the first frame re-run with its TIR template and search crop cut through H."""
        m = self.cfg.model
        rgb, tir, box = self.first
        _, z_tir, _ = self._crops(rgb, tir, box, m.template_factor, m.template_size, H)
        x_rgb, x_tir, C_rgb = self._crops(rgb, tir, box, m.search_factor, m.search_size, H)
        return self._locate([self.z[0], z_tir], x_rgb, x_tir, C_rgb)[0]

    def initialize(self, rgb: np.ndarray, tir: np.ndarray, box, box_tir=None, H_true=None) -> None:
        """box: the RGB box; box_tir: the TIR box of the same frame (TIR px), needed by ``first-frame``;
        H_true: this frame's true homography, needed by ``oracle``."""
        self._check(rgb, tir)
        box = _valid_box(box, "initial box")
        m = self.cfg.model
        if self.cost_table is None:
            self.cost_table = network_cost_table(self.model)
        self.rgb_size = (rgb.shape[1], rgb.shape[0])
        if self.prealign == "first-frame":
            if box_tir is None:
                raise PMATrackError("prealign 'first-frame' needs the first-frame TIR box (infrared.txt)")
            self.H = fit_box_homography(box, _valid_box(box_tir, "initial TIR box"))
        else:
            self.H = resize_homography(self.rgb_size, (tir.shape[1], tir.shape[0]))
        z_rgb, z_tir, _ = self._crops(rgb, tir, box, m.template_factor, m.template_size, self._homography(H_true))
        self.z = [z_rgb, z_tir]
        self.first = (rgb, tir, box)
        self.tocu = TOCU(self.tocu_cfg, box, self._first_frame_box) if self.tocu_cfg is not None else None
        self.state = box

    @torch.no_grad()
    def track(self, rgb: np.ndarray, tir: np.ndarray, H_true=None) -> np.ndarray:
        """The next frame -> the target's box (x, y, w, h, RGB px). ``last_info`` holds the frame's scores, the
        stages' expert choices and alignment, the homography used and TOCU's decision."""
        if self.state is None:
            raise PMATrackError("call initialize() before track()")
        self._check(rgb, tir)
        m = self.cfg.model
        self._macs = 0
        H_used = self._homography(H_true)
        x_rgb, x_tir, C_rgb = self._crops(rgb, tir, self.state, m.search_factor, m.search_size, H_used)
        box_img, raw, self.last_score, out = self._locate(self.z, x_rgb, x_tir, C_rgb)
        self.state = clip_box(box_img, self.rgb_size)
        info = dict(score=self.last_score, raw_score=raw, C_rgb=C_rgb, H_used=H_used,
                    align=[alignment_summary(r) for r in out.get("align", [])])
        if out.get("H") is not None:
            info["delta"] = lift_alignment(out["H"][0].double().cpu().numpy(), C_rgb)   # RGB image px
        if self.tocu is not None:
            info["tocu"] = self.tocu.decide(self.H, info["delta"], raw, box_center(self.state))
            self.H = info["tocu"]["H"]
        info["macs"] = self._macs                        # this frame's forwards, TOCU's check included
        self.last_info = info
        return self.state.copy()


def alignment_summary(record: dict) -> dict:
    """One stage's record at batch 1 -> plain numbers: expert chosen, router probabilities, parameters, H_k."""
    return dict(role=record["role"], expert=record["names"][int(record["choice"][0])],
                probs={n: float(p) for n, p in zip(record["names"], record["probs"][0].tolist())},
                params=[float(v) for v in record["params"][0, :4].tolist()],
                H=record["H"][0].double().cpu().numpy())


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


def track_dataset(tracker: Tracker, sequences: list[Sequence], out_dir: str | Path | None = None,
                  progress: bool = True, meta: dict | None = None) -> tuple[dict, float]:
    """Track every sequence. With ``out_dir``, write ``<seq>.txt`` and ``<seq>.align.csv`` per sequence and
    ``track_summary.json`` (``track_outputs``). Returns ({name: boxes}, mean FPS)."""
    from tqdm.auto import tqdm

    preds, fps, per_seq = {}, [], {}
    bar = tqdm(total=sum(len(s) - 1 for s in sequences), desc="track", disable=not progress, unit="frame")
    for k, seq in enumerate(sequences):
        try:
            boxes, f, rows = track_sequence(tracker, seq, bar)
        except PMATrackError as exc:
            bar.close()
            if out_dir is None or not preds:
                raise
            raise PMATrackError(f"{exc} (sequence {k + 1} of {len(sequences)}, {seq.name}); kept the "
                                f"{_some(list(preds), 'finished result')} (.txt, .align.csv) in {out_dir}; not tracked: "
                                f"{_some([s.name for s in sequences[k:]], 'sequence')}") from None
        preds[seq.name] = boxes
        fps.append(f)
        per_seq[seq.name] = sequence_summary(rows, f)
        bar.set_postfix(fps=f"{f:.0f}")
        if out_dir is not None:
            write_boxes(Path(out_dir) / f"{seq.name}.txt", boxes)
            write_align_csv(Path(out_dir) / f"{seq.name}.align.csv", rows)
    bar.close()
    tracker.summary = overall_summary(per_seq)
    if out_dir is not None:
        write_summary(Path(out_dir) / "track_summary.json", per_seq, dict(meta or {}, prealign=tracker.prealign,
                                                                           tocu=tracker.tocu_cfg is not None))
    return preds, float(np.mean(fps)) if fps else 0.0


def _some(names: list, what: str) -> str:
    """``3 sequences (a, b, c)``, at most five names shown."""
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return f"{len(names)} {what}{'s' if len(names) != 1 else ''} ({shown})"


def add_cli(sub) -> None:
    t = sub.add_parser("track", help="track every sequence of a dataset with a checkpoint")
    t.add_argument("--checkpoint", required=True)
    t.add_argument("--dataset", required=True)
    t.add_argument("--out", required=True, help="results folder: one <sequence>.txt per sequence")
    t.add_argument("--preset", default=None, help="fail unless the checkpoint was trained with this preset")
    t.add_argument("--list", default=None)
    t.add_argument("--prealign", choices=list(PREALIGN), default="first-frame",
                   help="TIR crops through: the resolution change (none), H0 from the first-frame boxes "
                        "(first-frame, default), or the true homography of every frame (oracle, generated data)")
    t.add_argument("--routing", choices=["router", "soft", "tre", "fme", "dpe"], default=None,
                   help="stage-2 networks: hard routing (router, default), soft mixing, or one expert for all")
    t.add_argument("--tocu", action=argparse.BooleanOptionalAction, default=None,
                   help="update the running homography from the network's alignment when TOCU's check agrees "
                        "(default: on for stage-2 networks with --prealign none or first-frame)")
    t.add_argument("--device", default="cpu")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=_cmd_track)


def _cmd_track(args) -> None:
    check_device(args.device)
    from .models.checkpoint import model_from_checkpoint

    model, cfg, step = model_from_checkpoint(args.checkpoint, device=args.device, expect_preset=args.preset,
                                             routing=args.routing)
    sequences = load_dataset(args.dataset, list_file=args.list)
    if args.prealign == "oracle":
        missing = [s.name for s in sequences if s.homography is None]
        if missing:
            raise PMATrackError(f"--prealign oracle needs homography.txt; {missing[0]} has none (generated data only)")
    use_tocu = args.tocu if args.tocu is not None else (cfg.train.stage == 2 and args.prealign != "oracle")
    tracker = Tracker(model, cfg, args.device, prealign=args.prealign, tocu=TOCUConfig() if use_tocu else None)
    meta = dict(checkpoint=str(args.checkpoint), step=step, stage=cfg.train.stage,
                routing=cfg.align.routing if cfg.train.stage == 2 else None)
    _, fps = track_dataset(tracker, sequences, args.out, progress=not args.quiet, meta=meta)
    print(f"tracked {len(sequences)} sequence(s) with {Path(args.checkpoint).name} (step {step}, "
          f"{cfg.model.modalities}, stage {cfg.train.stage}) at {fps:.1f} FPS, "
          f"{tracker.summary['macs_per_frame'] / 1e6:.0f} M MACs per frame -> {args.out}")
