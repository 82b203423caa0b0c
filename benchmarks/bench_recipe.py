"""A stage-2 recipe setting against the Full row's network: held-out alignment and tracking, with intervals.

    python benchmarks/bench_recipe.py [--set align.param_beta=0.1 ...] [--steps 1500] [--levels none dynamic]
        [--runs runs] [--out results/recipe_<settings>.json]

Networks: ``reproduce``'s Full row network (``trained.family(runs)``, i.e. ``runs/reproduce``: trained there once,
here or by ``reproduce``) and the same recipe with the ``--set`` alignment settings and ``--steps`` on top
(``trained.family_network``: its own folder ``stage2_all_<key>-<value>``, trained on a first run, reused after).
Everything else is the Full row's: data, seed, the frozen stage-1 tracker (and steps, unless ``--steps``).

* Alignment: notebook 07's held-out pairs (16 batches x 32 per offset level from 8 x 60-frame sequences, seeds
  9400-9403, template at frame 1, TIR crops through the first-frame pre-alignment, hard routing): median / p90
  residual at the target (RGB px) before and after each stage, and each stage's expert shares.
* Tracking: ``reproduce``'s test sets at ``--levels`` with the Full row's tracker setting (``Workspace.row_tracker``:
  router + TOCU, first-frame pre-alignment, traced U-Nets; the workspace's batch; the Full row's own run of
  ``reproduce``, tracked first if it is not kept);
  PR / NPR / SR of both networks and the per-sequence bootstrap 95 % interval
  of each difference (``evaluation.intervals``): "better", "worse" or "within noise".
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from pmatrack_mini.config import merge, stage2_config
from pmatrack_mini.config_checks import parse_overrides
from pmatrack_mini.data.sampler import PairSampler
from pmatrack_mini.data.synth_sets import cached_dataset
from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.evaluation.alignment_metrics import alignment_errors, error_table
from pmatrack_mini.evaluation.evaluate import evaluate_predictions
from pmatrack_mini.evaluation.intervals import mean_difference, paired_interval
from pmatrack_mini.experiments.reproduce import COMPONENT_ROWS, VARIANTS
from pmatrack_mini.experiments.trained import family, family_network, setting_name
from pmatrack_mini.models.checkpoint import checkpoint_config
from pmatrack_mini.tracking.track_run import track_dataset
from pmatrack_mini.utils import run_record, set_seed, write_json_atomic

HELD_OUT = {"none": 9401, "small": 9402, "large": 9403, "dynamic": 9400}     # notebook 07's held-out seeds
FULL = next(r for r in COMPONENT_ROWS if r.tocu and r.network == "all")


def held_out_alignment(net, cfg, work: Path) -> dict:
    """{level: {before, after {stage: [median, p90]}, usage {stage: {expert: share}}}} on notebook 07's pairs."""
    as_tracked = merge(cfg.train, dict(prealign="first-frame", center_jitter=1.0, scale_jitter=0.1))
    out = {}
    for level, seed in HELD_OUT.items():
        seqs = cached_dataset(work / f"test_{level}_8x60", 8, 60, level, seed=seed, progress=False)
        errs = alignment_errors(net, PairSampler(seqs, cfg.model, as_tracked, template_frame="first"), batches=16,
                                batch_size=32, routings=("router",))
        row = error_table(errs, ["router"], net.roles)["all"]
        choice = errs["router"]["choice"]                                     # (n, stages) expert names
        out[level] = dict(before=row["before"], after={r: row["router"][r] for r in net.roles},
                          usage={r: {e: float(np.mean(choice[:, i] == e)) for e in sorted(set(choice[:, i]))}
                                 for i, r in enumerate(net.roles)})
    return out


def tracked(nets, ckpt: Path, level: str, folder: Path) -> dict:
    """Per-sequence scores of a stage-2 network tracked as the Full row is, on reproduce's test set ``level``."""
    seqs = nets.data("test", level)
    preds, _ = track_dataset(nets.row_tracker(FULL, ckpt), seqs, folder, progress=False, batch=nets.track_batch)
    return evaluate_predictions(seqs, preds)


def verdict(low: float, high: float) -> str:
    return "better" if low > 0 else "worse" if high < 0 else "within noise"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", action="append", default=[], metavar="align.KEY=VALUE",
                   help="an alignment setting on top of the Full row's recipe (repeatable)")
    p.add_argument("--steps", type=int, default=None, help="stage-2 training steps (default: the Full row's)")
    p.add_argument("--levels", nargs="+", default=["none", "dynamic"], help="reproduce's test sets to track")
    p.add_argument("--runs", default="runs", help="the folder holding reproduce/ (the family of networks)")
    p.add_argument("--out", default=None, help="default: results/recipe_<settings>.json")
    a = p.parse_args(argv)
    try:
        overrides = parse_overrides(a.set)
    except PMATrackError as e:
        p.error(str(e))
    if set(overrides) - {"align"}:
        p.error(f"--set takes alignment settings (align.KEY=VALUE), got {sorted(overrides)}")
    if a.steps is not None and a.steps < 1:
        p.error(f"--steps must be at least 1, got {a.steps}")
    align = overrides.get("align", {})
    extra = dict(align, **({"steps": a.steps} if a.steps else {}))
    if not extra:
        p.error("give at least one --set or --steps")
    try:
        name = "_".join(setting_name(k, v) for k, v in sorted(extra.items()))
    except PMATrackError as e:
        p.error(str(e))
    out = Path(a.out or f"results/recipe_{name}.json")
    t_start = time.perf_counter()
    set_seed(0)
    nets = family(a.runs, progress=True)
    if set(a.levels) - set(nets.test_sets()):
        p.error(f"--levels takes reproduce's test sets {list(nets.test_sets())}, got {a.levels}")
    work = Path(a.runs) / "notebooks"                            # notebook 07's held-out sets, cached there too
    try:                                      # a setting the config refuses: before any stage-2 training
        stage2_config(checkpoint_config(nets.stage1()), align={**VARIANTS[FULL.network], **align})
    except PMATrackError as e:
        p.error(str(e))
    networks = {"full": (nets.stage2(FULL.network), {}), name: (nets.stage2(FULL.network, **extra), extra)}
    report = dict(settings=extra, alignment={}, tracking={})
    for label, (_, settings) in networks.items():
        net, cfg = family_network(nets, FULL.network, **settings)
        report["alignment"][label] = held_out_alignment(net, cfg, work)
        print(f"{label}: after the last stage (median / p90 px) " + ", ".join(
            f"{lvl} {r['after'][net.roles[-1]][0]:.1f} / {r['after'][net.roles[-1]][1]:.1f}"
            for lvl, r in report["alignment"][label].items()))
    nets.track_row(FULL)                                         # reproduce's own run of the Full row (kept)
    for level in a.levels:
        reps = {"full": nets.report(FULL, level),
                name: tracked(nets, networks[name][0], level, Path(a.runs) / "recipe" / name / level)}
        names = sorted(reps["full"]["sequences"])
        row = {}
        for m in ("PR", "NPR", "SR"):
            est, low, high = paired_interval(mean_difference, [reps["full"]["sequences"][s][m] for s in names],
                                             [reps[name]["sequences"][s][m] for s in names])
            row[m] = dict(full=100 * reps["full"][m], setting=100 * reps[name][m],
                          difference=[100 * est, 100 * low, 100 * high], verdict=verdict(low, high))
        report["tracking"][level] = dict(sequences=len(names), **row)
        print(f"tracking {level}: " + ", ".join(
            f"{m} {r['full']:.1f} -> {r['setting']:.1f} ({r['difference'][0]:+.1f} [{r['difference'][1]:+.1f}, "
            f"{r['difference'][2]:+.1f}], {r['verdict']})" for m, r in row.items()))
    write_json_atomic(out, dict(run_record(argv), networks={k: str(v[0]) for k, v in networks.items()},
                                stage2_steps={k: checkpoint_config(v[0]).train.steps for k, v in networks.items()},
                                total_seconds=time.perf_counter() - t_start, **report))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
