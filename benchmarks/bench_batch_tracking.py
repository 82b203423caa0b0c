"""Batched tracking: frames per second of ``track --batch N`` against ``--batch 1``, and whether the results agree.

    python benchmarks/bench_batch_tracking.py [--work runs/bench_batch] [--batches 1 4 8]
        [--out results/batch_tracking.json] [--stage1 CKPT --stage2 CKPT] [--fast-kernels]

Networks: the cpu-mini stage-1 tracker and the stage-2 network of ``pmatrack_mini.experiments.trained`` (400 steps each,
trained into ``--work`` on a first run, reused after), or the checkpoints ``--stage1`` / ``--stage2`` (e.g. the Full
row's network of ``reproduce``). The stage-2 network runs with DPE's U-Nets traced (as ``track`` does from 300
frames on); ``--fast-kernels`` adds the same network with the experts' fast kernels
(``models.inference.fast_kernels_for_inference``), compared with the reference kernels' batch 1 too.
Test set: held-out generated dynamic sequences (seed 9700, never used for training). Each network tracks the set as
``track`` does (first-frame pre-alignment; the stage-2 network with hard routing and TOCU) at every batch size, one
run after the other in this process.

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
from pmatrack_mini.models.checkpoint import model_from_checkpoint
from pmatrack_mini.tracking.tocu import TOCUConfig
from pmatrack_mini.tracking.track_run import track_dataset
from pmatrack_mini.tracking.tracker import Tracker
from pmatrack_mini.utils import run_record, write_json_atomic

DECISIONS = ("tocu", "center_expert", "scale_expert", "refine_expert")
FAST = "stage 2, fast kernels"
FOLDERS = {"stage 1": "stage1", "stage 2": "stage2", FAST: "stage2_fast"}


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
    p.add_argument("--stage1", help="a stage-1 checkpoint instead of the trained one")
    p.add_argument("--stage2", help="a stage-2 checkpoint instead of the trained one")
    p.add_argument("--fast-kernels", action="store_true", help="also the stage-2 network with the fast kernels")
    p.add_argument("--out", default="results/batch_tracking.json")
    a = p.parse_args(argv)
    for given in (a.stage1, a.stage2):
        if given and not Path(given).is_file():
            p.error(f"checkpoint not found: {given}")
    work = Path(a.work)
    t_start = time.perf_counter()
    networks = {"stage 1": (model_from_checkpoint(a.stage1)[:2] if a.stage1 else
                            stage1_tracker(work, a.steps, progress=True)),
                "stage 2": (model_from_checkpoint(a.stage2)[:2] if a.stage2 else
                            stage2_network(work, a.steps, progress=True))}
    sources = {"stage 1": a.stage1 or f"trained.stage1_tracker({a.steps} steps)",
               "stage 2": a.stage2 or f"trained.stage2_network({a.steps} steps)"}
    options = {"stage 1": {}, "stage 2": dict(traced=True)}
    if a.fast_kernels:
        networks[FAST], sources[FAST] = networks["stage 2"], sources["stage 2"]
        options[FAST] = dict(traced=True, fast_kernels=True)
    seqs = cached_dataset(work / f"test_dynamic_{a.sequences}x{a.frames}", a.sequences, a.frames, "dynamic", 9700)
    names = [s.name for s in seqs]
    frames = sum(len(s) - 1 for s in seqs)
    report, reference = {}, {}
    for label, (model, cfg) in networks.items():
        tocu = TOCUConfig() if cfg.train.stage == 2 else None
        runs = {}
        for batch in sorted(set([1] + a.batches)):
            folder = work / "results" / FOLDERS[label] / f"batch{batch}"
            t0 = time.perf_counter()
            preds, _ = track_dataset(Tracker(model, cfg, tocu=tocu, **options[label]), seqs, folder, progress=False,
                                     batch=batch)
            runs[batch] = dict(seconds=time.perf_counter() - t0, preds=preds, decisions=_decisions(folder, names))
        rows = {}
        for batch, r in runs.items():
            ref = runs[1]
            diff = max(float(np.abs(r["preds"][n] - ref["preds"][n]).max()) for n in names)
            differ = sum(x != y for n in names for x, y in zip(r["decisions"][n], ref["decisions"][n]))
            rows[str(batch)] = dict(fps=frames / r["seconds"], speedup=ref["seconds"] / r["seconds"],
                                    max_box_diff_px=diff, frames_with_other_decisions=differ)
            if label == FAST:                                # against the reference kernels, batch 1
                rows[str(batch)].update(
                    speedup_vs_reference_batch1=frames / r["seconds"] / report["stage 2"]["1"]["fps"],
                    max_box_diff_vs_reference_batch1_px=max(float(np.abs(r["preds"][n] - reference[n]).max())
                                                            for n in names))
            print(f"{label}, batch {batch}: {frames / r['seconds']:.1f} FPS ({ref['seconds'] / r['seconds']:.2f}x "
                  f"batch 1), boxes within {diff:.2g} px of batch 1, {differ} frames with another TOCU decision "
                  f"or expert")
        report[label] = rows
        if label == "stage 2":
            reference = runs[1]["preds"]
    if FAST in report and "8" in report[FAST]:
        print(f"fast kernels, batch 8: {report[FAST]['8']['speedup_vs_reference_batch1']:.2f}x the reference "
              f"kernels' batch 1")
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
        networks=sources, tracker_options=options,
        results=report, goal=goal, total_seconds=time.perf_counter() - t_start))
    print(f"-> {a.out}")


if __name__ == "__main__":
    main()
