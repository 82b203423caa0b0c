"""``make demo``: the main job end to end, small enough for a laptop CPU.

1. generate a small unaligned benchmark (offsets none / small / large);
2. print its misalignment statistics;
3. score two model-free reference predictions with the LasHeR metrics and plot them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .data.dataset import load_dataset
from .data.synth import SynthConfig, generate_dataset
from .evaluate import evaluate_predictions, format_report, plot_curves, save_report
from .reference import misalignment_stats, reference_prediction
from .utils import FAST, set_seed


def make_benchmark(root: Path, sequences: int, frames: int, seed: int) -> dict:
    """Generate (or reuse) one folder per offset level; return {level: [Sequence]}."""
    out = {}
    for k, level in enumerate(("none", "small", "large")):
        folder = root / level
        if not (folder / "list.txt").is_file():
            generate_dataset(folder, sequences, SynthConfig(frames=frames, offset=level), seed=seed + k, overwrite=True)
        out[level] = load_dataset(folder)
    return out


def run(out: Path, sequences: int, frames: int, seed: int = 0) -> dict:
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
    return reports


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--sequences", type=int, default=2 if FAST else 4)
    p.add_argument("--frames", type=int, default=40 if FAST else 80)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    run(Path(a.out), a.sequences, a.frames, a.seed)


if __name__ == "__main__":
    main()
