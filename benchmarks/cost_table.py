"""Costs in context: backbone, head and each alignment expert in MACs and as % of the backbone, for cpu-mini and
the paper preset, beside the paper's FLOPs column and the official code's expert constants.

    python benchmarks/cost_table.py [--presets cpu-mini paper] [--out results/cost_table.json]

Untrained networks are counted with fvcore at batch 1 (``cost_context.cost_context_table``); no weights are needed. The
paper preset (ViT-B, 640 tokens) takes several seconds on a CPU, so notebooks read this file
(``cost_context.read_cost_table``) instead of counting; ``tests/test_cost_table.py`` checks that the stored cpu-mini
numbers are what the current code counts. Writes the JSON (command, machine, time, table) and prints the tables.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone

from pmatrack_mini.profiling.cost_context import cost_context_table, cost_penalty_note, format_cost_table
from pmatrack_mini.utils import machine_info, write_json_atomic


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--presets", nargs="+", default=["cpu-mini", "paper"], choices=["cpu-mini", "paper"])
    p.add_argument("--out", default="results/cost_table.json")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    table = cost_context_table(tuple(a.presets))
    wall = time.perf_counter() - t0
    print(format_cost_table(table))
    print()
    print(cost_penalty_note(table))
    write_json_atomic(a.out, dict(command="python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
                                  when=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                  machine=machine_info(), wall_time_s=wall, table=table))
    print(f"wrote {a.out} ({wall:.1f} s)")


if __name__ == "__main__":
    main()
