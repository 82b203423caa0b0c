"""Batched tracking: frames per second of ``track --batch N`` against ``--batch 1``, and whether the results agree.

    python benchmarks/bench_batch_tracking.py [--work runs/bench_batch] [--batches 1 4 8] [--out results/batch_tracking.json]

Networks: the cpu-mini stage-1 tracker and the stage-2 network of ``pmatrack_mini.experiments.trained`` (400 steps each,
trained into ``--work`` on a first run, reused after). Test set: held-out generated dynamic sequences (seed 9700,
never used for training). Each network tracks the set as ``track`` does (first-frame pre-alignment; the stage-2
network with hard routing and TOCU) at every batch size, one run after the other in this process.

Reported per network and batch size: throughput (all tracked frames over the wall time of the whole run: crops,
network, decoding, TOCU's checks, reading the frames and writing the results), and against batch 1 the largest box
difference (px) and the frames whose TOCU decision or expert choices differ. Goal (issue: fast on two cores):
``--batch 8`` >= 3x the frames per second of ``--batch 1`` for the stage-2 network, boxes within 0.01 px and the
same TOCU decisions.
"""
from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

from pmatrack_mini.data.synth_sets import cached_dataset
from pmatrack_mini.experiments.trained import stage1_tracker, stage2_network
from pmatrack_mini.tracking.tocu import TOCUConfig
from pmatrack_mini.tracking.track_run import track_dataset
from pmatrack_mini.tracking.tracker import Tracker
from pmatrack_mini.utils import run_record, write_json_atomic

DECISIONS = ("tocu", "center_expert", "scale_expert", "refine_expert")


def _decisions(folder: Path, names: list) -> dict:
    out = {}
    for n in names:
        with open(folder / f"{n}.align.csv") as f:
            out[n] = [tuple(r.get(k, "") for k in DECISIONS) for r in csv.DictReader(f)]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="runs/bench_batch")
    p.add_argument("--steps", type=int, default=400, help="training steps of each network")
    p.add_argument("--sequences", type=int, default=16)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--out", default="results/batch_tracking.json")
    a = p.parse_args(argv)
    work = Path(a.work)
    t_start = time.perf_counter()
    networks = {"stage 1": stage1_tracker(work, a.steps, progress=True),
                "stage 2": stage2_network(work, a.steps, progress=True)}
    seqs = cached_dataset(work / f"test_dynamic_{a.sequences}x{a.frames}", a.sequences, a.frames, "dynamic", 9700)
    names = [s.name for s in seqs]
    frames = sum(len(s) - 1 for s in seqs)
    report = {}
    for label, (model, cfg) in networks.items():
        tocu = TOCUConfig() if cfg.train.stage == 2 else None
        runs = {}
        for batch in sorted(set([1] + a.batches)):
            folder = work / "results" / label.replace(" ", "") / f"batch{batch}"
            t0 = time.perf_counter()
            preds, _ = track_dataset(Tracker(model, cfg, tocu=tocu), seqs, folder, progress=False, batch=batch)
            runs[batch] = dict(seconds=time.perf_counter() - t0, preds=preds, decisions=_decisions(folder, names))
        rows = {}
        for batch, r in runs.items():
            ref = runs[1]
            diff = max(float(np.abs(r["preds"][n] - ref["preds"][n]).max()) for n in names)
            differ = sum(x != y for n in names for x, y in zip(r["decisions"][n], ref["decisions"][n]))
            rows[str(batch)] = dict(fps=frames / r["seconds"], speedup=ref["seconds"] / r["seconds"],
                                    max_box_diff_px=diff, frames_with_other_decisions=differ)
            print(f"{label}, batch {batch}: {frames / r['seconds']:.1f} FPS ({ref['seconds'] / r['seconds']:.2f}x "
                  f"batch 1), boxes within {diff:.2g} px of batch 1, {differ} frames with another TOCU decision "
                  f"or expert")
        report[label] = rows
    s2 = report["stage 2"].get("8")
    goal = None
    if s2 is not None:
        met = s2["speedup"] >= 3 and s2["max_box_diff_px"] <= 0.01 and s2["frames_with_other_decisions"] == 0
        goal = dict(text="stage 2, --batch 8: >= 3x the FPS of --batch 1, boxes within 0.01 px, same decisions",
                    met=bool(met), speedup=s2["speedup"], max_box_diff_px=s2["max_box_diff_px"],
                    frames_with_other_decisions=s2["frames_with_other_decisions"])
        print(f"goal {'met' if met else 'NOT met'}: {goal['text']} -> {s2['speedup']:.2f}x, "
              f"{s2['max_box_diff_px']:.2g} px, {s2['frames_with_other_decisions']} frames")
    write_json_atomic(a.out, dict(
        **run_record(argv),
        threads=torch.get_num_threads(), test_set=dict(level="dynamic", sequences=a.sequences, frames=a.frames,
                                                       seed=9700, tracked_frames=frames),
        networks={k: f"trained.{'stage1_tracker' if k == 'stage 1' else 'stage2_network'}({a.steps} steps)"
                  for k in networks},
        results=report, goal=goal, total_seconds=time.perf_counter() - t_start))
    print(f"-> {a.out}")


if __name__ == "__main__":
    main()
