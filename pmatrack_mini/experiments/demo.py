"""``make demo``: PMATrack's idea in ten minutes on a laptop CPU.

1. generate held-out sequences whose RGB -> TIR offset drifts frame by frame (``synth --offset dynamic``) and print
   how far the TIR target sits from where the RGB box says;
2. train (or reuse, ``trained``) the cpu-mini stage-1 tracker briefly on aligned sequences, then PMATrack's
   alignment stages on top of it (stage 2: experts, router, TCMDA; the tracker frozen);
3. track the sequences twice: the **baseline** (the stage-1 tracker, TIR crops cut through the first frame's
   homography: a static pre-alignment) and **PMATrack** (the stage-2 network, hard routing, TOCU);
4. print both side by side: PR / NPR / SR with the per-sequence bootstrap interval of PMATrack's gain, the
   alignment error at the target (RGB px), MACs and FPS; write the precision / success curves and a GIF: RGB with
   the ground truth and both boxes, TIR with both boxes mapped through each tracker's homography and the RGB frame's
   grid through PMATrack's running homography (it moves with the drifting offset; the baseline's does not).

Short trainings, to fit ten minutes on a fresh 2-core clone with the install: at the default 150 + 60 steps
PMATrack does not beat the baseline (``results/demo.json``: its experts' estimate is no closer to the true homography
than the static one, and TOCU's score floor keeps the weak tracker's running homography fixed). The demo shows the
pipeline and how to read it; ``--stage1-steps`` / ``--stage2-steps`` train longer, ``reproduce`` trains the tables'.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ..data.synth_sets import cached_dataset
from ..evaluation.evaluate import evaluate_predictions, plot_curves
from ..evaluation.intervals import interval_text, mean_difference, paired_interval
from ..evaluation.reference import misalignment_stats
from ..evaluation.viz import GREEN, draw_homography_grid, draw_mapped_box, save_gif, side_by_side
from ..tracking.tocu import TOCUConfig
from ..tracking.track_run import track_dataset
from ..tracking.tracker import Tracker
from ..utils import FAST, set_seed
from .trained import stage1_tracker, stage2_network, training_summary

TEST_SEED = 9700                      # held-out: no training set uses it
COLORS = {"baseline": (70, 140, 255), "PMATrack": (255, 50, 50)}


def test_set(folder: Path, sequences: int, frames: int, seed: int = TEST_SEED) -> list:
    """Dynamic-offset sequences (generated once into ``folder``)."""
    return cached_dataset(folder, sequences, frames, "dynamic", seed, progress=False)


def track_both(base, pmatrack, seqs: list, out: Path, batch: int) -> dict:
    """{label: dict(preds, report, Hs, fps, summary, rows)} for the baseline, PMATrack and, as the ceiling, the
    baseline given the exact homography of every frame (``homography.txt``: what perfect alignment would bring)."""
    (m1, c1), (m2, c2) = base, pmatrack
    trackers = {"baseline": Tracker(m1, c1, prealign="first-frame"),
                "PMATrack": Tracker(m2, c2, prealign="first-frame", tocu=TOCUConfig(),
                                    traced=not FAST),      # CI-size networks: tracing costs more than it saves
                "exact": Tracker(m1, c1, prealign="oracle")}
    done = {}
    for label, tracker in trackers.items():
        Hs: dict = {}
        print(f"tracking {len(seqs)} sequences: {label} ...", flush=True)
        folder = out / "results" / label
        preds, fps = track_dataset(tracker, seqs, folder, progress=not FAST, batch=batch,
                                   on_finish=lambda seq, boxes, hs, store=Hs: store.__setitem__(seq.name, hs))
        rows = [r for s in seqs for r in csv.DictReader(open(folder / f"{s.name}.align.csv"))]
        done[label] = dict(preds=preds, report=evaluate_predictions(seqs, preds), Hs=Hs, fps=fps,
                           summary=dict(tracker.summary), rows=rows)
    return done


def median_column(rows: list, column: str) -> float:
    """Median of one numeric column of ``.align.csv`` rows (NaN when no row has it)."""
    vals = [float(r[column]) for r in rows if r.get(column) not in (None, "")]
    return float(np.median(vals)) if vals else float("nan")


def comparison_frame(seq, t: int, runs: dict) -> np.ndarray:
    """RGB | TIR at frame t: the ground truth (green) and the baseline's and PMATrack's boxes (blue, red); on TIR each
    box mapped through that tracker's homography, and the RGB frame's grid through the true homography (green) and
    through PMATrack's running one (red): where the red grid follows the green one, PMATrack's alignment holds."""
    left, right, S = side_by_side(seq.rgb(t), seq.tir(t))
    h, w = left.shape[:2]
    draw_homography_grid(right, S @ seq.homography[t], (w, h), lines=4, color=(60, 160, 60))
    draw_homography_grid(right, S @ runs["PMATrack"]["Hs"][seq.name][t], (w, h), lines=4, color=(255, 120, 120))
    x, y, bw, bh = np.round(seq.gt_visible[t]).astype(int)
    cv2.rectangle(left, (x, y), (x + bw - 1, y + bh - 1), GREEN, 1)
    draw_mapped_box(right, seq.gt_visible[t], S @ seq.homography[t], GREEN, 1)
    for label, color in COLORS.items():
        box = runs[label]["preds"][seq.name][t]
        bx, by, bw, bh = np.round(box).astype(int)
        cv2.rectangle(left, (bx, by), (bx + bw - 1, by + bh - 1), color, 2)
        draw_mapped_box(right, box, S @ runs[label]["Hs"][seq.name][t], color)
    out = np.concatenate([left, right], axis=1)
    cv2.putText(out, f"{seq.name} {t + 1}/{len(seq)}  green: truth  blue: baseline  red: PMATrack", (6, h - 8),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def print_comparison(seqs: list, runs: dict) -> None:
    """The scores side by side with PMATrack's gain over the baseline (95 % bootstrap interval over sequences), the
    alignment error at the target, and what each costs."""
    base, pm, exact = runs["baseline"], runs["PMATrack"], runs["exact"]
    print(f"\n{len(seqs)} held-out dynamic-offset sequences x {len(seqs[0])} frames, PR / NPR / SR %. 'exact': the "
          f"baseline given every frame's true homography, the most alignment can bring.")
    print(f"{'':<5} {'baseline':>9} {'PMATrack':>9} {'exact':>7}   PMATrack - baseline [95 % interval]")
    names = sorted(base["report"]["sequences"])
    for metric in ("PR", "NPR", "SR"):
        a, b = ([run["report"]["sequences"][n][metric] for n in names] for run in (base, pm))
        gain = interval_text(*paired_interval(mean_difference, a, b))
        print(f"{metric:<5} {100 * base['report'][metric]:9.1f} {100 * pm['report'][metric]:9.1f} "
              f"{100 * exact['report'][metric]:7.1f}   {gain}")
    print("\nAlignment error at the target, median RGB px over frames (0: the true homography):")
    print(f"  static first-frame homography (baseline)        {median_column(base['rows'], 'residual_crop_px'):6.1f}")
    print(f"  PMATrack's per-frame estimate (its experts)     {median_column(pm['rows'], 'residual_network_px'):6.1f}")
    print(f"  PMATrack's running homography (moved by TOCU)   {median_column(pm['rows'], 'residual_crop_px'):6.1f}")
    tocu = pm["summary"].get("tocu") or {}
    reasons = {}
    for r in pm["rows"]:
        reasons[r.get("tocu_reason") or r.get("tocu")] = reasons.get(r.get("tocu_reason") or r.get("tocu"), 0) + 1
    print(f"  TOCU accepted {100 * tocu.get('acceptance_per_frame', 0.0):.0f} % of frames ("
          + ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])) + ")")
    print(f"\nGMACs per frame: baseline {base['summary']['macs_per_frame'] / 1e9:.2f}, PMATrack "
          f"{pm['summary']['macs_per_frame'] / 1e9:.2f} (+{pm['summary'].get('tocu_macs_per_frame', 0) / 1e9:.2f} "
          f"for TOCU's template check); FPS on this machine {base['fps']:.0f} and {pm['fps']:.0f}")
    usage = pm["summary"].get("expert_usage") or {}
    print("PMATrack's router, share of frames per expert: " + "; ".join(
        f"{role} " + ", ".join(f"{e} {100 * p:.0f} %" for e, p in shares.items()) for role, shares in usage.items()))


def run(out: Path, sequences: int, frames: int, stage1_steps: int, stage2_steps: int, batch_size: int, batch: int,
        seed: int = 0) -> dict:
    t0 = time.perf_counter()
    set_seed(seed)
    seqs = test_set(out / "data" / f"test_dynamic_{sequences}x{frames}", sequences, frames)
    st = [misalignment_stats(s) for s in seqs]
    print(f"Generated {len(seqs)} sequences whose RGB -> TIR offset drifts frame by frame: the TIR target sits "
          f"{np.mean([s['disp_mean'] for s in st]):.1f} px (mean; max {np.max([s['disp_max'] for s in st]):.1f}) "
          f"from where the RGB box says.")
    work = out / "work"
    print(f"\n1/2 stage-1 tracker, {stage1_steps} steps on aligned sequences (reused when trained before) ...",
          flush=True)
    base = stage1_tracker(work, stage1_steps, seed, progress=not FAST, batch_size=batch_size)
    print(f"2/2 PMATrack's alignment stages, {stage2_steps} steps on unaligned sequences ...", flush=True)
    pmatrack = stage2_network(work, stage2_steps, stage1_steps=stage1_steps, seed=seed, progress=not FAST,
                              stage1_batch_size=batch_size, train=dict(batch_size=batch_size))
    print("   " + training_summary(pmatrack[1]))
    runs = track_both(base, pmatrack, seqs, out, batch)
    print_comparison(seqs, runs)
    plot_curves({label: run["report"] for label, run in runs.items()}, out / "curves.png",
                title="(dynamic offset)")
    gain = {s.name: runs["PMATrack"]["report"]["sequences"][s.name]["PR"]
            - runs["baseline"]["report"]["sequences"][s.name]["PR"] for s in seqs}
    shown = max(seqs, key=lambda s: gain[s.name])             # where the difference is easiest to see
    gif = save_gif([comparison_frame(shown, t, runs) for t in range(0, len(shown), 2)],
                   out / f"pmatrack_vs_baseline_{shown.name}.gif")
    print(f"\nwrote {out / 'curves.png'} and {gif} (the sequence where PMATrack gains most PR: "
          f"{100 * gain[shown.name]:+.0f} points)")
    print(f"demo: {time.perf_counter() - t0:.0f} s")
    return runs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--sequences", type=int, default=2 if FAST else 8)
    p.add_argument("--frames", type=int, default=12 if FAST else 100)
    p.add_argument("--stage1-steps", type=int, default=4 if FAST else 150)
    p.add_argument("--stage2-steps", type=int, default=2 if FAST else 60)
    p.add_argument("--batch-size", type=int, default=8 if FAST else 16, help="training batch of both stages")
    p.add_argument("--batch", type=int, default=8, help="sequences tracked together")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    run(Path(a.out), a.sequences, a.frames, a.stage1_steps, a.stage2_steps, a.batch_size, a.batch, a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
