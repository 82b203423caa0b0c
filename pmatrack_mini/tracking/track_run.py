"""Tracking a whole dataset, N sequences at a time, and the ``track`` command.

    pmatrack-mini track --checkpoint RUN/final.pt --dataset DIR --out RESULTS_DIR [--prealign ...] [--routing ...]
                        [--tocu/--no-tocu] [--batch N]

:func:`track_dataset` keeps up to ``batch`` sequences in flight, each with its own state (``tracker.TrackState``:
box, running homography, templates, TOCU), and runs the network once per frame index on their stacked crops
(``Tracker.step``); when a sequence ends, the next one takes its slot, so sequences of any lengths and frame sizes
mix. One step computes for each sequence what it computes alone, up to float rounding: oneDNN picks other
convolution kernels for other batch sizes (about 1e-7 in the head's maps; the ViT's matrix products are exact), tested
to 1e-3 px with the same expert choices and TOCU decisions. Over a whole sequence the tracking loop can amplify such a
difference where two score peaks nearly tie: measured with trained cpu-mini networks on 12 dynamic sequences
(``benchmarks/bench_batch_tracking.py``), batch 8 and batch 1 ended up to 180-200 px apart on some sequence, 8 of
948 frames with another TOCU decision or expert; the batch size is therefore recorded in ``track_summary.json``.

Each sequence's result file is written (atomically) as soon as the sequence is tracked. When a later sequence fails
(an unreadable frame, found only when it is decoded), the finished results are kept, since a long run should not
lose hours of work to one bad file, and the error says which were kept and which were not tracked (the sequences
still in flight among them); ``eval`` refuses a results folder without a file for every sequence, so a partial set
is never scored by mistake. Everything that can be checked before tracking (checkpoint, dataset folders, ground
truth, output folder) is checked first, so those errors leave nothing behind.

FPS per sequence is its frames over its share of the batched forwards (a step's time split evenly among the
sequences in it); ``track_summary.json`` also states the run's throughput (all frames over the whole time).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..cli_args import int_at_least
from ..data.dataset import Sequence, load_dataset
from ..errors import PMATrackError
from ..utils import check_device
from .tocu import TOCUConfig
from .track_outputs import (RESULT_FORMATS, frame_row, overall_summary, sequence_summary, write_align_csv, write_result,
                            write_summary)
from .track_video import add_video_arguments, video_input, write_annotated_video
from .tracker import PREALIGN, Tracker, TrackState


@dataclass
class _Job:
    """A sequence in flight: its index in the dataset, state, next frame, boxes, CSV rows and tracking time."""
    index: int
    seq: Sequence
    state: TrackState
    boxes: np.ndarray
    t: int = 1
    rows: list = field(default_factory=list)
    spent: float = 0.0
    Hs: list = field(default_factory=list)          # the running homography after each frame (frame 0: the start)

    def homography(self, t: int):
        return None if self.seq.homography is None else self.seq.homography[t]


def _start(tracker: Tracker, index: int, seq: Sequence) -> _Job:
    if tracker.prealign == "oracle" and seq.homography is None:
        raise PMATrackError(f"{seq.path}: --prealign oracle needs homography.txt (generated data only)")
    boxes = np.zeros((len(seq), 4))
    boxes[0] = seq.init_box
    job = _Job(index, seq, None, boxes)
    job.state = tracker.start(seq.rgb(0), seq.tir(0), seq.init_box, seq.gt_infrared[0], job.homography(0),
                              H0=seq.calibration)
    job.Hs.append(job.state.H.copy())
    return job


def track_dataset(tracker: Tracker, sequences: list[Sequence], out_dir: str | Path | None = None,
                  progress: bool = True, meta: dict | None = None, batch: int = 1,
                  on_finish=None, result_format: str = "lasher") -> tuple[dict, float]:
    """Track every sequence, ``batch`` at a time. With ``out_dir``, write ``<seq>.txt`` and ``<seq>.align.csv`` per
    sequence (``<seq>.txt`` in ``result_format``: ``track_outputs.RESULT_FORMATS``) and ``track_summary.json``
    (``track_outputs``); ``on_finish(seq, boxes, homographies)`` is called as
    each sequence ends (homographies: the running one after each frame). Returns ({name: boxes}, mean FPS over
    sequences)."""
    from tqdm.auto import tqdm

    if batch < 1:
        raise PMATrackError(f"batch must be at least 1, got {batch}")
    done: dict[int, tuple] = {}                       # index -> (boxes, fps, rows)
    bar = tqdm(total=sum(len(s) - 1 for s in sequences), desc="track", disable=not progress, unit="frame")
    queue, jobs, current = list(enumerate(sequences)), [], None
    t_run = time.perf_counter()
    try:
        while queue or jobs:
            while queue and len(jobs) < batch:
                current = queue.pop(0)
                job = _start(tracker, *current)
                if len(job.seq) > 1:
                    jobs.append(job)
                else:
                    done[job.index] = _finish(job, out_dir, on_finish, result_format)
            if not jobs:
                continue
            frames = []
            for job in jobs:
                current = (job.index, job.seq)
                frames.append((job.seq.rgb(job.t), job.seq.tir(job.t), job.homography(job.t)))
            current = None                            # an error now belongs to the whole batch
            t0 = time.perf_counter()
            results = tracker.step([j.state for j in jobs], frames)
            share = (time.perf_counter() - t0) / len(jobs)
            for job, (box, info) in zip(jobs, results):
                job.boxes[job.t] = box
                job.rows.append(frame_row(job.t, info, job.homography(job.t), job.seq.gt_visible[job.t]))
                job.spent += share
                job.t += 1
                job.Hs.append(job.state.H.copy())
            bar.update(len(jobs))
            for job in [j for j in jobs if j.t == len(j.seq)]:
                done[job.index] = _finish(job, out_dir, on_finish, result_format)
                bar.set_postfix(fps=f"{done[job.index][1]:.0f}")
            jobs = [j for j in jobs if j.t < len(j.seq)]
    except PMATrackError as exc:
        bar.close()
        if out_dir is None or not done:
            raise
        where = (f"sequence {current[0] + 1} of {len(sequences)}, {current[1].name}" if current is not None else
                 f"in a batch of {_some([j.seq.name for j in jobs], 'sequence')}")
        kept = [sequences[i].name for i in sorted(done)]
        missing = [s.name for i, s in enumerate(sequences) if i not in done]
        raise PMATrackError(f"{exc} ({where}); kept the "
                            f"{_some(kept, 'finished result')} (.txt, .align.csv) in {out_dir}; not tracked: "
                            f"{_some(missing, 'sequence')}") from None
    bar.close()
    elapsed = time.perf_counter() - t_run
    order = sorted(done)
    preds = {sequences[i].name: done[i][0] for i in order}
    per_seq = {sequences[i].name: sequence_summary(done[i][2], done[i][1]) for i in order}
    tracker.summary = overall_summary(per_seq)
    if out_dir is not None:
        frames = sum(len(s) - 1 for s in sequences)
        write_summary(Path(out_dir) / "track_summary.json", per_seq,
                      dict(meta or {}, prealign=tracker.prealign, tocu=tracker.tocu_cfg is not None, batch=batch,
                           throughput_fps=frames / max(elapsed, 1e-9)))
    return preds, float(np.mean([done[i][1] for i in order])) if order else 0.0


def _finish(job: _Job, out_dir, on_finish=None, result_format: str = "lasher") -> tuple:
    fps = (len(job.seq) - 1) / max(job.spent, 1e-9)
    if out_dir is not None:
        write_result(out_dir, job.seq.name, job.boxes, result_format, init_box=job.seq.init_box)
        write_align_csv(Path(out_dir) / f"{job.seq.name}.align.csv", job.rows)
    if on_finish is not None:
        on_finish(job.seq, job.boxes, job.Hs)
    return job.boxes, fps, job.rows


def _some(names: list, what: str) -> str:
    """``3 sequences (a, b, c)``, at most five names shown."""
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return f"{len(names)} {what}{'s' if len(names) != 1 else ''} ({shown})"


def add_cli(sub) -> None:
    t = sub.add_parser("track", help="track every sequence of a dataset, or an RGB and a thermal video, with a "
                                     "checkpoint")
    t.add_argument("--checkpoint", required=True)
    t.add_argument("--dataset", help="a folder of sequences (LasHeR layout); or give --rgb and --tir")
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
    t.add_argument("--batch", type=int_at_least(1), default=1,
                   help="sequences tracked together, one network forward per frame index (more FPS; float rounding "
                        "differs from one at a time, see track_run)")
    t.add_argument("--format", choices=RESULT_FORMATS, default="lasher",
                   help="result rows: lasher (x,y,w,h with decimals, default), official (4 space-separated integers, "
                        "as the official tracker writes), corners (RGBT234's 8 corner values, PMATrack_<seq>.txt)")
    t.add_argument("--device", default="cpu")
    t.add_argument("--eager", action="store_true",
                   help="run DPE's U-Nets eagerly (the reference) even with 300 frames or more to track, where they "
                        "are otherwise traced and frozen (faster on a CPU, the same results to float rounding)")
    t.add_argument("--fast-kernels", action="store_true",
                   help="stage-2 networks: TRE's scaling transport and FME's channels-last pyramid (the same "
                        "outputs to float rounding, faster on a CPU; off by default: the stored results ran without)")
    t.add_argument("--quiet", action="store_true")
    add_video_arguments(t)
    t.set_defaults(func=_cmd_track)


def _cmd_track(args) -> None:
    check_device(args.device)
    from ..models.checkpoint import model_from_checkpoint
    from ..models.inference import TRACE_FROM_FRAMES

    if args.dataset and (args.rgb or args.tir):
        raise PMATrackError("give either --dataset or --rgb/--tir, not both")
    sequences = load_dataset(args.dataset, list_file=args.list) if args.dataset else [video_input(args)]
    if args.video and args.dataset:
        raise PMATrackError("--video is for --rgb/--tir (one sequence)")
    model, cfg, step = model_from_checkpoint(args.checkpoint, device=args.device, expect_preset=args.preset,
                                             routing=args.routing)
    if args.prealign == "oracle":
        missing = [s.name for s in sequences if s.homography is None]
        if missing:
            raise PMATrackError(f"--prealign oracle needs homography.txt; {missing[0]} has none (generated data only)")
    use_tocu = args.tocu if args.tocu is not None else (cfg.train.stage == 2 and args.prealign != "oracle")
    traced = (not args.eager and cfg.train.stage == 2 and "dpe" in cfg.align.experts   # only DPE is traced,
              and sum(len(s) for s in sequences) >= TRACE_FROM_FRAMES)                # and only where it pays
    tracker = Tracker(model, cfg, args.device, prealign=args.prealign, tocu=TOCUConfig() if use_tocu else None,
                      traced=traced, fast_kernels=args.fast_kernels)
    meta = dict(checkpoint=str(args.checkpoint), step=step, stage=cfg.train.stage, traced=traced,
                fast_kernels=args.fast_kernels and cfg.train.stage == 2,     # stage 1 has no experts
                routing=cfg.align.routing if cfg.train.stage == 2 else None)
    if not args.dataset:
        meta.update(rgb=str(args.rgb), tir=str(args.tir), init=list(args.init),
                    init_tir=list(args.init_tir) if args.init_tir else None, homography=args.homography)
    on_finish = None
    if args.video:
        def on_finish(seq, boxes, Hs):
            write_annotated_video(seq, boxes, Hs, Path(args.out) / f"{seq.name}.mp4", progress=not args.quiet)
    _, fps = track_dataset(tracker, sequences, args.out, progress=not args.quiet, meta=dict(meta, format=args.format),
                           batch=args.batch, on_finish=on_finish, result_format=args.format)
    print(f"tracked {len(sequences)} sequence(s) with {Path(args.checkpoint).name} (step {step}, "
          f"{cfg.model.modalities}, stage {cfg.train.stage}) at {fps:.1f} FPS, "
          f"{tracker.summary['macs_per_frame'] / 1e6:.0f} M MACs per frame -> {args.out}")
