"""``pmatrack-mini reproduce``: the paper's two ablation tables, regenerated on generated unaligned data.

    pmatrack-mini reproduce --table components|progressive|all --out DIR [--fast]

One command trains what the tables need and tracks held-out generated sets, caching both in DIR (a rerun, also
after an interruption, reuses the trained networks, resumes an unfinished training and reuses each tracked row
setting, DIR/results/<setting>.json, unless the tracker's settings changed since; a DIR made with another
configuration is refused):

* one stage-1 tracker shared by every row (aligned training data);
* stage-2 networks on top of it (``VARIANTS``): one expert each (TRE, FME, DPE: the paper's single-expert rows), all
  three with a router, and the progressive variants centre only, centre + scale (the all-experts network is also
  centre + scale + refine);
* held-out sets at offsets none, small (the LasHeR-Unaligned regime), large and dynamic (MUART244's regime).

Rows (``COMPONENT_ROWS``, ``PROGRESSIVE_ROWS``) say which network runs under which pre-alignment, routing and TOCU.
DIR/{components,progressive}.{md,json} hold PR / NPR / SR per level, MACs per frame, expert usage and TOCU's
acceptance, the paper's numbers beside ours, and one line per ordering the paper claims: reproduced or not.
``--fast`` runs the whole pipeline at a toy size (CI checks that it runs; its numbers mean nothing).
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..config import TOY_EXPERT_SIZES, get_config, stage2_config
from ..data.synth_sets import cached_dataset
from ..errors import PMATrackError
from ..evaluation.evaluate import evaluate_predictions
from ..models.checkpoint import checkpoint_config, model_from_checkpoint
from ..tracking.tocu import TOCUConfig
from ..tracking.track_run import track_dataset
from ..tracking.tracker import Tracker
from ..utils import folder_lock, read_json, write_json_atomic
from .reproduce_report import ONE_SHOT, PHOTO, STRESS, failure_report, write_table
from .trained import setting_name


@dataclass(frozen=True)
class ReproduceConfig:
    stage1_steps: int = 800
    stage2_steps: int = 1500             # the cpu-mini preset's; against 400 it lowered the held-out residual at
                                         # every offset level (results/recipe_steps-1500.json)
    batch_size: int = 32
    train_sequences: int = 16            # per level
    train_frames: int = 80
    test_sequences: int = 16             # per level (none, small, large)
    dynamic_test_sequences: int = 36     # one lost sequence moves PR by 100 / 36 < 3 points on the goals' level
    test_frames: int = 100
    levels: tuple = ("none", "small", "large", "dynamic")
    stress_sequences: int = 8            # dynamic offset + a modality failure (``synth --failure``)
    photo_sequences: int = 16            # dynamic offset, photographs for backgrounds and targets (``data.photos``;
                                         # 0: no such set)
    train_background: str = "mixed"      # both stages' training sets: textures and photographs, half each
    seed: int = 0
    tiny: bool = False                   # a toy network (``--fast``): checks the pipeline in seconds


TINY_MODEL = dict(embed_dim=64, depth=3, num_heads=2, head_channels=32)
TINY_ALIGN = dict(layers=(0, 1, 2), tcmda_heads=2, tcmda_points=2, **TOY_EXPERT_SIZES)


FAST = ReproduceConfig(stage1_steps=4, stage2_steps=2, batch_size=4, train_sequences=1, train_frames=20,
                       test_sequences=1, dynamic_test_sequences=1, test_frames=10, levels=("dynamic",),
                       stress_sequences=1, photo_sequences=0, tiny=True)   # (the CI budget: no photo set)

VARIANTS = {                             # stage-2 networks: name -> align overrides
    "tre": dict(experts=("tre",)),       # single-expert networks: the paper's +TRE / +FME / +DPE rows
    "fme": dict(experts=("fme",)),
    "dpe": dict(experts=("dpe",)),
    "all": {},
    "center": dict(stages=("center",)),
    "center_scale": dict(stages=("center", "scale")),
    "one_shot": dict(one_shot=True),     # all four parameters at one stage, TCMDA at all three blocks
}


@dataclass(frozen=True)
class Row:
    label: str
    network: str                         # "stage1" or a VARIANTS key
    prealign: str
    routing: str | None = None
    tocu: bool = False
    paper: tuple | None = None           # (LasHeR-UA PR, NPR, SR, MUART244 PR, NPR, SR, GFLOPs); None: not in the paper


COMPONENT_ROWS = (                       # the paper's rows (single-expert networks; Full = router + TOCU), then ours
    Row("Baseline", "stage1", "none", paper=(61.5, 56.4, 48.5, 58.7, 51.1, 42.1, 56.4)),
    Row("Baseline + static pre-alignment", "stage1", "first-frame"),
    Row("TRE only", "tre", "first-frame", "router", paper=(61.9, 56.4, 48.8, 59.3, 51.6, 42.5, 60.6)),
    Row("FME only", "fme", "first-frame", "router", paper=(62.5, 56.9, 49.0, 59.9, 53.1, 43.6, 71.4)),
    Row("DPE only", "dpe", "first-frame", "router", paper=(63.2, 57.4, 49.5, 60.9, 54.4, 44.5, 81.4)),
    Row("All experts, soft", "all", "first-frame", "soft"),
    Row("Router without TOCU", "all", "first-frame", "router"),
    Row("Full (router + TOCU)", "all", "first-frame", "router", True, paper=(64.4, 58.7, 50.6, 62.7, 55.9, 45.8, 72.6)),
    Row("Oracle alignment (stage 1)", "stage1", "oracle"),
)
PROGRESSIVE_ROWS = (
    Row("Baseline + static pre-alignment", "stage1", "first-frame", paper=(61.5, 56.4, 48.5, None, None, None, None)),
    Row("Centre only", "center", "first-frame", "router", True, paper=(63.2, 57.8, 49.4, None, None, None, None)),
    Row("Centre + scale", "center_scale", "first-frame", "router", True, paper=(63.6, 58.3, 49.4, None, None, None, None)),
    Row("Centre + scale + refine", "all", "first-frame", "router", True, paper=(64.4, 58.7, 50.6, None, None, None, None)),
    Row(ONE_SHOT, "one_shot", "first-frame", "router", True),
)
TABLES = {"components": COMPONENT_ROWS, "progressive": PROGRESSIVE_ROWS}
class Workspace:
    """DIR: data, trained networks and results, keyed by the ReproduceConfig recorded in DIR/reproduce.json."""

    def __init__(self, root: str | Path, rc: ReproduceConfig, progress: bool = True, track_batch: int = 8):
        self.root, self.rc, self.progress, self.track_batch = Path(root), rc, progress, track_batch
        self._sets: dict = {}                  # data folder name -> sequences, loaded once per call
        self._trained: dict = {}               # run name -> final.pt, checked complete once per call
        record = self.root / "reproduce.json"
        mine = dataclasses.asdict(rc)
        mine["levels"] = list(rc.levels)
        if record.is_file():
            theirs = read_json(record).get("config")
            if theirs != mine:
                diff = sorted(k for k in mine if (theirs or {}).get(k) != mine[k])
                raise PMATrackError(f"{self.root} holds a reproduction cache made with another configuration "
                                    f"(differs in {diff}); use another --out or remove it")
        else:
            write_json_atomic(record, dict(config=mine))

    def training_data(self) -> tuple[int, int, str]:
        """(sequences per level, frames, backgrounds) of both stages' training sets (``trained.training_summary``)."""
        return self.rc.train_sequences, self.rc.train_frames, self.rc.train_background

    def test_sets(self) -> tuple:
        """The test sets every row is tracked on: the offset levels, the stress set and (unless 0 sequences) the
        photograph set."""
        return self.rc.levels + (STRESS,) + ((PHOTO,) if self.rc.photo_sequences else ())

    def data(self, kind: str, level: str) -> list:
        """Generated sets: ``train`` / ``test`` at an offset level (training sets with ``train_background``), or the
        ``test`` sets ``stress`` (dynamic offset with a stretch where the target vanishes in one modality) and
        ``photo`` (dynamic offset, photographs for the backgrounds and targets)."""
        rc = self.rc
        n, frames, seed = ((rc.train_sequences, rc.train_frames, 300) if kind == "train"
                           else (rc.dynamic_test_sequences if level == "dynamic" else rc.test_sequences,
                                 rc.test_frames, 9500))
        failure, background, name = level == STRESS, rc.train_background if kind == "train" else "procedural", level
        if level in (STRESS, PHOTO):
            n, level, seed = ((rc.stress_sequences, "dynamic", seed + 10) if failure else
                              (rc.photo_sequences, "dynamic", seed + 20))
            background = "photo-heldout" if name == PHOTO else background     # photographs training never saw
        seed += rc.seed + ["none", "small", "large", "dynamic"].index(level)
        folder = self.root / "data" / f"{kind}_{name}"
        if folder.name not in self._sets:
            self._sets[folder.name] = cached_dataset(folder, n, frames, level, seed, progress=self.progress,
                                                     failure=failure, background=background)
        return self._sets[folder.name]

    def stage1(self) -> Path:
        from ..training.train import train

        run = self.root / "runs" / "stage1"
        if run.name in self._trained:
            return self._trained[run.name]
        cfg = get_config("cpu-mini", model=TINY_MODEL if self.rc.tiny else {},
                         train=dict(steps=self.rc.stage1_steps, batch_size=self.rc.batch_size, seed=self.rc.seed,
                                    warmup_steps=min(50, self.rc.stage1_steps)))
        data = self.data("train", "none")
        with folder_lock(run):                 # another process (a notebook) training it: wait, then resume = load
            train(cfg, data, run, progress=self.progress)
        self._trained[run.name] = run / "final.pt"
        return run / "final.pt"

    def stage2(self, variant: str, steps: int | None = None, **align) -> Path:
        """A stage-2 network (``VARIANTS[variant]``), trained once. ``steps`` (other than the workspace's) and
        ``align``: further settings for a network the tables do not use (the notebooks' sweeps, benchmarks), in its
        own folder ``stage2_<variant>_<name>-<value>`` named by the settings that differ from the variant's."""
        from ..training.train import train

        init = self.stage1()
        base = {**(TINY_ALIGN if self.rc.tiny else {}), **VARIANTS[variant]}
        steps = self.rc.stage2_steps if steps is None else steps
        train_settings = dict(steps=steps, batch_size=self.rc.batch_size, init=str(init), seed=self.rc.seed,
                              warmup_steps=min(50, steps))
        tracker_cfg = checkpoint_config(init)                    # read once: the variant's and the asked config
        cfg = stage2_config(tracker_cfg, align={**base, **align}, train=train_settings)
        own = stage2_config(tracker_cfg, align=base, train=train_settings).align if align else cfg.align
        extra = {k: v for k, v in sorted(align.items()) if getattr(cfg.align, k) != getattr(own, k)}
        extra.update({"steps": steps} if steps != self.rc.stage2_steps else {})
        run = self.root / "runs" / "_".join([f"stage2_{variant}"] + [setting_name(k, v) for k, v in extra.items()])
        if run.name in self._trained:
            return self._trained[run.name]
        data = [s for lvl in ("small", "large", "dynamic") for s in self.data("train", lvl)]
        with folder_lock(run):
            train(cfg, data, run, progress=self.progress)
        self._trained[run.name] = run / "final.pt"
        return run / "final.pt"

    @staticmethod
    def row_key(row: Row) -> str:
        """The tracking setting of a row: rows with the same one are tracked once."""
        return f"{row.network}_{row.prealign}_{row.routing or 'none'}_{'tocu' if row.tocu else 'notocu'}"

    @staticmethod
    def row_setting(row: Row, traced: bool = True) -> dict:
        """Everything a row's tracked numbers depend on besides the workspace's config: the tracker's settings
        (TOCU's thresholds, traced or eager U-Nets) and the package version. Stored with the row's record; a record
        made with another setting is tracked again, never reused."""
        return dict(prealign=row.prealign, routing=row.routing, hann=True, traced=traced,
                    tocu=dataclasses.asdict(TOCUConfig()) if row.tocu else None, package=__version__)

    def row_tracker(self, row: Row, checkpoint: Path | None = None) -> Tracker:
        """A tracker with the row's setting (``row_setting``) on the row's network, or on ``checkpoint``."""
        setting = self.row_setting(row, traced=not self.rc.tiny)           # toy nets: tracing costs more than it saves
        ckpt = checkpoint or (self.stage1() if row.network == "stage1" else self.stage2(row.network))
        model, cfg, _ = model_from_checkpoint(ckpt, routing=row.routing)
        return Tracker(model, cfg, prealign=setting["prealign"], hann=setting["hann"],
                       tocu=TOCUConfig(**setting["tocu"]) if setting["tocu"] else None, traced=setting["traced"])

    def track_row(self, row: Row) -> dict:
        """Track every test level with one row's setting -> {level: scores, MACs, usage, TOCU}. Kept in
        DIR/results/<setting>.json, so that a rerun (after an interruption, or for the other table) reuses it."""
        key, setting = self.row_key(row), self.row_setting(row, traced=not self.rc.tiny)   # toy nets: tracing > saving
        record = self.root / "results" / f"{key}.json"
        if record.is_file():
            kept = read_json(record)
            if kept.get("setting") == setting:
                return kept["levels"]
            print(f"note: {record.name} was tracked with other tracker settings ({kept.get('setting')}); "
                  f"tracking it again", file=sys.stderr)
        tracker = self.row_tracker(row)
        out = {}
        for lvl in self.test_sets():
            seqs = self.data("test", lvl)
            folder = self.root / "results" / key / lvl
            if self.progress:
                print(f"tracking: {row.label}, {lvl}", file=sys.stderr)
            preds, fps = track_dataset(tracker, seqs, folder, progress=self.progress, batch=self.track_batch)
            rep = evaluate_predictions(seqs, preds)
            out[lvl] = dict(PR=rep["PR"], NPR=rep["NPR"], SR=rep["SR"], fps=fps, attributes=rep["attributes"],
                            macs_per_frame=tracker.summary["macs_per_frame"],
                            tocu_macs_per_frame=tracker.summary["tocu_macs_per_frame"],
                            expert_usage=tracker.summary["expert_usage"], tocu=tracker.summary.get("tocu"))
            if lvl == STRESS:
                out[lvl]["failure"] = failure_report(seqs, preds, folder)
        write_json_atomic(record, dict(setting=setting, levels=out))
        return out

    def report(self, row: Row, level: str) -> dict:
        """``evaluate``'s report of a tracked row at one level (curves, per-sequence scores), from its kept boxes."""
        from ..evaluation.evaluate import read_results

        seqs = self.data("test", level)
        return evaluate_predictions(seqs, read_results(self.root / "results" / self.row_key(row) / level, seqs))

    def cost(self) -> dict:
        """Seconds of compute behind DIR: training from each run's logged samples/s (an interrupted call leaves no
        log: its steps are counted at the run's logged speed), tracking from each row's frames and measured FPS."""
        def train_seconds(run: Path) -> float:
            logs = [json.loads(f.read_text())[-1] for f in sorted(run.glob("log_*.json"))]   # each call's last record
            if not logs or not (run / "final.pt").is_file():
                return 0.0
            sps = sum(r["samples_per_s"] for r in logs) / len(logs)
            return logs[-1]["step"] * self.rc.batch_size / sps

        runs = [r for v in sorted(VARIANTS) if (r := self.root / "runs" / f"stage2_{v}").is_dir()]   # the tables'
        frames, track_s = 0, 0.0
        for record in sorted((self.root / "results").glob("*.json")):
            for lvl, r in read_json(record).get("levels", {}).items():   # a record without settings is stale
                n = sum(len(s) - 1 for s in self.data("test", lvl))
                frames, track_s = frames + n, track_s + n / max(r["fps"], 1e-9)
        cost = dict(stage1_train_s=train_seconds(self.root / "runs" / "stage1"),
                    stage2_train_s=sum(train_seconds(r) for r in runs), stage2_runs=[r.name for r in runs],
                    tracking_s=track_s, tracked_frames=frames)
        cost["total_s"] = cost["stage1_train_s"] + cost["stage2_train_s"] + cost["tracking_s"]
        return cost


def reproduce(table: str, out: str | Path, fast: bool = False, progress: bool = True, command: str = "",
              track_batch: int = 8) -> dict:
    """Build (or reuse) everything ``table`` (components | progressive | all) needs; write its files.
    ``track_batch``: sequences tracked together (``track_run``: the same computation, other float rounding).
    Returns {table: {row label: {level: results}}}."""
    if table not in ("components", "progressive", "all"):
        raise PMATrackError(f"--table must be components, progressive or all, got {table!r}")
    ws = Workspace(out, FAST if fast else ReproduceConfig(), progress, track_batch)
    tables = list(TABLES) if table == "all" else [table]
    done = {}
    for name in tables:
        t0 = time.perf_counter()
        done[name] = {row.label: ws.track_row(row) for row in TABLES[name]}     # each setting tracked once
        write_table(ws, name, TABLES[name], done[name], command, time.perf_counter() - t0)
    return done


def add_cli(sub) -> None:
    from ..cli_args import int_at_least

    p = sub.add_parser("reproduce", help="regenerate the paper's ablation tables on generated data")
    p.add_argument("--table", choices=["components", "progressive", "all"], default="all")
    p.add_argument("--out", required=True, help="cache and results folder (reused by a rerun)")
    p.add_argument("--fast", action="store_true", help="toy size: checks the pipeline, not the numbers")
    p.add_argument("--batch", type=int_at_least(1), default=8,
                   help="sequences tracked together (more frames per second; float rounding differs, see track_run)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd)


def _cmd(args) -> None:
    command = "pmatrack-mini " + " ".join(sys.argv[1:]) if sys.argv and "reproduce" in sys.argv else \
        f"pmatrack-mini reproduce --table {args.table} --out {args.out}" + (" --fast" if args.fast else "")
    reproduce(args.table, args.out, args.fast, progress=not args.quiet, command=command, track_batch=args.batch)
    for name in (["components", "progressive"] if args.table == "all" else [args.table]):
        print((Path(args.out) / f"{name}.md").read_text())
