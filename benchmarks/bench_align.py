"""PMATrack's network (stage 2) measured: alignment stage by stage, tracking, MACs per component, speed.

    python benchmarks/bench_align.py [--stage1 runs/align/stage1/final.pt] [--steps 1500] [--out results/stage2_alignment]

1. Stage 1 (if ``--stage1`` does not exist): the cpu-mini RGBT tracker, 1000 steps on 24 aligned generated sequences.
2. Stage 2: ``train --stage 2`` from it (the default stage-2 recipe: frozen tracker, residual mixture) on generated
   small / large / dynamic sequences (train seeds), ``--steps`` steps.
3. Alignment: held-out pairs (test seeds) at offsets none / small / large / dynamic, the template at the sequence's
   first frame and both TIR crops cut through the first-frame pre-alignment (the tracker's protocol), search
   jitter of tracking (centre 1, scale 0.1). Residual error at the target in RGB px (``alignment_metrics``), before
   and after each stage, for every routing mode on the same pairs; per attribute; expert usage.
4. Tracking: held-out dynamic sequences and aligned (none) sequences, PR / NPR / SR of the stage-1 tracker under
   ``--prealign first-frame`` and ``oracle`` and of the stage-2 network (hard routing, no TOCU) under first-frame.
5. MACs per frame (fvcore, batch 1, a real pair) per component and routing mode; speed: tracking FPS at batch 1,
   seconds per training step at batch 32, stage 1 vs stage 2.

Writes ``OUT.json`` and ``OUT.md`` with the command, machine, wall time and the goals of the issue (met or not).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from pmatrack_mini.config import EXPERT_NAMES, get_config, merge, stage2_config
from pmatrack_mini.data.sampler import PairSampler
from pmatrack_mini.data.synth_sets import cached_dataset
from pmatrack_mini.evaluation.alignment_metrics import alignment_errors, error_table, expert_usage
from pmatrack_mini.evaluation.evaluate import evaluate_predictions
from pmatrack_mini.experiments.trained import STAGE1_TRAIN_SEED, STAGE2_TRAIN_SEED
from pmatrack_mini.models import build_model, model_from_checkpoint
from pmatrack_mini.models.checkpoint import checkpoint_config
from pmatrack_mini.profile import component_macs, latency
from pmatrack_mini.tracking.track_run import track_dataset
from pmatrack_mini.tracking.tracker import Tracker
from pmatrack_mini.training.train import param_groups, train, train_step
from pmatrack_mini.utils import machine_info, set_seed, write_json_atomic, write_text_atomic

LEVELS = ("none", "small", "large", "dynamic")
ROUTINGS = ("router", "soft") + EXPERT_NAMES
TEST_SEED = 9200


def pct(v):
    return f"{100 * v:.1f}"


def med_p90(x):
    return f"{x[0]:.1f} / {x[1]:.1f}"


def track_table(runs: dict, tests: dict) -> dict:
    """{row: {level: {PR, NPR, SR, fps}}} for (model, cfg, prealign) rows on each test set."""
    table = {}
    for row, (model, cfg, prealign) in runs.items():
        table[row] = {}
        for lvl, seqs in tests.items():
            tracker = Tracker(model, cfg, prealign=prealign)
            preds, fps = track_dataset(tracker, seqs, progress=False)
            rep = evaluate_predictions(seqs, preds)
            table[row][lvl] = dict(PR=rep["PR"], NPR=rep["NPR"], SR=rep["SR"], fps=fps)
            print(f"  {row:<32} {lvl:<8} PR {pct(rep['PR'])} NPR {pct(rep['NPR'])} SR {pct(rep['SR'])} ({fps:.0f} FPS)")
    return table


def step_seconds(cfg, seqs, steps: int = 8) -> float:
    """Seconds per training step (batch 32, data included) after 2 warm-up steps."""
    set_seed(0)
    from pmatrack_mini.training.train import build_for_training

    model = build_for_training(cfg)
    opt = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.train.lr)
    sampler = PairSampler(seqs, cfg.model, cfg.train)
    for s in range(2):
        train_step(model, sampler.batch(s, 32), opt, cfg, "cpu")
    t0 = time.perf_counter()
    for s in range(steps):
        train_step(model, sampler.batch(10 + s, 32), opt, cfg, "cpu")
    return (time.perf_counter() - t0) / steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stage1", default="runs/align/stage1/final.pt")
    p.add_argument("--stage1-steps", type=int, default=1000)
    p.add_argument("--steps", type=int, default=1500, help="stage-2 training steps")
    p.add_argument("--train-seqs", type=int, default=24, help="per offset level (small, large, dynamic)")
    p.add_argument("--test-seqs", type=int, default=8, help="per level, for the alignment pairs")
    p.add_argument("--track-seqs", type=int, default=16, help="held-out dynamic (and none) sequences to track")
    p.add_argument("--eval-batches", type=int, default=8)
    p.add_argument("--work", default="runs/align")
    p.add_argument("--out", default="results/stage2_alignment")
    a = p.parse_args(argv)
    t_start = time.perf_counter()
    work = Path(a.work)
    timings = {}

    # 1. stage 1
    if not Path(a.stage1).is_file():
        data = cached_dataset(work / "data" / "train_none", 24, 100, "none", STAGE1_TRAIN_SEED)
        t0 = time.perf_counter()
        train(get_config("cpu-mini", train=dict(steps=a.stage1_steps)), data, Path(a.stage1).parent)
        timings["stage1_train_s"] = time.perf_counter() - t0
    s1_model, s1_cfg, _ = model_from_checkpoint(a.stage1)

    # 2. stage 2
    train_sets = [s for k, lvl in enumerate(("small", "large", "dynamic"))
                  for s in cached_dataset(work / "data" / f"train_{lvl}", a.train_seqs, 80, lvl, STAGE2_TRAIN_SEED + k)]
    s2_cfg = stage2_config(checkpoint_config(a.stage1), train=dict(steps=a.steps, init=str(a.stage1)))
    t0 = time.perf_counter()
    train(s2_cfg, train_sets, work / "stage2")
    timings["stage2_train_s_this_call"] = time.perf_counter() - t0
    s2_model, s2_cfg, _ = model_from_checkpoint(work / "stage2" / "final.pt")
    s2_log = [r for f in sorted((work / "stage2").glob("log_*.json")) for r in json.loads(f.read_text())]
    s2_train = dict(steps=s2_log[-1]["step"], samples_per_s=s2_log[-1]["samples_per_s"], last=s2_log[-1],
                    note="from the run's own log (the run may come from an earlier call: training is cached)")
    roles = s2_model.roles

    # 3. alignment on held-out pairs through the first-frame pre-alignment
    eval_train = merge(s2_cfg.train, dict(prealign="first-frame", center_jitter=1.0, scale_jitter=0.1))
    align, usage = {}, {}
    for lvl in LEVELS:
        seqs = cached_dataset(work / "data" / f"test_{lvl}", a.test_seqs, 100, lvl, TEST_SEED)
        errs = alignment_errors(s2_model, PairSampler(seqs, s2_cfg.model, eval_train, template_frame="first"),
                                a.eval_batches, routings=ROUTINGS)
        align[lvl] = error_table(errs, ROUTINGS, roles)
        usage[lvl] = expert_usage(errs, "router", roles, s2_cfg.align.experts)
        row = align[lvl]["all"]
        print(f"{lvl:<8} before {med_p90(row['before'])}  after " +
              "  ".join(f"{r}: {med_p90(row['router'][r])}" for r in roles))

    # 4. tracking
    tests = {"dynamic": cached_dataset(work / "data" / "track_dynamic", a.track_seqs, 100, "dynamic", TEST_SEED + 1),
             "none": cached_dataset(work / "data" / "track_none", a.track_seqs, 100, "none", TEST_SEED + 1)}
    rows = {"stage 1, first-frame": (s1_model, s1_cfg, "first-frame"),
            "stage 1, oracle": (s1_model, s1_cfg, "oracle"),
            "stage 2 (router), first-frame": (s2_model, s2_cfg, "first-frame")}
    tracking = track_table(rows, tests)

    # 5. MACs and speed
    b = PairSampler(tests["dynamic"], s2_cfg.model, eval_train, template_frame="first").batch(0, 1, seed=1)
    pair = (b["z_rgb"], b["x_rgb"], b["z_tir"], b["x_tir"])
    macs = component_macs(s2_model, pair, ROUTINGS)
    macs.update(component_macs(s1_model, pair))
    with torch.no_grad():
        net_ms = {"stage 1": latency(lambda: s1_model(*pair)) * 1e3,
                  "stage 2 router": latency(lambda: s2_model(*pair, routing="router")) * 1e3,
                  "stage 2 soft": latency(lambda: s2_model(*pair, routing="soft")) * 1e3}
    speed = dict(tracking_fps={"stage 1": tracking["stage 1, first-frame"]["dynamic"]["fps"],
                               "stage 2 router": tracking["stage 2 (router), first-frame"]["dynamic"]["fps"]},
                 network_forward_ms=net_ms,
                 train_step_s={"stage 1": step_seconds(s1_cfg, train_sets), "stage 2": step_seconds(s2_cfg, train_sets)})
    wall = time.perf_counter() - t_start

    # goals
    last = roles[-1]
    fin = {lvl: align[lvl]["all"]["router"][last][0] for lvl in LEVELS}
    bef = {lvl: align[lvl]["all"]["before"][0] for lvl in LEVELS}
    meds = {lvl: [align[lvl]["all"]["router"][r][0] for r in roles] for lvl in LEVELS}
    dyn = {k: tracking[k]["dynamic"] for k in tracking}
    gap = {m: dyn["stage 1, oracle"][m] - dyn["stage 1, first-frame"][m] for m in ("PR", "NPR", "SR")}
    closed = {m: (dyn["stage 2 (router), first-frame"][m] - dyn["stage 1, first-frame"][m]) / gap[m]
              if gap[m] > 0 else float("nan") for m in gap}
    hard, everything = macs["router"], macs["soft"]
    goals = {
        "median residual after the last stage <= half of before on dynamic": fin["dynamic"] <= 0.5 * bef["dynamic"],
        "median residual after the last stage <= half of before on large": fin["large"] <= 0.5 * bef["large"],
        "not worse than before by more than 1 px on none": fin["none"] <= bef["none"] + 1.0,
        "not worse than before by more than 1 px on small": fin["small"] <= bef["small"] + 1.0,
        "median falls stage by stage (dynamic)": all(x >= y for x, y in zip([bef["dynamic"]] + meds["dynamic"],
                                                                           meds["dynamic"])),
        "stage 2 closes >= 1/4 of the first-frame -> oracle gap in NPR (dynamic)": closed["NPR"] >= 0.25,
        "stage 2 closes >= 1/4 of the first-frame -> oracle gap in SR (dynamic)": closed["SR"] >= 0.25,
        "stage 2 not worse than stage 1 by > 2 PR points on aligned sequences":
            tracking["stage 2 (router), first-frame"]["none"]["PR"] >= tracking["stage 1, first-frame"]["none"]["PR"] - 0.02,
        "hard routing MACs < always-all (soft) MACs": hard["total"] < everything["total"],
        "tracking >= 40 FPS hard-routed (batch 1, 2 cores)": speed["tracking_fps"]["stage 2 router"] >= 40,
        "stage-2 train step <= 2x stage-1 step": speed["train_step_s"]["stage 2"] <= 2 * speed["train_step_s"]["stage 1"],
    }
    command = "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    info = machine_info()
    write_json_atomic(a.out + ".json", dict(
        command=command, when=when, wall_seconds=wall, machine=info, timings=timings,
        stage2_config=s2_cfg.to_dict(), stage2_train=s2_train,
        alignment=align, expert_usage=usage, tracking=tracking, gap_closed=closed, macs=macs, speed=speed,
        goals=goals))
    L = [f"# PMATrack's network (stage 2): alignment, tracking, MACs, speed", "",
         f"Command: `{command}`  ", f"When: {when}, wall time {wall / 60:.1f} min (this call), machine: "
         f"{info['processor']} ({info['cpu_count']} cores, torch threads {info.get('torch_threads')}), "
         f"torch {info.get('torch')}; networks trained by an earlier call are reused (cached in {a.work})  ",
         f"Stage 1: `{a.stage1}` (cpu-mini RGBT, trained on aligned sequences). Stage 2: {s2_cfg.train.steps} steps x "
         f"batch {s2_cfg.train.batch_size} ({s2_train['samples_per_s']:.1f} samples/s when trained), {a.train_seqs} sequences x 80 frames per level (small, large, dynamic; "
         f"seeds {STAGE2_TRAIN_SEED}+), experts {', '.join(s2_cfg.align.experts)}, stages {', '.join(roles)} after "
         f"blocks {[s2_cfg.align.layer_of(r) for r in roles]}, lambda_cost {s2_cfg.align.lambda_cost}, tracker frozen: "
         f"{s2_cfg.train.freeze_tracker}, pre-alignment mixture {s2_cfg.train.residual_mix} "
         f"(zero, small, large, first-frame).", "",
         "## Alignment on held-out pairs (residual at the target, RGB px, median / p90)", "",
         f"{a.test_seqs} held-out sequences per level (seed {TEST_SEED}), {a.eval_batches * 32} pairs per level; template "
         "at frame 1, TIR crops through the first-frame pre-alignment; 'before' = that pre-alignment alone.", "",
         "| level | before | " + " | ".join(f"after {r}" for r in roles) + " |", "|---|---|" + "---|" * len(roles)]
    for lvl in LEVELS:
        row = align[lvl]["all"]
        L.append(f"| {lvl} | {med_p90(row['before'])} | " + " | ".join(med_p90(row["router"][r]) for r in roles) + " |")
    L += ["", f"After the last stage ({last}) by routing mode, same pairs:", "",
          "| level | before | " + " | ".join(ROUTINGS) + " |", "|---|---|" + "---|" * len(ROUTINGS)]
    for lvl in LEVELS:
        row = align[lvl]["all"]
        L.append(f"| {lvl} | {med_p90(row['before'])} | " + " | ".join(med_p90(row[r][last]) for r in ROUTINGS) + " |")
    for lvl in ("dynamic", "large"):
        L += ["", f"Per attribute ({lvl}), hard routing, after the last stage:", "",
              "| subset | n | before | after | " + " | ".join(f"{r} only" for r in EXPERT_NAMES) + " |",
              "|---|---|---|---|" + "---|" * len(EXPERT_NAMES)]
        for sub, row in align[lvl].items():
            L.append(f"| {sub} | {row['n']} | {med_p90(row['before'])} | {med_p90(row['router'][last])} | " +
                     " | ".join(med_p90(row[n][last]) for n in EXPERT_NAMES) + " |")
    L += ["", "## Expert usage under hard routing (fraction of pairs)", "",
          "| level | " + " | ".join(f"{r}: " + "/".join(s2_cfg.align.experts) for r in roles) + " |",
          "|---|" + "---|" * len(roles)]
    for lvl in LEVELS:
        L.append(f"| {lvl} | " + " | ".join("/".join(f"{usage[lvl][r][n]:.2f}" for n in s2_cfg.align.experts)
                                            for r in roles) + " |")
    L += ["", f"## Tracking ({a.track_seqs} held-out sequences per set, 100 frames, seed {TEST_SEED + 1}; PR / NPR / SR %)",
          "", "| model, prealign | dynamic | none (aligned) |", "|---|---|---|"]
    for row, t in tracking.items():
        L.append(f"| {row} | " + " | ".join(f"{pct(t[l]['PR'])} / {pct(t[l]['NPR'])} / {pct(t[l]['SR'])}"
                                           for l in ("dynamic", "none")) + " |")
    L += ["", "Share of the first-frame -> oracle gap (dynamic) closed by stage 2: " +
          ", ".join(f"{m} {closed[m]:.2f}" for m in ("PR", "NPR", "SR")), "",
          "## MACs per frame (fvcore, batch 1, millions)", "",
          "| component | " + " | ".join(ROUTINGS) + " |", "|---|" + "---|" * len(ROUTINGS)]
    for comp in macs["soft"]["components"]:
        L.append(f"| {comp} | " + " | ".join(f"{macs[r]['components'][comp] / 1e6:.2f}" for r in ROUTINGS) + " |")
    L.append("| **total** | " + " | ".join(f"**{macs[r]['total'] / 1e6:.1f}**" for r in ROUTINGS) + " |")
    L += ["", f"Stage-1 tracker: {macs['stage 1']['total'] / 1e6:.1f} M MACs per frame.", "",
          "## Speed", "",
          f"Tracking FPS (batch 1, crops included, dynamic set): stage 1 {speed['tracking_fps']['stage 1']:.1f}, "
          f"stage 2 hard-routed {speed['tracking_fps']['stage 2 router']:.1f}.  ",
          "Network forward (batch 1): " + ", ".join(f"{k} {v:.1f} ms" for k, v in net_ms.items()) + ".  ",
          f"Training step (batch 32, data included): stage 1 {speed['train_step_s']['stage 1']:.2f} s, "
          f"stage 2 {speed['train_step_s']['stage 2']:.2f} s.", "", "## Goals", ""]
    L += [f"- {k}: {'met' if ok else 'NOT met'}" for k, ok in goals.items()]
    write_text_atomic(a.out + ".md", "\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
