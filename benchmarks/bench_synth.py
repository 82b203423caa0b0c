"""Generator speed: render time per 100-frame sequence and write time (JPEG) per level.

    python benchmarks/bench_synth.py [--repeats 5]

Writes results/synth_speed.json (command, machine, time) and prints a table.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pmatrack_mini.data.synth import SynthConfig, render_sequence
from pmatrack_mini.data.synth_sets import write_sequence
from pmatrack_mini.utils import machine_info, write_json_atomic


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--out", default="results/synth_speed.json")
    a = p.parse_args(argv)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for level in ("none", "small", "large"):
            cfg = SynthConfig(frames=a.frames, offset=level)
            render, write, cpu = [], [], []
            for r in range(a.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                seq = render_sequence(cfg, 1000 + r)
                t1, c1 = time.perf_counter(), time.process_time()
                write_sequence(seq, Path(tmp) / f"{level}_{r}")
                t2 = time.perf_counter()
                render.append(t1 - t0)
                cpu.append(c1 - c0)
                write.append(t2 - t1)
            rows[level] = dict(render_s_median=float(np.median(render)), render_cpu_s_median=float(np.median(cpu)),
                               write_s_median=float(np.median(write)))
            print(f"{level:<6} render {rows[level]['render_s_median']:.3f} s (cpu {rows[level]['render_cpu_s_median']:.3f} s)"
                  f"  write {rows[level]['write_s_median']:.3f} s  per {a.frames}-frame sequence")
    write_json_atomic(a.out, dict(command="python " + " ".join([sys.argv[0]] + (argv or sys.argv[1:])),
                                  when=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                  machine=machine_info(), frames=a.frames, repeats=a.repeats, levels=rows))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
