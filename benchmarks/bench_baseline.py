"""Speed of the cpu-mini baseline: training samples/s, tracking FPS at batch 1, FLOPs and utilisation.

    python benchmarks/bench_baseline.py [--train-steps 30] [--out results/baseline_speed.json]

* training throughput: steps of the real training loop (batch 32) on data_samples, after 3 warm-up steps;
* tracking FPS: the full tracker (crops + network + decoding) over data_samples, batch 1;
* FLOPs per frame: fvcore MACs of one tracking forward (x2 for FLOPs), with the fused-attention handle;
* utilisation: achieved FLOP/s of the backbone forward (batch 1, and batch 32) / fp32 matmul FLOP/s
  measured in the same run.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone

import torch

from pmatrack_mini.config import get_config
from pmatrack_mini.data.dataset import load_dataset
from pmatrack_mini.data.sampler import PairSampler
from pmatrack_mini.models import build_model
from pmatrack_mini.profile import count_macs, latency, matmul_flops_per_s
from pmatrack_mini.tracking.track_run import track_dataset
from pmatrack_mini.tracking.tracker import Tracker
from pmatrack_mini.training.train import param_groups, train_step
from pmatrack_mini.utils import machine_info, set_seed, write_json_atomic


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--train-steps", type=int, default=30)
    p.add_argument("--data", default="data_samples")
    p.add_argument("--out", default="results/baseline_speed.json")
    a = p.parse_args(argv)
    set_seed(0)
    cfg = get_config("cpu-mini")
    seqs = load_dataset(a.data)
    model = build_model(cfg)
    m = cfg.model

    # --- training throughput
    sampler = PairSampler(seqs, m, cfg.train)
    opt = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.train.lr)
    for s in range(3):
        train_step(model, sampler.batch(s, cfg.train.batch_size), opt, cfg, "cpu")
    t0 = time.perf_counter()
    for s in range(a.train_steps):
        train_step(model, sampler.batch(100 + s, cfg.train.batch_size), opt, cfg, "cpu")
    train_sps = a.train_steps * cfg.train.batch_size / (time.perf_counter() - t0)
    print(f"training: {train_sps:.1f} samples/s (batch {cfg.train.batch_size}, data sampling included)")

    # --- tracking FPS (full tracker, batch 1)
    model.eval()
    _, fps = track_dataset(Tracker(model, cfg), seqs, progress=False)
    print(f"tracking: {fps:.1f} FPS (batch 1, crops + network + decoding)")

    # --- FLOPs and utilisation
    z1, x1 = torch.rand(1, 3, m.template_size, m.template_size), torch.rand(1, 3, m.search_size, m.search_size)
    macs = count_macs(model, (z1, x1, z1, x1))
    bb_macs = sum(v for k, v in macs["by_module"].items() if k == "backbone")
    peak = matmul_flops_per_s()
    util = {}
    with torch.no_grad():
        for B in (1, 32):
            zs, xs = z1.expand(B, -1, -1, -1).contiguous(), x1.expand(B, -1, -1, -1).contiguous()
            sec = latency(lambda: model.backbone([zs, zs], [xs, xs]), repeats=30 if B == 1 else 8)
            achieved = 2 * bb_macs * B / sec
            util[f"batch_{B}"] = dict(seconds=sec, gflops_per_s=achieved / 1e9, utilisation=achieved / peak)
            print(f"backbone forward batch {B}: {sec * 1e3:.2f} ms, {achieved / 1e9:.1f} GFLOP/s, "
                  f"utilisation {achieved / peak:.2f} of {peak / 1e9:.0f} GFLOP/s fp32 matmul")
        net_sec = latency(lambda: model(z1, x1, z1, x1))
    print(f"FLOPs per frame: {macs['total'] / 1e9:.3f} GMACs = {2 * macs['total'] / 1e9:.3f} GFLOPs "
          f"(backbone {bb_macs / 1e9:.3f} GMACs); network forward {net_sec * 1e3:.2f} ms")
    write_json_atomic(a.out, dict(
        command="python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
        when=datetime.now(timezone.utc).isoformat(timespec="seconds"), machine=machine_info(), preset="cpu-mini",
        train_samples_per_s=train_sps, tracking_fps_batch1=fps, network_forward_ms_batch1=net_sec * 1e3,
        macs_per_frame=macs["total"], flops_per_frame=2 * macs["total"], backbone_macs=bb_macs,
        matmul_fp32_gflops_per_s=peak / 1e9, backbone_utilisation=util,
        targets=dict(tracking_fps=50, utilisation=0.6)))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
