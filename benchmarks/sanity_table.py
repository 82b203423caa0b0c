"""The benchmark's sanity table: RGB-only, TIR-only and the RGBT baseline at offsets none / small / large.

    python benchmarks/sanity_table.py [--steps 800] [--out results/sanity_table]

All three models are trained the same way on *aligned* generated sequences (offset none, as trackers are
trained on aligned LasHeR), then tested on held-out sets (a seed never used for training) at each offset level,
scored against the RGB ground truth. TIR crops are naive (``--prealign none``: the resolution change only), so the
table shows what ignoring misalignment costs. The three test sets share one seed, so they hold the *same* scenes and
motions and differ only in the misalignment: RGB-only must score the same on all three. Expected shape (the paper's motivation): aligned RGBT beats RGB-only and
TIR-only; the RGBT baseline's PR falls as the offset grows.

Writes ``OUT.json`` and ``OUT.md`` (command, machine, wall time, table).
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from pmatrack_mini.config import get_config
from pmatrack_mini.data.synth_sets import cached_dataset as ensure
from pmatrack_mini.evaluation.evaluate import evaluate_predictions
from pmatrack_mini.models import model_from_checkpoint
from pmatrack_mini.tracking.track_run import track_dataset
from pmatrack_mini.tracking.tracker import Tracker
from pmatrack_mini.training.train import train
from pmatrack_mini.utils import machine_info, write_json_atomic, write_text_atomic

TRAIN_SEED, TEST_SEEDS = 100, {"none": 9000, "small": 9000, "large": 9000}
LEVELS = ("none", "small", "large")
VARIANTS = ("rgb", "tir", "rgbt")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--train-seqs", type=int, default=24)
    p.add_argument("--test-seqs", type=int, default=8)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--work", default="runs/sanity")
    p.add_argument("--out", default="results/sanity_table")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    t_start = time.perf_counter()
    work = Path(a.work)
    train_set = ensure(work / "data" / "train_none", a.train_seqs, a.frames, "none", TRAIN_SEED)
    tests = {lvl: ensure(work / "data" / f"test_{lvl}", a.test_seqs, a.frames, lvl, TEST_SEEDS[lvl]) for lvl in LEVELS}
    table, train_info = {}, {}
    for variant in VARIANTS:
        cfg = get_config("cpu-mini", model=dict(modalities=variant), train=dict(steps=a.steps))
        run = work / f"run_{variant}"
        res = train(cfg, train_set, run, device=a.device)
        train_info[variant] = dict(steps=a.steps, samples_per_s=res["samples_per_s"], seconds=res["seconds"])
        model, cfg, _ = model_from_checkpoint(run / "final.pt", device=a.device)
        table[variant] = {}
        for lvl, seqs in tests.items():
            preds, fps = track_dataset(Tracker(model, cfg, a.device, prealign="none"), seqs)
            rep = evaluate_predictions(seqs, preds, gt="visible")
            table[variant][lvl] = dict(PR=rep["PR"], NPR=rep["NPR"], SR=rep["SR"], fps=fps, attributes=rep["attributes"])
            print(f"{variant:<5} {lvl:<6} PR {100 * rep['PR']:5.1f} NPR {100 * rep['NPR']:5.1f} SR {100 * rep['SR']:5.1f} "
                  f"({fps:.0f} FPS)")
    wall = time.perf_counter() - t_start
    checks = {
        "aligned RGBT PR > RGB-only PR": table["rgbt"]["none"]["PR"] > table["rgb"]["none"]["PR"],
        "aligned RGBT PR > TIR-only PR": table["rgbt"]["none"]["PR"] > table["tir"]["none"]["PR"],
        "RGBT PR none -> large drop >= 5 points": table["rgbt"]["none"]["PR"] - table["rgbt"]["large"]["PR"] >= 0.05,
    }
    command = "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json_atomic(a.out + ".json", dict(command=command, when=when, wall_seconds=wall, machine=machine_info(),
                                            train=train_info, table=table, checks=checks,
                                            train_set=dict(seed=TRAIN_SEED, sequences=a.train_seqs, frames=a.frames),
                                            test_sets=dict(seeds=TEST_SEEDS, sequences=a.test_seqs, frames=a.frames)))
    lines = ["# Sanity table (PR / NPR / SR, %, scored against the RGB GT)", "",
             f"Command: `{command}`  ", f"When: {when}, wall time {wall / 60:.1f} min, "
             f"machine: {machine_info()['processor']} ({machine_info()['cpu_count']} cores)  ",
             f"Training: cpu-mini, {a.steps} steps x batch 32 on {a.train_seqs} aligned sequences (seed {TRAIN_SEED}); "
             f"test: {a.test_seqs} sequences x {a.frames} frames per level, seeds {TEST_SEEDS}.", "",
             "| model | offset none | offset small | offset large |", "|---|---|---|---|"]
    for v in VARIANTS:
        cells = [f"{100 * table[v][l]['PR']:.1f} / {100 * table[v][l]['NPR']:.1f} / {100 * table[v][l]['SR']:.1f}"
                 for l in LEVELS]
        lines.append(f"| {v.upper() if v != 'rgbt' else 'RGBT baseline'} | " + " | ".join(cells) + " |")
    lines += ["", "Checks:"] + [f"- {k}: {'yes' if ok else 'NO'}" for k, ok in checks.items()]
    write_text_atomic(a.out + ".md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
