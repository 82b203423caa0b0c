"""``make demo``: the main job end to end, small enough for a laptop CPU (a few minutes).

1. generate a small unaligned benchmark (offsets none / small / large);
2. print its misalignment statistics;
3. score two model-free reference predictions with the LasHeR metrics and plot them;
4. train the cpu-mini RGBT baseline briefly on aligned generated sequences, track ``data_samples`` and the
   benchmark, print PR / NPR / SR, and write a plot and a GIF of the tracked boxes on both modalities.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .data.dataset import load_dataset
from .data.synth_sets import cached_dataset
from .evaluate import evaluate_predictions, format_report, plot_curves, save_report
from .reference import misalignment_stats, reference_prediction
from .config import get_config
from .track_run import track_dataset
from .tracker import Tracker
from .models import model_from_checkpoint
from .train import train
from .utils import FAST, set_seed
from .viz import save_tracking_gif


def make_benchmark(root: Path, sequences: int, frames: int, seed: int) -> dict:
    """Generate (or reuse) one folder per offset level; return {level: [Sequence]}.

    One seed for all levels: the same scenes and motions, differing only in the misalignment."""
    return {level: cached_dataset(root / level, sequences, frames, level, seed) for level in ("none", "small", "large")}


def run(out: Path, sequences: int, frames: int, seed: int = 0) -> tuple[dict, dict]:
    """Steps 1-3. Returns ({level: [Sequence]}, {label: report})."""
    set_seed(seed)
    bench = make_benchmark(out / "data", sequences, frames, seed)
    print("\nMisalignment (target-centre displacement, RGB px, resolution change undone):")
    print(f"{'level':<7} {'mean':>6} {'median':>7} {'max':>6}")
    for level, seqs in bench.items():
        st = [misalignment_stats(s) for s in seqs]
        print(f"{level:<7} {np.mean([s['disp_mean'] for s in st]):6.1f} "
              f"{np.median([s['disp_median'] for s in st]):7.1f} {np.max([s['disp_max'] for s in st]):6.1f}")
    reports = {}
    for kind in ("static", "tir-naive"):
        for level, seqs in bench.items():
            preds = {s.name: reference_prediction(s, kind) for s in seqs}
            reports[f"{kind} @ {level}"] = evaluate_predictions(seqs, preds, gt="visible")
    print("\nReference predictions scored against the RGB ground truth (PR / NPR / SR, %):")
    for label, rep in reports.items():
        print(f"  {label:<20} {100 * rep['PR']:5.1f} {100 * rep['NPR']:5.1f} {100 * rep['SR']:5.1f}")
    print("\nOne report in full (tir-naive @ large):")
    print(format_report(reports["tir-naive @ large"]))
    save_report(reports["tir-naive @ large"], out / "tir-naive_large.json")
    plot_curves({k: v for k, v in reports.items() if k.startswith("tir-naive")}, out / "reference_curves.png",
                title="(tir-naive)")
    print(f"\nwrote {out / 'reference_curves.png'} and {out / 'tir-naive_large.json'}")
    return bench, reports


def run_tracker(out: Path, steps: int, bench: dict, seed: int = 0) -> dict:
    """Train the RGBT baseline briefly, track data_samples and the benchmark, plot, GIF."""
    train_dir = out / "data" / "train_none"
    cached_dataset(train_dir, 12, 80, "none", 100 + seed)
    cfg = get_config("cpu-mini", train=dict(steps=steps, seed=seed, ckpt_every=max(50, steps // 4)))
    print(f"\nTraining the cpu-mini RGBT baseline for {steps} steps (batch {cfg.train.batch_size}) on aligned data")
    train(cfg, train_dir, out / "run")
    model, cfg, _ = model_from_checkpoint(out / "run" / "final.pt")
    tracker = Tracker(model, cfg, prealign="none")   # naive TIR crops: what ignoring misalignment costs
    samples = load_dataset(Path(__file__).resolve().parents[1] / "data_samples")
    preds, fps = track_dataset(tracker, samples, out / "results" / "data_samples")
    rep = evaluate_predictions(samples, preds)
    print("\nRGBT baseline on data_samples:")
    print(format_report(rep))
    print(f"tracking speed: {fps:.0f} FPS (batch 1, this machine)")
    reports = {}
    for level, seqs in bench.items():
        p, _ = track_dataset(tracker, seqs, out / "results" / level, progress=False)
        reports[f"RGBT baseline @ {level}"] = evaluate_predictions(seqs, p)
        r = reports[f"RGBT baseline @ {level}"]
        print(f"  offset {level:<6} PR {100 * r['PR']:5.1f}  NPR {100 * r['NPR']:5.1f}  SR {100 * r['SR']:5.1f}")
    plot_curves(reports, out / "baseline_curves.png", title="(RGBT baseline)")
    worst = min(samples, key=lambda s: rep["sequences"][s.name]["PR"])
    gif = save_tracking_gif(worst, preds[worst.name], out / f"tracking_{worst.name}.gif")
    print(f"wrote {out / 'baseline_curves.png'} and {gif} (green: GT, red: tracker)")
    return reports


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--sequences", type=int, default=2 if FAST else 4)
    p.add_argument("--frames", type=int, default=40 if FAST else 80)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=20 if FAST else 300, help="training steps of the baseline")
    a = p.parse_args(argv)
    out = Path(a.out)
    bench, _ = run(out, a.sequences, a.frames, a.seed)
    run_tracker(out, a.steps, bench, a.seed)


if __name__ == "__main__":
    main()
