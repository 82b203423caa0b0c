"""Where a stage-2 training step's time goes: the tracker alone, each single-expert network, all experts mixed, and
the same network without TCMDA (so that no gradient crosses the frozen blocks after the first stage), FME's
convolution pyramid in both memory layouts (channels-last against the contiguous default, fme.py), and TRE's transport
by scaling updates against the log-domain default (``tre.scaling_transport``; both are the evaluation's fast kernels,
``models.inference``, measured here for training).

    python benchmarks/bench_train_step.py [--batch 32] [--repeats 4] [--out results/train_step.json]

Networks: cpu-mini (the experts at the official proportions), random weights and inputs (speed does not depend on
them), training mode, the stage-1 tracker frozen as stage 2 trains it (``train.freeze_tracker``), soft routing (every
expert of a stage runs and is mixed, as in training). A step is one forward and one backward of a loss that reaches
every trainable parameter (the head's maps and each stage's parameters; the real loss adds only element-wise terms);
no optimiser step and no data loading, so the figures are the network's share of ``train``'s seconds per step. The
stage-1 row is a stage-1 step (the whole tracker trains). Per setting: the median of ``rounds`` rounds of
``repeats`` steps after two warm-ups (each round times every setting once, so that the machine's drift hits them
alike), and, with ``--profile``, the operators that took most of one step.
"""
from __future__ import annotations

import argparse
import time

import torch

from pmatrack_mini.config import get_config, stage2_config
from pmatrack_mini.models import build_model
from pmatrack_mini.models.experts.fme import pyramids_channels_last
from pmatrack_mini.models.experts.tre import scaling_transport
from pmatrack_mini.utils import run_record, set_seed, write_json_atomic

SETTINGS = {                                     # name -> align overrides (None: the stage-1 tracker)
    "stage 1 (whole tracker trains)": None,
    "stage 2, TRE only": dict(experts=("tre",)),
    "stage 2, TRE only, scaling transport": dict(experts=("tre",)),
    "stage 2, FME only": dict(experts=("fme",)),
    "stage 2, FME only, channels-last pyramid": dict(experts=("fme",)),     # FME's pyramid channels-last
    "stage 2, DPE only": dict(experts=("dpe",)),
    "stage 2, all experts mixed": {},
    "stage 2, all experts mixed, channels-last pyramid": {},
    "stage 2, all experts mixed, both fast kernels": {},
    "stage 2, all experts mixed, no TCMDA": dict(tcmda=False),
}
CHANNELS_LAST = {"stage 2, FME only, channels-last pyramid", "stage 2, all experts mixed, channels-last pyramid",
                 "stage 2, all experts mixed, both fast kernels"}
SCALING = {"stage 2, TRE only, scaling transport", "stage 2, all experts mixed, both fast kernels"}


def training_step(net, batch: tuple):
    """One forward and backward of a loss that reaches every trainable parameter."""
    def step():
        out = net(*batch)
        loss = out["score_map"].sum() + out["size_map"].sum()
        loss = loss + sum(r["params"].square().sum() for r in out.get("align", []))
        loss.backward()
    return step


def top_operators(net, batch: tuple, rows: int = 8) -> list:
    with torch.profiler.profile() as prof:
        out = net(*batch)
        (out["score_map"].sum() + sum(r["params"].square().sum() for r in out.get("align", []))).backward()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:rows]
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    return [dict(op=e.key, share=e.self_cpu_time_total / total, calls=e.count) for e in events]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32, help="samples per step (reproduce and the notebooks: 32)")
    p.add_argument("--repeats", type=int, default=4, help="steps per round")
    p.add_argument("--rounds", type=int, default=3, help="rounds, each timing every setting; the median is reported")
    p.add_argument("--profile", action="store_true", help="also record the top operators of each setting")
    p.add_argument("--out", default="results/train_step.json")
    a = p.parse_args(argv)
    t_start = time.perf_counter()
    cfg1 = get_config("cpu-mini")
    m = cfg1.model
    steps, rows = {}, {}
    for name, align in SETTINGS.items():
        set_seed(0)
        cfg = cfg1 if align is None else stage2_config(cfg1, align=dict(routing="soft", **align))
        net = build_model(cfg).train()
        pyramids_channels_last(net, on=name in CHANNELS_LAST)   # A / B of FME's pyramid layout (contiguous default)
        scaling_transport(net, on=name in SCALING)               # A / B of TRE's solver (log domain default)
        z = torch.rand(a.batch, 3, m.template_size, m.template_size)
        x = torch.rand(a.batch, 3, m.search_size, m.search_size)
        batch = (z, x, z.clone(), x.clone())
        steps[name] = (net, batch, training_step(net, batch))
        for _ in range(2):                                       # warm-up
            steps[name][2]()
    times = {name: [] for name in steps}
    for _ in range(a.rounds):                                    # each round times every setting once: the machine's
        for name, (_, _, step) in steps.items():                 # drift hits them alike
            t = time.perf_counter()
            for _ in range(a.repeats):
                step()
            times[name].append((time.perf_counter() - t) / a.repeats)
    for name, (net, batch, _) in steps.items():
        sec = sorted(times[name])[len(times[name]) // 2]
        rows[name] = dict(seconds=sec, samples_per_s=a.batch / sec)
        if a.profile:
            rows[name]["top_operators"] = top_operators(net, batch)
        print(f"{name:<50s} {sec:6.2f} s/step  {a.batch / sec:5.1f} samples/s")
    write_json_atomic(a.out, dict(run_record(argv), total_seconds=time.perf_counter() - t_start, batch=a.batch,
                                  repeats=a.repeats, rounds=a.rounds, settings=rows))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
