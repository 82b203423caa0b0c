"""Where a stage-2 frame's time goes, eager and with DPE's U-Nets traced (``models.inference``), against the goal
"the routed network's time per frame <= 1.3 x what its MACs would take at the stage-1 tracker's MACs per second".

    python benchmarks/bench_inference.py [--repeats 30] [--out results/inference_speed.json]

Networks: the cpu-mini stage-1 tracker and the cpu-mini stage-2 network (the experts at the official proportions),
random weights (speed does not depend on them), batch 1, the machine's threads. Each stage-2 routing is timed:
``tre`` / ``fme`` / ``dpe`` (that expert at every stage: a hard-routed frame costs between the first and the last)
and ``soft`` (all three at every stage), eager, traced, and traced with the experts' fast kernels (TRE's scaling
transport, FME's channels-last pyramid: ``models.inference.fast_kernels_for_inference``, off by default). Per setting:
the median forward time (``profile.component_seconds``: ``repeats`` forwards after two warm-ups, in ``rounds`` rounds,
each of which times stage 1 and every setting once; the median round), its MACs (fvcore,
``profile.component_macs``), GMAC/s, and the goal's ratio: time / (MACs / stage-1 MACs per second).
"""
from __future__ import annotations

import argparse
import time

import torch

from pmatrack_mini.config import get_config, stage2_config
from pmatrack_mini.models import build_model
from pmatrack_mini.models.inference import fast_kernels_for_inference, traced_for_inference
from pmatrack_mini.profile import component_macs, component_seconds
from pmatrack_mini.utils import run_record, set_seed, write_json_atomic

GOAL_RATIO = 1.3
ROUTINGS = ("tre", "fme", "dpe", "soft")
FAST = "traced, fast kernels"


def median(values: list) -> float:
    return float(sorted(values)[len(values) // 2])


def inputs(cfg) -> tuple:
    m = cfg.model
    z = torch.randn(1, 3, m.template_size, m.template_size)
    x = torch.randn(1, 3, m.search_size, m.search_size)
    return z, x, z.clone(), x.clone()                        # z_rgb, x_rgb, z_tir, x_tir


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=10, help="forwards per round")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds, each timing stage 1 and every setting once; medians reported")
    p.add_argument("--out", default="results/inference_speed.json")
    a = p.parse_args(argv)
    t_start = time.perf_counter()
    set_seed(0)
    cfg1 = get_config("cpu-mini")
    cfg2 = stage2_config(cfg1)
    stage1 = build_model(cfg1).eval()
    stage2 = build_model(cfg2).eval()
    traced = traced_for_inference(stage2)
    x1, x2 = inputs(cfg1), inputs(cfg2)

    nets = {"eager": stage2, "traced": traced, FAST: fast_kernels_for_inference(traced)}
    macs1 = component_macs(stage1, x1)["stage 1"]["total"]
    macs2 = component_macs(stage2, x2, routings=ROUTINGS)
    # every round times stage 1 and each (routing, network) once, so a drift of the machine hits all of them alike
    s1_rounds, rounds = [], {(r, n): [] for r in ROUTINGS for n in nets}
    for _ in range(a.rounds):
        s1_rounds.append(component_seconds(stage1, x1, repeats=a.repeats))
        for routing, name in rounds:
            rounds[routing, name].append(component_seconds(nets[name], x2, routing=routing, repeats=a.repeats))
    s1 = dict(total=median([r["total"] for r in s1_rounds]),
              components={k: median([r["components"][k] for r in s1_rounds]) for k in s1_rounds[0]["components"]})
    rate1 = macs1 / s1["total"]
    print(f"stage 1: {1e3 * s1['total']:.1f} ms, {macs1 / 1e9:.2f} GMACs, {rate1 / 1e9:.1f} GMAC/s")
    rows = {}
    for (routing, name), timed in rounds.items():
        macs = macs2[routing]["total"]
        sec = dict(total=median([r["total"] for r in timed]),
                   components={k: median([r["components"][k] for r in timed]) for k in timed[0]["components"]})
        at_rate = macs / rate1
        rows[f"{routing} {name}"] = r = dict(
            ms=1e3 * sec["total"], gmacs=macs / 1e9, gmac_per_s=macs / sec["total"] / 1e9,
            ratio_to_stage1_rate=sec["total"] / at_rate,
            components_ms={k: 1e3 * v for k, v in sec["components"].items()})
        print(f"stage 2, {routing:<4} {name:<28}: {r['ms']:6.1f} ms, {r['gmacs']:.2f} GMACs, "
              f"{r['gmac_per_s']:5.1f} GMAC/s, {r['ratio_to_stage1_rate']:.2f} x the stage-1 rate's time")
    worst = max(r["ratio_to_stage1_rate"] for k, r in rows.items() if k.endswith(" traced"))
    worst_fast = max(r["ratio_to_stage1_rate"] for k, r in rows.items() if k.endswith(FAST))
    goal = dict(text=f"stage-2 time per frame <= {GOAL_RATIO} x its MACs at the stage-1 tracker's MACs per second, "
                     f"every routing, traced U-Nets", worst_ratio=worst, met=worst <= GOAL_RATIO,
                worst_ratio_fast_kernels=worst_fast, met_fast_kernels=worst_fast <= GOAL_RATIO)
    print(f"goal: worst ratio {worst:.2f}, with fast kernels {worst_fast:.2f} (<= {GOAL_RATIO}): "
          f"{'met' if goal['met'] else 'NOT met'} / {'met' if goal['met_fast_kernels'] else 'NOT met'}")
    write_json_atomic(a.out, dict(run_record(argv), total_seconds=time.perf_counter() - t_start, repeats=a.repeats,
                                  rounds=a.rounds,
                                  stage1=dict(ms=1e3 * s1["total"], gmacs=macs1 / 1e9, gmac_per_s=rate1 / 1e9,
                                              components_ms={k: 1e3 * v for k, v in s1["components"].items()}),
                                  stage2=rows, goal=goal))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
