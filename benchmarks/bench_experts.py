"""The expert table: each alignment expert trained alone at the shallow layer of a frozen stage-1 backbone.

    python benchmarks/bench_experts.py [--backbone runs/sanity/run_rgbt/final.pt] [--steps 600] [--train-seqs 64]

Training pairs come from generated sequences at offsets small and large; the TIR template is centred on the
first-frame TIR box (``tir_template="gt"``, as a tracker initialised with both boxes), the TIR search crop is
naive (resolution change only), and the search jitter is that of tracking (centre 1, scale 0.1), so the
expert has to find the whole cross-modal offset. Evaluation: held-out sequences (a seed never used for training),
offset error in RGB pixels before (= the true offset) and after correction, median and 90th percentile, split by
the search frame's attributes; MACs per call from ``profile.expert_costs``.

Writes ``OUT.json`` and ``OUT.md`` with the command, machine and wall time.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from pmatrack_mini.config import merge
from pmatrack_mini.data.sampler import PairSampler
from pmatrack_mini.data.synth import cached_dataset as ensure
from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.models.experts import EXPERTS
from pmatrack_mini.profile import expert_costs
from pmatrack_mini.train import model_from_checkpoint
from pmatrack_mini.train_experts import (ExpertTrainConfig, FrozenFeatures, error_table, offset_errors, save_experts,
                                         train_expert)
from pmatrack_mini.utils import machine_info, write_json_atomic, write_text_atomic

TRAIN_SEEDS, TEST_SEED = {"small": 300, "large": 301}, 9100


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="runs/sanity/run_rgbt/final.pt",
                   help="stage-1 RGBT checkpoint (benchmarks/sanity_table.py writes this one)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--layer", type=int, default=1)
    p.add_argument("--train-seqs", type=int, default=64)
    p.add_argument("--test-seqs", type=int, default=8)
    p.add_argument("--eval-batches", type=int, default=16)
    p.add_argument("--work", default="runs/experts")
    p.add_argument("--out", default="results/experts_table")
    a = p.parse_args(argv)
    if not Path(a.backbone).is_file():
        raise PMATrackError(f"{a.backbone}: no stage-1 checkpoint; run benchmarks/sanity_table.py first or pass --backbone")
    t0 = time.perf_counter()
    work = Path(a.work)
    model, cfg, _ = model_from_checkpoint(a.backbone)
    tcfg = merge(cfg.train, dict(center_jitter=1.0, scale_jitter=0.1))
    train_seqs = [s for lvl, seed in TRAIN_SEEDS.items()
                  for s in ensure(work / "data" / f"train_{lvl}", a.train_seqs, 80, lvl, seed)]
    tests = {lvl: ensure(work / "data" / f"test_{lvl}", a.test_seqs, 100, lvl, TEST_SEED) for lvl in TRAIN_SEEDS}
    sampler = PairSampler(train_seqs, cfg.model, tcfg, tir_template="gt")
    ecfg = ExpertTrainConfig(layer=a.layer, steps=a.steps)
    feats = FrozenFeatures(model, ecfg.layer)
    experts, logs = {}, {}
    for name in EXPERTS:
        experts[name], logs[name] = train_expert(name, feats, sampler, ecfg)
    save_experts(experts, work / "experts.pt", dict(config=asdict(ecfg), backbone=a.backbone))
    costs = expert_costs(experts)
    tables = {}
    for lvl, seqs in tests.items():
        errs = offset_errors(experts, feats, PairSampler(seqs, cfg.model, tcfg, tir_template="gt"), a.eval_batches, 32)
        tables[lvl] = error_table(errs, EXPERTS)
    wall = time.perf_counter() - t0
    large = tables["large"]
    checks = {
        "MACs TRE < FME < DPE": costs["tre"] < costs["fme"] < costs["dpe"],
        **{f"{n.upper()} halves the median error on large": large["all"][n][0] <= 0.5 * large["all"]["before"][0]
           for n in EXPERTS},
        "DPE lowest median error on occlusion and distractor (large)": all(
            large[s]["dpe"][0] <= min(large[s]["tre"][0], large[s]["fme"][0]) for s in ("occlusion", "distractor")
            if s in large),
    }
    command = "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json_atomic(a.out + ".json", dict(command=command, when=when, wall_seconds=wall, machine=machine_info(),
                                            expert_config=asdict(ecfg), macs_per_call=costs, tables=tables,
                                            checks=checks, train_logs=logs))
    lines = ["# Alignment experts alone (shallow layer, frozen stage-1 backbone)", "",
             f"Command: `{command}`  ", f"When: {when}, wall time {wall / 60:.1f} min, "
             f"machine: {machine_info()['processor']} ({machine_info()['cpu_count']} cores)  ",
             f"Each expert: {a.steps} steps x batch 32 at block {a.layer}; test: {a.test_seqs} held-out sequences per "
             f"level (seed {TEST_SEED}), {a.eval_batches * 32} pairs. Offset error in RGB px, median / 90th percentile.",
             "", "MACs per call (batch 1): " + ", ".join(f"{n.upper()} {costs[n] / 1e6:.2f} M" for n in EXPERTS), ""]
    for lvl, table in tables.items():
        lines += [f"## offset {lvl}", "", "| subset | n | before | " + " | ".join(n.upper() for n in EXPERTS) + " |",
                  "|---|---|---|" + "---|" * len(EXPERTS)]
        for sub, row in table.items():
            cells = [f"{row[k][0]:.1f} / {row[k][1]:.1f}" for k in ["before"] + list(EXPERTS)]
            lines.append(f"| {sub} | {row['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Checks:"] + [f"- {k}: {'yes' if ok else 'NO'}" for k, ok in checks.items()]
    write_text_atomic(a.out + ".md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
