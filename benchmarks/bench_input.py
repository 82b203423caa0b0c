"""Input pipeline speed at the paper's size: training batches (template 128 px, search 256 px, both modalities)
cut by the DataLoader of ``data.sampler.batch_loader`` with 0 and 2 worker processes, the network left out.

    python benchmarks/bench_input.py [--batches 8] [--repeats 3] [--batch-size 32] [--data data_samples]

Two regimes: ``cache`` (decoded frames kept in memory: small generated sets) measures cropping, warping and
collating; ``decode`` (no cache: LasHeR-size sets) adds JPEG decoding of every frame. The first batches of each
loader (worker start-up, cache filling) are not timed; each setting is repeated, interleaved with the others, and
the median reported with the range. Writes results/input_pipeline.json (command, machine, time).
The machine these numbers come from is shared with other jobs: they are indicative, not a tight measurement.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from statistics import median

from pmatrack_mini.config import get_config, merge
from pmatrack_mini.data.dataset import load_dataset
from pmatrack_mini.data.sampler import batch_loader
from pmatrack_mini.utils import machine_info, write_json_atomic


def samples_per_second(sequences, cfg, workers: int, cache: bool, batches: int, warmup: int) -> float:
    train_cfg = merge(cfg.train, dict(num_workers=workers))
    loader = batch_loader(sequences, cfg.model, train_cfg, 0, warmup + batches, cfg.train.batch_size, cache=cache)
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
    seconds = time.perf_counter() - t0
    assert batch["x_rgb"].shape[-1] == cfg.model.search_size and batch["z_tir"].shape[-1] == cfg.model.template_size
    return batches * cfg.train.batch_size / seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data_samples")
    p.add_argument("--batches", type=int, default=8, help="timed batches per setting and repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", default="results/input_pipeline.json")
    a = p.parse_args(argv)
    load = os.getloadavg()[0]           # other jobs on the machine, before this one starts
    cfg = get_config("paper", train=dict(batch_size=a.batch_size))
    sequences = load_dataset(a.data)
    t0 = time.perf_counter()
    settings = [(cache, workers) for cache in (True, False) for workers in (0, 2)]
    runs = {s: [] for s in settings}
    for _ in range(a.repeats):                  # interleaved, so that a busy moment of the machine hits every setting
        for cache, workers in settings:
            runs[cache, workers].append(samples_per_second(sequences, cfg, workers, cache, a.batches, a.warmup))
    rows = []
    for (cache, workers), sps in runs.items():
        rows.append(dict(regime="cache" if cache else "decode", workers=workers, samples_per_s=round(median(sps), 1),
                         min=round(min(sps), 1), max=round(max(sps), 1), repeats=a.repeats, batches=a.batches))
        print(f"{rows[-1]['regime']:<6} workers {workers}: {rows[-1]['samples_per_s']:7.1f} samples/s "
              f"(median of {a.repeats}; {rows[-1]['min']}-{rows[-1]['max']})")
    write_json_atomic(a.out, dict(
        command="python " + " ".join([sys.argv[0]] + (argv or sys.argv[1:])),
        when=datetime.now(timezone.utc).isoformat(timespec="seconds"), machine=machine_info(),
        note="indicative: the machine was shared with other jobs while this ran", load_average_before=round(load, 2),
        setting=dict(preset="paper", template_size=cfg.model.template_size, search_size=cfg.model.search_size,
                     batch_size=a.batch_size, prealign=cfg.train.prealign, data=a.data),
        results=rows, seconds=round(time.perf_counter() - t0, 1)))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
