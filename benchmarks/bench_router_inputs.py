"""Which router input lets the router judge difficulty? The router's choices against the oracle choice, per input.

    python benchmarks/bench_router_inputs.py [--work runs/bench_router] [--stage1-steps 150] [--steps 300]
                                             [--batch-size 16] [--out results/router_inputs.json]

One stage-1 tracker (``trained.stage1_tracker``), then one stage-2 network per ``align.router_input`` (``tokens``:
the stage's search tokens, pooled; ``agreement``: RGB against TIR-as-seen token agreement, ``models.router``;
``official``: channel 0 of each search token, the official code's input), all else equal (same data, seed and
schedule). On held-out pairs cut as the tracker cuts them (template at frame 1, TIR crops through the first-frame
pre-alignment, search frames anywhere after it; generated dynamic and small-offset sequences, seeds never used for
training), ``routing_oracle.routing_against_oracle`` gives per stage the router's choice, the oracle choice
argmin_e (l_e + lambda_cost c_e) and their agreement; beside them the agreement a router would reach by always
picking the oracle's most frequent expert (a router that ignores the frame), and the regret: the mean error of the
router's expert minus the oracle's (official units, ``losses.expert_error``). Short trainings: a first measurement
to choose an input by, not the networks of the tables.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from pmatrack_mini.data.sampler import PairSampler
from pmatrack_mini.data.synth_sets import cached_dataset
from pmatrack_mini.evaluation.routing_oracle import routing_against_oracle
from pmatrack_mini.experiments.trained import stage2_network, training_summary
from pmatrack_mini.utils import run_record, set_seed, write_json_atomic

INPUTS = ("tokens", "agreement", "official")
TEST_SEEDS = {"dynamic": 9810, "small": 9811}


def summarise(rep: dict) -> dict:
    out = {}
    for role, r in rep.items():
        names = list(r["names"])
        oracle_mode = max(r["oracle"], key=r["oracle"].get)
        rows = np.arange(r["n"])
        chosen = r["l_e"][rows, [names.index(n) for n in r["router_choice"]]]
        best = r["l_e"][rows, [names.index(n) for n in r["oracle_choice"]]]
        out[role] = dict(n=r["n"], agreement=r["agreement"], router=r["router"], oracle=r["oracle"],
                         constant_router_agreement=r["oracle"][oracle_mode], constant_choice=oracle_mode,
                         regret=float(np.mean(chosen - best)))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="runs/bench_router")
    p.add_argument("--stage1-steps", type=int, default=150)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--sequences", type=int, default=12, help="held-out sequences per offset level")
    p.add_argument("--batches", type=int, default=8, help="held-out batches of 32 pairs per level")
    p.add_argument("--out", default="results/router_inputs.json")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    set_seed(0)
    results, summaries = {}, {}
    for router_input in INPUTS:
        print(f"stage-2 network with router input {router_input!r} ({a.steps} steps) ...", flush=True)
        t = time.perf_counter()
        model, cfg = stage2_network(a.work, a.steps, stage1_steps=a.stage1_steps, stage1_batch_size=a.batch_size,
                                    progress=True, align=dict(router_input=router_input),
                                    train=dict(batch_size=a.batch_size))
        summaries[router_input] = training_summary(cfg)
        train_cfg = dataclasses.replace(cfg.train, prealign="first-frame")         # the tracker's crops
        results[router_input] = {}
        for level, seed in TEST_SEEDS.items():
            seqs = cached_dataset(f"{a.work}/test_{level}", a.sequences, 100, level, seed, progress=False)
            sampler = PairSampler(seqs, cfg.model, train_cfg, template_frame="first")
            rep = routing_against_oracle(model, sampler, a.batches, lambda_cost=cfg.align.lambda_cost)
            results[router_input][level] = summarise(rep)
            for role, r in results[router_input][level].items():
                print(f"  {level:<8} {role:<7} agreement {r['agreement']:.2f} (constant {r['constant_choice']}: "
                      f"{r['constant_router_agreement']:.2f}), regret {r['regret']:.2e}; router "
                      + ", ".join(f"{e} {v:.2f}" for e, v in r["router"].items()) + "; oracle "
                      + ", ".join(f"{e} {v:.2f}" for e, v in r["oracle"].items()), flush=True)
        print(f"  ({time.perf_counter() - t:.0f} s)")
    write_json_atomic(a.out, dict(run_record(argv), total_seconds=time.perf_counter() - t0, steps=a.steps,
                                  stage1_steps=a.stage1_steps, batch_size=a.batch_size, training=summaries,
                                  held_out=dict(levels=TEST_SEEDS, sequences=a.sequences, pairs=32 * a.batches,
                                                protocol="template at frame 1, first-frame pre-alignment"),
                                  results=results))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
