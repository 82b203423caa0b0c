"""Inference: a tracker object with OSTrack's ``initialize`` / ``track`` interface, and the ``track`` command.

    tracker = Tracker(model, cfg, device)
    tracker.initialize(rgb, tir, box)        # box x, y, w, h in RGB pixels
    box = tracker.track(rgb, tir)            # next frame -> x, y, w, h in RGB pixels

Each frame: cut the search region (factor 4) around the last box in RGB and, naively, at the same place in
TIR (resolution change only); run the network; multiply the score map by a Hann window (a prior for small
motion); decode the arg-max; map the box back to the image; clip it to the image.

    pmatrack-mini track --checkpoint RUN/final.pt --dataset DIR --out RESULTS_DIR
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .config import Config
from .data.crops import box_center_xy, crop_pair, crop_side
from .data.dataset import Sequence, load_dataset
from .data.sampler import to_tensor_images
from .errors import PMATrackError
from .geometry import cxcywh_to_xywh, invert, resize_homography, warp_boxes
from .models.head import decode
from .utils import check_device, write_boxes


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


class Tracker:
    def __init__(self, model: torch.nn.Module, cfg: Config, device="cpu", hann: bool = True):
        self.model = model.to(device).eval()
        self.cfg, self.device = cfg, torch.device(device)
        m = cfg.model
        self.window = hann2d(m.feat_size).to(self.device) if hann else None
        self.state = None
        self.last_score = None

    def _check(self, rgb, tir):
        if rgb.ndim != 3 or rgb.shape[2] != 3 or tir.ndim != 3 or tir.shape[2] != 3:
            raise PMATrackError(f"expected (H, W, 3) RGB and TIR frames, got {rgb.shape} and {tir.shape}")

    def initialize(self, rgb: np.ndarray, tir: np.ndarray, box) -> None:
        self._check(rgb, tir)
        box = np.asarray(box, dtype=np.float64)
        if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
            raise PMATrackError(f"initial box must be 4 finite numbers with w, h > 0, got {box.tolist()}")
        m = self.cfg.model
        self.rgb_size = (rgb.shape[1], rgb.shape[0])
        self.S_res = resize_homography(self.rgb_size, (tir.shape[1], tir.shape[0]))
        z_rgb, z_tir, _, _ = crop_pair(rgb, tir, box_center_xy(box), crop_side(box, m.template_factor),
                                       m.template_size, self.S_res)
        self.z = [to_tensor_images([z_rgb]).to(self.device), to_tensor_images([z_tir]).to(self.device)]
        self.state = box

    @torch.no_grad()
    def track(self, rgb: np.ndarray, tir: np.ndarray) -> np.ndarray:
        if self.state is None:
            raise PMATrackError("call initialize() before track()")
        self._check(rgb, tir)
        m = self.cfg.model
        x_rgb, x_tir, C_rgb, _ = crop_pair(rgb, tir, box_center_xy(self.state), crop_side(self.state, m.search_factor),
                                           m.search_size, self.S_res)
        x = [to_tensor_images([x_rgb]).to(self.device), to_tensor_images([x_tir]).to(self.device)]
        out = self.model(self.z[0], x[0], self.z[1], x[1])
        score = out["score_map"] * self.window if self.window is not None else out["score_map"]
        self.last_score = float(score.max())
        box_n = decode(score, out["size_map"], out["offset_map"])[0].double().cpu().numpy()   # cx, cy, w, h in [0, 1]
        box_crop = cxcywh_to_xywh(box_n * m.search_size)                                      # crop px
        box_img = warp_boxes(invert(C_rgb), box_crop[None])[0]                                # image px
        self.state = clip_box(box_img, self.rgb_size)
        return self.state.copy()


def track_sequence(tracker: Tracker, seq: Sequence, progress=None) -> tuple[np.ndarray, float]:
    """Run over a whole sequence; returns ((T, 4) boxes, frames per second of tracking)."""
    boxes = np.zeros((len(seq), 4))
    boxes[0] = seq.init_box
    tracker.initialize(seq.rgb(0), seq.tir(0), seq.init_box)
    spent = 0.0
    for t in range(1, len(seq)):
        rgb, tir = seq.rgb(t), seq.tir(t)
        t0 = time.perf_counter()
        boxes[t] = tracker.track(rgb, tir)
        spent += time.perf_counter() - t0
        if progress is not None:
            progress.update(1)
    return boxes, (len(seq) - 1) / max(spent, 1e-9)


def track_dataset(tracker: Tracker, sequences: list[Sequence], out_dir: str | Path | None = None,
                  progress: bool = True) -> tuple[dict, float]:
    """Track every sequence; write ``<seq>.txt`` files if ``out_dir``. Returns ({name: boxes}, mean FPS)."""
    from tqdm.auto import tqdm

    preds, fps = {}, []
    bar = tqdm(total=sum(len(s) - 1 for s in sequences), desc="track", disable=not progress, unit="frame")
    for seq in sequences:
        boxes, f = track_sequence(tracker, seq, bar)
        preds[seq.name] = boxes
        fps.append(f)
        bar.set_postfix(fps=f"{f:.0f}")
        if out_dir is not None:
            write_boxes(Path(out_dir) / f"{seq.name}.txt", boxes)
    bar.close()
    return preds, float(np.mean(fps)) if fps else 0.0


def add_cli(sub) -> None:
    t = sub.add_parser("track", help="track every sequence of a dataset with a checkpoint")
    t.add_argument("--checkpoint", required=True)
    t.add_argument("--dataset", required=True)
    t.add_argument("--out", required=True, help="results folder: one <sequence>.txt per sequence")
    t.add_argument("--preset", default=None, help="fail unless the checkpoint was trained with this preset")
    t.add_argument("--list", default=None)
    t.add_argument("--device", default="cpu")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=_cmd_track)


def _cmd_track(args) -> None:
    check_device(args.device)
    from .train import model_from_checkpoint

    model, cfg, step = model_from_checkpoint(args.checkpoint, device=args.device, expect_preset=args.preset)
    sequences = load_dataset(args.dataset, list_file=args.list)
    _, fps = track_dataset(Tracker(model, cfg, args.device), sequences, args.out, progress=not args.quiet)
    print(f"tracked {len(sequences)} sequence(s) with {Path(args.checkpoint).name} (step {step}, "
          f"{cfg.model.modalities}) at {fps:.1f} FPS -> {args.out}")
