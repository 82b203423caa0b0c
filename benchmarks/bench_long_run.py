"""A long run stays flat: memory (RSS) and time per frame at the start and at the end of a 10,000-frame sequence.

    python benchmarks/bench_long_run.py [--frames 10000] [--work runs/bench_batch] [--out results/long_run.json]

Network: the cpu-mini stage-2 network of ``pmatrack_mini.experiments.trained`` (``--steps`` steps, trained into
``--work`` on a first run, reused after: the one ``bench_own_cameras.py`` uses), hard routing with TOCU,
first-frame pre-alignment, as ``track`` runs it. Sequence: one generated dynamic-offset sequence (seed 9800, never
used for training). The loop is ``track_run.track_dataset``'s for one sequence, frame by frame, with everything a run
keeps (boxes, the per-frame rows of ``<seq>.align.csv``, the running homographies) and the result files written at
the end.

Measured: the wall time of each frame (reading the frames, crops, network, TOCU's check) and the process's resident
memory every 100 frames. Reported: the median time per frame and the RSS over the first and the last ``--window``
frames (after ``--warmup`` frames), and their growth. Goal (issue: your own cameras): neither grows by more than 10 %.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from pmatrack_mini.data.synth_sets import cached_dataset
from pmatrack_mini.experiments.trained import stage2_network
from pmatrack_mini.tracking.tocu import TOCUConfig
from pmatrack_mini.tracking.track_outputs import frame_row, sequence_summary, write_align_csv
from pmatrack_mini.tracking.tracker import Tracker
from pmatrack_mini.utils import run_record, write_boxes, write_json_atomic


def rss_mb() -> float:
    """Resident memory of this process now (MB), from /proc (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="runs/bench_batch")
    p.add_argument("--steps", type=int, default=200, help="training steps of the stage-2 network")
    p.add_argument("--frames", type=int, default=10_000)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--out", default="results/long_run.json")
    a = p.parse_args(argv)
    work = Path(a.work)
    t_start = time.perf_counter()
    model, cfg = stage2_network(work, a.steps, progress=True)
    seq = cached_dataset(work / f"long_dynamic_1x{a.frames}", 1, a.frames, "dynamic", 9800)[0]
    tracker = Tracker(model, cfg, tocu=TOCUConfig())
    state = tracker.start(seq.rgb(0), seq.tir(0), seq.init_box, seq.gt_infrared[0])
    boxes, rows, Hs = np.zeros((len(seq), 4)), [], [state.H.copy()]
    boxes[0] = seq.init_box
    seconds, memory = np.zeros(len(seq)), {0: rss_mb()}
    from tqdm.auto import tqdm

    for t in tqdm(range(1, len(seq)), desc="long run", unit="frame"):
        t0 = time.perf_counter()
        frame = (seq.rgb(t), seq.tir(t), seq.homography[t])
        (box, info), = tracker.step([state], [frame])
        boxes[t] = box
        rows.append(frame_row(t, info, seq.homography[t], seq.gt_visible[t]))
        Hs.append(state.H.copy())
        seconds[t] = time.perf_counter() - t0
        if t % 100 == 0 or t == len(seq) - 1:
            memory[t] = rss_mb()
    out_dir = work / "results" / "long_run"
    write_boxes(out_dir / f"{seq.name}.txt", boxes)
    write_align_csv(out_dir / f"{seq.name}.align.csv", rows)
    summary = sequence_summary(rows, (len(seq) - 1) / seconds.sum())
    first = slice(a.warmup, a.warmup + a.window)
    last = slice(len(seq) - a.window, len(seq))
    mem_t = np.array(sorted(memory))
    mem_v = np.array([memory[t] for t in mem_t])

    def mem(window: slice) -> float:
        inside = (mem_t >= window.start) & (mem_t < window.stop)
        return float(np.median(mem_v[inside]))

    ms = {k: 1e3 * float(np.median(seconds[w])) for k, w in (("start", first), ("end", last))}
    rss = {"start": mem(first), "end": mem(last)}
    growth = dict(time=ms["end"] / ms["start"] - 1, rss=rss["end"] / rss["start"] - 1)
    met = growth["time"] <= 0.10 and growth["rss"] <= 0.10
    print(f"time per frame: {ms['start']:.1f} ms (frames {first.start}-{first.stop}) -> {ms['end']:.1f} ms (last "
          f"{a.window}): {100 * growth['time']:+.1f} %; RSS {rss['start']:.0f} -> {rss['end']:.0f} MB: "
          f"{100 * growth['rss']:+.1f} %; goal (neither grows by more than 10 %) {'met' if met else 'NOT met'}")
    write_json_atomic(a.out, dict(
        **run_record(argv),
        threads=torch.get_num_threads(), network=f"trained.stage2_network({a.steps} steps), hard routing + TOCU",
        sequence=dict(name=seq.name, frames=len(seq), level="dynamic", seed=9800),
        ms_per_frame=ms, rss_mb=rss, growth=growth, windows=dict(warmup=a.warmup, window=a.window),
        goal=dict(text="time per frame and RSS at the end within 10 % of the start", met=bool(met)),
        tocu=summary.get("tocu"), expert_usage=summary["expert_usage"],
        rss_trace_mb={int(t): round(v, 1) for t, v in memory.items() if t % 1000 == 0 or t == len(seq) - 1},
        total_seconds=time.perf_counter() - t_start))
    print(f"-> {a.out}")


if __name__ == "__main__":
    main()
