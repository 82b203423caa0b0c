"""``make demo`` on a fresh clone, install included: how long, and what it showed.

    python benchmarks/bench_demo.py [--repo .] [--out results/demo.json]

Clones the repository's HEAD into a temporary folder (no ``.venv``, no cached networks), runs ``make demo`` there
and times it, the install (``make install`` is the demo's first step; its end is read from the stamp file's time)
and the demo apart. Records the demo's printed comparison (PR / NPR / SR of the baseline, PMATrack and the exact-
alignment ceiling, PMATrack's gain with its interval, the alignment errors) and the goal: ``make demo`` <= 10
minutes on a fresh 2-core machine, install included, showing both trackers. The pip cache of the machine is used
as any second install on it would.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

from pmatrack_mini.utils import run_record, write_json_atomic

GOAL_S = 600


def parse(text: str) -> dict:
    """The demo's comparison lines -> numbers."""
    out = {}
    for metric in ("PR", "NPR", "SR"):
        m = re.search(rf"^{metric}\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(.*)$", text, re.M)
        if m:
            out[metric] = dict(baseline=float(m[1]), pmatrack=float(m[2]), exact=float(m[3]), gain=m[4].strip())
    for key, label in (("static_px", "static first-frame homography"), ("estimate_px", "per-frame estimate"),
                       ("running_px", "running homography")):
        m = re.search(rf"{re.escape(label)}.*?([\d.]+)\s*$", text, re.M)
        if m:
            out[key] = float(m[1])
    m = re.search(r"TOCU accepted (\d+) %", text)
    if m:
        out["tocu_accepted_pct"] = int(m[1])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", default=".")
    p.add_argument("--out", default="results/demo.json")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        head = subprocess.run(["git", "-C", a.repo, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        subprocess.run(["git", "clone", "-q", str(Path(a.repo).resolve()), str(clone)], check=True)
        t0 = time.time()
        run = subprocess.run(["make", "demo"], cwd=clone, capture_output=True, text=True)
        total = time.time() - t0
        stamp = clone / ".venv" / ".installed"
        install = stamp.stat().st_mtime - t0 if stamp.is_file() else float("nan")
        text = run.stdout
        if run.returncode != 0:
            raise SystemExit(f"make demo failed ({run.returncode}):\n{run.stderr[-2000:]}")
    shown = parse(text)
    both = all(k in shown for k in ("PR", "NPR", "SR"))
    goal = dict(text=f"make demo <= {GOAL_S // 60} min on a fresh clone, install included, showing both trackers",
                seconds=total, met=total <= GOAL_S and both)
    print(f"make demo on a fresh clone: {total:.0f} s ({install:.0f} s install); goal "
          f"{'met' if goal['met'] else 'NOT met'}")
    for metric in ("PR", "NPR", "SR"):
        r = shown.get(metric)
        if r:
            print(f"  {metric}: baseline {r['baseline']}, PMATrack {r['pmatrack']}, exact {r['exact']}, gain {r['gain']}")
    write_json_atomic(a.out, dict(run_record(argv), commit=head, total_seconds=total, install_seconds=install,
                                  demo_seconds=total - install, shown=shown, goal=goal,
                                  output_tail=text.strip().splitlines()[-24:]))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
