"""A fixed, seeded battery of bad inputs, run through ``pmatrack_mini.cli.main`` in-process, per interface.

    python benchmarks/reliability.py [--seed 0] [--random 6] [--out results/reliability]

Interfaces: synth, eval, reference, train, train --stage 2, track, and config overrides (``train --set KEY=VALUE``
with a value of the wrong type for every field of every config section, found by walking the dataclasses, so a
new section is covered without a change here). Every case is a bad input; its outcome is one of

* clear error:   exit status 2, stderr starting with ``error:``, and no file created, changed or removed;
* unclear error: a non-zero exit status without a traceback, but not in that form (argparse's usage block);
* traceback:     an exception escaped ``main``;
* wrong output:  exit status 0 (the bad input was accepted), or files were left behind by the failed command
  (a partial output) other than those the command documents keeping (``track`` keeps the sequences it finished
  before a later one failed, and says so in its error).

Hand-written cases cover each documented rule; ``--random`` seeded cases per interface add garbled values.
Training and tracking cases use a tiny model (width 64, depth 1) and one-step runs, so the whole battery takes
about a minute on 2 CPU cores.

Interrupted runs are checked apart (``pmatrack_mini.resume_check``): a tiny stage-1 tracker and a stage-2 network on
it, stopped and resumed, resumed with other operational settings, killed while writing a checkpoint and resumed;
each outcome says whether the final weights equal those of an uninterrupted run.

Writes ``OUT.md`` and ``OUT.json``: command, machine, commit, time, counts per interface, and every case that
did not end in a clear error (temporary paths shown as ``<tmp>``).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from pmatrack_mini.cli import main as cli_main
from pmatrack_mini.config import Config, get_config, merge, stage2_config
from pmatrack_mini.data.synth import SynthConfig
from pmatrack_mini.data.synth_sets import generate_dataset
from pmatrack_mini.models import build_model
from pmatrack_mini.models import save_checkpoint
from pmatrack_mini.resume_check import interrupted_cases
from pmatrack_mini.utils import machine_info, write_boxes, write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
INTERFACES = ("synth", "eval", "reference", "train", "train --stage 2", "track", "profile", "reproduce",
              "config overrides")
OUTCOMES = ("clear error", "unclear error", "traceback", "wrong output")
# A device this machine does not have: CUDA itself without a GPU, else an index past the last GPU.
MISSING_DEVICE = "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
TINY = {"model.embed_dim": "64", "model.depth": "1", "model.num_heads": "2", "model.head_channels": "32",
        "train.steps": "1", "train.batch_size": "2", "train.log_every": "1", "train.warmup_steps": "0"}


@dataclasses.dataclass
class Case:
    interface: str
    name: str
    argv: list                      # with {placeholders}: {ws} the case's own folder, {shared} the shared inputs
    setup: object = None            # callable(ws: Path, shared: Path) preparing broken inputs in ws
    keeps: tuple = ()               # files (relative to ws) the command documents keeping when it fails


# ----------------------------------------------------------------------------- broken inputs


def copy_sequences(shared: Path, dst: Path, names=("small_occlusion",)) -> Path:
    for n in names:
        shutil.copytree(shared / "samples" / n, dst / n)
    write_text_atomic(dst / "list.txt", "\n".join(names) + "\n")
    return dst


def edit_lines(path: Path, fn) -> None:
    path.write_text("\n".join(fn(path.read_text().splitlines())) + "\n")


def broken_dataset(edit):
    """A setup: one sample sequence copied to ``ws/data``, then ``edit(sequence_folder)``."""
    def setup(ws, shared):
        edit(copy_sequences(shared, ws / "data") / "small_occlusion")
    return setup


DATASET_BREAKS = {
    "missing RGB frame": lambda s: (s / "visible" / "v000007.jpg").unlink(),
    "no infrared folder": lambda s: shutil.rmtree(s / "infrared"),
    "ragged GT row": lambda s: edit_lines(s / "visible.txt", lambda r: r[:3] + [r[3] + ",9"] + r[4:]),
    "non-numeric GT": lambda s: edit_lines(s / "infrared.txt", lambda r: r[:5] + ["a,b,c,d"] + r[6:]),
    "GT one row short": lambda s: edit_lines(s / "infrared.txt", lambda r: r[:-1]),
    "NaN in GT": lambda s: edit_lines(s / "visible.txt", lambda r: r[:2] + ["1,2,nan,4"] + r[3:]),
    "empty GT": lambda s: (s / "visible.txt").write_text(""),
    "init box of size 0": lambda s: (s / "init.txt").write_text("10,10,0,5\n"),
    "homography row of 3 values": lambda s: edit_lines(s / "homography.txt", lambda r: r[:4] + ["1,0,0"] + r[5:]),
    "homography too short": lambda s: edit_lines(s / "homography.txt", lambda r: r[:20]),
    "non-numeric homography": lambda s: edit_lines(s / "homography.txt", lambda r: ["x " * 9] + r[1:]),
    "garbled attributes": lambda s: edit_lines(s / "attributes.txt", lambda r: r[:3] + ["1,2"] + r[4:]),
    "binary list.txt": lambda s: (s.parent / "list.txt").write_bytes(b"\xff\xfe\x00garbage"),
}


def results_setup(edit):
    """A setup: perfect results copied to ``ws/res``, then ``edit(list of rows)`` on small_occlusion.txt."""
    def setup(ws, shared):
        shutil.copytree(shared / "results", ws / "res")
        edit_lines(ws / "res" / "small_occlusion.txt", edit)
    return setup


def write_file(rel: str, data: bytes):
    def setup(ws, shared):
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_bytes(data)
    return setup


def torch_file(rel: str, payload):
    def setup(ws, shared):
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, ws / rel)
    return setup


def checkpoint_with(**changes):
    """A setup: the tiny checkpoint with some entries replaced, saved as ``ws/c.pt``."""
    def setup(ws, shared):
        state = torch.load(shared / "tiny.pt", weights_only=True)
        torch.save({**state, **changes}, ws / "c.pt")
    return setup


def prepare_shared(shared: Path) -> None:
    """Inputs that are valid on their own: samples, perfect results, list files, tiny checkpoints."""
    shutil.copytree(ROOT / "data_samples", shared / "samples")
    from pmatrack_mini.data.dataset import load_dataset

    for s in load_dataset(shared / "samples"):
        write_boxes(shared / "results" / f"{s.name}.txt", s.gt_visible)
    write_text_atomic(shared / "one.txt", "small_occlusion\n")
    write_text_atomic(shared / "ghost.txt", "small_occlusion\nno_such_sequence\n")
    write_text_atomic(shared / "afile", "a file, not a folder\n")
    tiny = {k.split(".")[1]: int(v) for k, v in TINY.items() if k.startswith("model.")}
    for name, modalities in (("tiny.pt", "rgbt"), ("tiny_rgb.pt", "rgb")):
        cfg = get_config("cpu-mini", model=dict(tiny, modalities=modalities))
        save_checkpoint(shared / name, build_model(cfg), cfg, step=0)
    other = get_config("cpu-mini", model=tiny, train=dict(steps=1, lr=1e-3))
    save_checkpoint(shared / "other_run" / "last.pt", build_model(other), other, step=1)
    # stage 2: a stage-1 tracker deep enough for three stages, a stage-2 file, a stage-2 run on a wider tracker
    s1 = get_config("cpu-mini", model=dict(tiny, depth=3))
    save_checkpoint(shared / "s1.pt", build_model(s1), s1, step=0)
    s1_rgb = merge(s1, dict(model=dict(modalities="rgb")))
    save_checkpoint(shared / "s1_rgb.pt", build_model(s1_rgb), s1_rgb, step=0)
    s2 = stage2_config(s1, align=STAGE2_ALIGN, train=dict(init=str(shared / "s1.pt")))
    save_checkpoint(shared / "s2.pt", build_model(s2), s2, step=0)
    wide = stage2_config(merge(s1, dict(model=dict(embed_dim=128))), align=STAGE2_ALIGN,
                         train=dict(steps=1, batch_size=2))
    save_checkpoint(shared / "wide_run" / "last.pt", build_model(wide), wide, step=0)
    torch.save({"model": {"encoder.weight": torch.zeros(3)}}, shared / "unrelated_weights.pth")


# ----------------------------------------------------------------------------- the battery


def _with(base: list, **options) -> list:
    """``base`` + ``--option value`` pairs (argparse keeps the last occurrence)."""
    return base + [x for k, v in options.items() for x in (f"--{k.replace('_', '-')}", v)]


def _train(sets: dict | None = None, drop=(), **options) -> list:
    """A one-step tiny training on the samples, with --set overrides ``sets`` replacing the tiny ones."""
    merged = {k: v for k, v in TINY.items() if k not in drop}
    merged.update(sets or {})
    base = ["train", "--data", "{shared}/samples", "--out", "{ws}/run", "--quiet"]
    return _with(base, **options) + ["--set"] + [f"{k}={v}" for k, v in merged.items()]


STAGE2_ALIGN = {"layers": (0, 1, 2), "tcmda_heads": 2, "tcmda_points": 2}


def _stage2(sets: dict | None = None, drop=(), **options) -> list:
    """A one-step stage-2 training on the tiny depth-3 tracker ``s1.pt``, --set overrides ``sets`` added."""
    merged = {"train.steps": "1", "train.batch_size": "2", "align.layers": "0,1,2", "align.tcmda_heads": "2",
              "align.tcmda_points": "2"}
    merged = {k: v for k, v in merged.items() if k not in drop}
    merged.update(sets or {})
    base = ["train", "--stage", "2", "--init", "{shared}/s1.pt", "--data", "{shared}/samples", "--out", "{ws}/run",
            "--quiet"]
    return _with(base, **options) + ["--set"] + [f"{k}={v}" for k, v in merged.items()]


def hand_cases() -> list[Case]:
    C = Case
    synth = ["synth", "{ws}/out", "--quiet", "--sequences", "1", "--frames", "10"]
    ev = ["eval", "--dataset", "{shared}/samples", "--results", "{shared}/results", "--list", "{shared}/one.txt"]
    ref = ["reference", "--dataset", "{shared}/samples", "--kind", "static", "--out", "{ws}/out",
           "--list", "{shared}/one.txt"]
    track = ["track", "--checkpoint", "{shared}/tiny.pt", "--dataset", "{shared}/samples", "--list", "{shared}/one.txt",
             "--out", "{ws}/res", "--quiet"]
    made_otherwise = lambda ws, shared: generate_dataset(ws / "out", 1, SynthConfig(frames=10), seed=5, progress=False)
    cases = [
        C("synth", "--sequences -1", _with(synth, sequences="-1")),
        C("synth", "--sequences 0", _with(synth, sequences="0")),
        C("synth", "--sequences abc", _with(synth, sequences="abc")),
        C("synth", "--frames 5", _with(synth, frames="5")),
        C("synth", "--frames -1", _with(synth, frames="-1")),
        C("synth", "--frames 10^12 (memory)", _with(synth, frames=str(10**12))),
        C("synth", "--offset huge", _with(synth, offset="huge")),
        C("synth", "--seed -1", _with(synth, seed="-1")),
        C("synth", "--rgb-size 64x48 (no room for the target)", _with(synth, rgb_size="64x48")),
        C("synth", "--rgb-size axb", _with(synth, rgb_size="axb")),
        C("synth", "--rgb-size 99999x99999 (memory)", _with(synth, rgb_size="99999x99999")),
        C("synth", "--tir-size 10x10", _with(synth, tir_size="10x10")),
        C("synth", "--challenges rain", _with(synth, challenges="rain")),
        C("synth", "--preset garbage", _with(synth, preset="garbage")),
        C("synth", "OUT made with other parameters", synth, made_otherwise),
        C("synth", "OUT holds sequences without a record",  synth,
          lambda ws, shared: copy_sequences(shared, ws / "out")),
        C("synth", "OUT has a broken synth.json", synth, write_file("out/synth.json", b"{not json")),
        C("synth", "OUT is a file", synth, write_file("out", b"x")),
        C("eval", "dataset missing", _with(ev, dataset="{ws}/nope")),
        C("eval", "dataset is a file", _with(ev, dataset="{shared}/afile")),
        C("eval", "results missing", _with(ev, results="{ws}/nope")),
        C("eval", "results is a file", _with(ev, results="{shared}/afile")),
        C("eval", "result row ragged", _with(ev, results="{ws}/res"),
          results_setup(lambda r: r[:4] + ["1,2,3,4,5"] + r[5:])),
        C("eval", "result non-numeric", _with(ev, results="{ws}/res"), results_setup(lambda r: ["1,2,x,4"] + r[1:])),
        C("eval", "result too few rows", _with(ev, results="{ws}/res"), results_setup(lambda r: r[:12])),
        C("eval", "result empty", _with(ev, results="{ws}/res"), results_setup(lambda r: [])),
        C("eval", "result binary", _with(ev, results="{ws}/res"),
          write_file("res/small_occlusion.txt", bytes(range(256)))),
        C("eval", "--gt rgb", _with(ev, gt="rgb")),
        C("eval", "--gt infrared, unaligned, no homography.txt",
          _with(ev, dataset="{ws}/data", list="{ws}/data/list.txt", gt="infrared"),
          broken_dataset(lambda s: (s / "homography.txt").unlink())),
        C("eval", "--json is a folder", _with(ev, json="{ws}")),
        C("eval", "--plot is a folder", _with(ev, json="{ws}/r.json", plot="{ws}")),
        C("eval", "--list missing", _with(ev, list="{ws}/nope.txt")),
        C("eval", "--list names a missing sequence", _with(ev, list="{shared}/ghost.txt")),
        C("reference", "--kind oracle", _with(ref, kind="oracle")),
        C("reference", "--out is a file", _with(ref, out="{shared}/afile")),
        C("reference", "dataset missing", _with(ref, dataset="{ws}/nope")),
        C("reference", "--list missing", _with(ref, list="{ws}/nope.txt")),
        C("reference", "2nd sequence has an unreadable first frame (tir-naive)",
          _with(ref, dataset="{ws}/data", list="{ws}/data/list.txt", kind="tir-naive"),
          lambda ws, shared: (copy_sequences(shared, ws / "data", ("small_occlusion", "none_lowlight")),
                              (ws / "data" / "none_lowlight" / "infrared" / "i000000.jpg").write_bytes(b"no"))),
        C("train", f"--device {MISSING_DEVICE} (not on this machine)", _train(device=MISSING_DEVICE)),
        C("train", "--device gpu", _train(device="gpu")),
        C("train", "--device cuda:999", _train(device="cuda:999")),
        C("train", "--set train.steps=abc", _train({"train.steps": "abc"})),
        C("train", "--set model.embed_dim=abc", _train({"model.embed_dim": "abc"})),
        C("train", "--set model.patch_size=0", _train({"model.patch_size": "0"})),
        C("train", "--set model.depth=2.5", _train({"model.depth": "2.5"})),
        C("train", "--set model.depth=true", _train({"model.depth": "true"})),
        C("train", "--set train.lr=-1", _train({"train.lr": "-1"})),
        C("train", "--set train.lr=NaN", _train({"train.lr": "NaN"})),
        C("train", "--set model.drop_path=1", _train({"model.drop_path": "1"})),
        C("train", "--set train.warmup_steps=-5", _train({"train.warmup_steps": "-5"})),
        C("train", "--set train.seed=2**70", _train({"train.seed": str(2**70)})),
        C("train", "--set train.num_threads=10^6", _train({"train.num_threads": str(10**6)})),
        C("train", "--set model.nope=1", _train({"model.nope": "1"})),
        C("train", "--set train=5", _train({"train": "5"}, drop=[k for k in TINY if k.startswith("train.")])),
        C("train", "--set model=1 model.depth=2", _train({"model": "1"})),
        C("train", "--set preset=paper", _train({"preset": "paper"})),
        C("train", "--set without =", _train({"model.depth": "1"}) + ["model.depth"]),
        C("train", "--steps 0", _train(drop=["train.steps"], steps="0")),
        C("train", "--steps abc", _train(drop=["train.steps"], steps="abc")),
        C("train", "--steps with --set train.steps", _train(steps="3")),
        C("train", "--batch-size 0", _train(drop=["train.batch_size"], batch_size="0")),
        C("train", "--modalities both", _train(modalities="both")),
        C("train", "--preset huge", _train(preset="huge")),
        C("train", "--data missing", _train(data="{ws}/nope")),
        C("train", "--data is a file", _train(data="{shared}/afile")),
        C("train", "--data with non-numeric GT", _train(data="{ws}/data"),
          broken_dataset(DATASET_BREAKS["non-numeric GT"])),
        C("train", "--data without a valid box", _train(data="{ws}/data"),
          broken_dataset(lambda s: edit_lines(s / "visible.txt", lambda r: ["0,0,0,0"] * len(r)))),
        C("train", "--out is a file", _train(out="{shared}/afile")),
        C("train", "--out holds a run with another config", _train(out="{ws}/run"),
          lambda ws, shared: shutil.copytree(shared / "other_run", ws / "run")),
        C("train", "--out holds a truncated last.pt", _train(out="{ws}/run"),
          lambda ws, shared: write_file("run/last.pt", (shared / "tiny.pt").read_bytes()[:3000])(ws, shared)),
        C("track", "checkpoint missing", _with(track, checkpoint="{ws}/nope.pt")),
        C("track", "checkpoint is a folder", _with(track, checkpoint="{shared}")),
        C("track", "checkpoint of another trainer", _with(track, checkpoint="{ws}/c.pt"),
          torch_file("c.pt", {"state_dict": {"w": torch.zeros(2)}})),
        C("track", "checkpoint is a tensor", _with(track, checkpoint="{ws}/c.pt"), torch_file("c.pt", torch.zeros(3))),
        C("track", "checkpoint tagged, without config", _with(track, checkpoint="{ws}/c.pt"),
          torch_file("c.pt", {"format": "pmatrack-mini/1", "model": {}})),
        C("track", "checkpoint with an out-of-range config", _with(track, checkpoint="{ws}/c.pt"),
          checkpoint_with(config={"model": {"patch_size": 0}})),
        C("track", "checkpoint with a config of wrong types", _with(track, checkpoint="{ws}/c.pt"),
          checkpoint_with(config={"train": {"steps": "many"}})),
        C("track", "checkpoint weights do not fit its config", _with(track, checkpoint="{ws}/c.pt"),
          checkpoint_with(model={"w": torch.zeros(1)})),
        C("track", f"--device {MISSING_DEVICE} (not on this machine)", _with(track, device=MISSING_DEVICE)),
        C("track", "--device tpu", _with(track, device="tpu")),
        C("track", "--preset paper (checkpoint is cpu-mini)", _with(track, preset="paper")),
        C("track", "dataset missing", _with(track, dataset="{ws}/nope")),
        C("track", "dataset with non-numeric GT", _with(track, dataset="{ws}/data", list="{ws}/data/list.txt"),
          broken_dataset(DATASET_BREAKS["non-numeric GT"])),
        C("track", "--out is a file", _with(track, out="{shared}/afile")),
        C("track", "2nd sequence has an unreadable frame", _with(track, dataset="{ws}/data", list="{ws}/data/list.txt"),
          lambda ws, shared: (copy_sequences(shared, ws / "data", ("small_occlusion", "none_lowlight")),
                              (ws / "data" / "none_lowlight" / "visible" / "v000005.jpg").write_bytes(b"no")),
          keeps=("res", "res/small_occlusion.txt", "res/small_occlusion.align.csv")),
        C("train", "--set model.pretrained=missing file", _train({"model.pretrained": "{ws}/nope.pth"})),
        C("train", "--set model.pretrained=a text file", _train({"model.pretrained": "{shared}/afile"})),
        C("train", "--set model.pretrained=weights that map onto nothing",
          _train({"model.pretrained": "{shared}/unrelated_weights.pth"})),
        C("train", "--set model.pretrained=a truncated checkpoint", _train({"model.pretrained": "{ws}/c.pt"}),
          lambda ws, shared: write_file("c.pt", (shared / "tiny.pt").read_bytes()[:5000])(ws, shared)),
        C("train", "--init without --stage 2", _train(init="{shared}/s1.pt")),
        C("train --stage 2", "no --init", [a for a in _stage2() if a not in ("--init", "{shared}/s1.pt")]),
        C("train --stage 2", "--init missing", _stage2(init="{ws}/nope.pt")),
        C("train --stage 2", "--init truncated", _stage2(init="{ws}/c.pt"),
          lambda ws, shared: write_file("c.pt", (shared / "s1.pt").read_bytes()[:5000])(ws, shared)),
        C("train --stage 2", "--init of another trainer", _stage2(init="{ws}/c.pt"),
          torch_file("c.pt", {"state_dict": {"w": torch.zeros(2)}})),
        C("train --stage 2", "--init of another format", _stage2(init="{ws}/c.pt"),
          torch_file("c.pt", {"format": "pmatrack-mini-experts/1", "experts": {}})),
        C("train --stage 2", "--init is a stage-2 checkpoint", _stage2(init="{shared}/s2.pt")),
        C("train --stage 2", "--init is an RGB-only tracker", _stage2(init="{shared}/s1_rgb.pt")),
        C("train --stage 2", "--init too shallow for align.layers (depth 1)", _stage2(init="{shared}/tiny.pt")),
        C("train --stage 2", "--out holds a stage-2 run on a tracker of another size", _stage2(),
          lambda ws, shared: shutil.copytree(shared / "wide_run", ws / "run")),
        C("train --stage 2", "--set model.depth=2 (the tracker comes from --init)", _stage2({"model.depth": "2"})),
        C("train --stage 2", "--set model.pretrained=x.pth (the tracker comes from --init)",
          _stage2({"model.pretrained": "x.pth"})),
        C("train --stage 2", "--preset paper (--init is cpu-mini)", _stage2(preset="paper")),
        C("train --stage 2", "--set align.experts=tre,xyz", _stage2({"align.experts": "tre,xyz"})),
        C("train --stage 2", "--set align.experts=tre,tre", _stage2({"align.experts": "tre,tre"})),
        C("train --stage 2", "--set align.experts= (none)", _stage2({"align.experts": ","})),
        C("train --stage 2", "--set align.stages=refine,center", _stage2({"align.stages": "refine,center"})),
        C("train --stage 2", "--set align.stages=middle", _stage2({"align.stages": "middle"})),
        C("train --stage 2", "--set align.layers=0,1,7 (outside the backbone)", _stage2({"align.layers": "0,1,7"})),
        C("train --stage 2", "--set align.layers=-1,0,1", _stage2({"align.layers": "-1,0,1"})),
        C("train --stage 2", "--set align.layers=2,1,0", _stage2({"align.layers": "2,1,0"})),
        C("train --stage 2", "--set align.layers=0,1", _stage2({"align.layers": "0,1"})),
        C("train --stage 2", "--set align.routing=dpe with experts tre,fme",
          _stage2({"align.routing": "dpe", "align.experts": "tre,fme"})),
        C("train --stage 2", "--set train.prealign=oracle", _stage2({"train.prealign": "oracle"})),
        C("train --stage 2", "--data without homography.txt", _stage2(data="{ws}/data"),
          broken_dataset(lambda s: (s / "homography.txt").unlink())),
        C("track", "--prealign oracle without homography.txt",
          _with(track, dataset="{ws}/data", list="{ws}/data/list.txt", prealign="oracle"),
          broken_dataset(lambda s: (s / "homography.txt").unlink())),
        C("track", "--routing dpe with a stage-1 checkpoint", _with(track, routing="dpe")),
        C("track", "--tocu with a stage-1 checkpoint", track + ["--tocu"]),
        C("track", "--tocu with --prealign oracle", _with(track, checkpoint="{shared}/s2.pt", prealign="oracle") +
          ["--tocu"]),
        C("profile", "no source", ["profile"]),
        C("profile", "--preset and --checkpoint together", ["profile", "--preset", "cpu-mini", "--checkpoint",
                                                             "{shared}/tiny.pt"]),
        C("profile", "--preset unknown", ["profile", "--preset", "huge"]),
        C("profile", "checkpoint missing", ["profile", "--checkpoint", "{ws}/nope.pt"]),
        C("profile", "checkpoint truncated", ["profile", "--checkpoint", "{ws}/c.pt"], write_file("c.pt", b"PK\x03\x04")),
        C("profile", "--routing unknown", ["profile", "--preset", "cpu-mini", "--routing", "hard"]),
        C("profile", "--routing dpe with a stage-1 checkpoint", ["profile", "--checkpoint", "{shared}/tiny.pt",
                                                                 "--routing", "dpe"]),
        C("profile", "--json in a missing folder's place (a file)", ["profile", "--checkpoint", "{shared}/tiny.pt",
                                                                     "--json", "{shared}/afile/x.json"]),
        C("reproduce", "--table unknown", ["reproduce", "--table", "speed", "--out", "{ws}/rep", "--fast"]),
        C("reproduce", "--out missing", ["reproduce", "--table", "all", "--fast"]),
        C("reproduce", "--out is a file", ["reproduce", "--table", "all", "--out", "{shared}/afile", "--fast"]),
        C("reproduce", "--out holds another configuration's cache",
          ["reproduce", "--table", "components", "--out", "{ws}/rep", "--fast", "--quiet"],
          write_file("rep/reproduce.json", b'{"config": {"stage1_steps": 1}}')),
        C("reproduce", "--out holds an unreadable record",
          ["reproduce", "--table", "components", "--out", "{ws}/rep", "--fast", "--quiet"],
          write_file("rep/reproduce.json", b"{not json")),
    ]
    for what, edit in DATASET_BREAKS.items():
        cases.append(C("eval", f"dataset: {what}", _with(ev, dataset="{ws}/data", list="{ws}/data/list.txt",
                                                         gt="infrared"), broken_dataset(edit)))
        cases.append(C("reference", f"dataset: {what}", _with(ref, dataset="{ws}/data", list="{ws}/data/list.txt",
                                                               kind="tir-naive"), broken_dataset(edit)))
    return cases


# Values of the wrong type for each annotation (JSON as --set reads it); never a range, so that a field
# whose range allows anything is still given a bad value.
WRONG_TYPE = {"int": ["abc", "1.5", "true", "[1]", "null"], "float": ["abc", "true", "NaN", "Infinity", "[1]", "null"],
              "str": ["1", "true", "[1]", "null"], "bool": ["1", "abc", "null"], "tuple": ["1", "abc", "null"]}


def _fields(obj, where=""):
    """(dotted key, annotation) of every leaf field of a config dataclass, sections included."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _fields(value, f"{where}{f.name}.")
        else:
            yield where + f.name, f.type if isinstance(f.type, str) else f.type.__name__


def random_cases(rng: np.random.Generator, n: int) -> list[Case]:
    """Seeded cases: garbled values for count / path / choice options, and a wrong-type value for every config
    field (config overrides)."""
    def garbled() -> str:   # never a valid number, count, choice or size
        alphabet = list("abcxyz-_.,:;/\\ 0123456789") + ["é", "∞", "\t"]
        text = "".join(rng.choice(alphabet, size=int(rng.integers(1, 8))))
        return text if any(c.isalpha() for c in text) else text + "z"

    cases = []
    for i in range(n):
        g = garbled()
        cases += [
            Case("synth", f"random --sequences {g!r}", ["synth", "{ws}/out", "--quiet", "--frames", "10",
                                                        "--sequences", g]),
            Case("synth", f"random --rgb-size {g!r}", ["synth", "{ws}/out", "--quiet", "--sequences", "1", "--frames",
                                                       "10", "--rgb-size", g + "x"]),
            Case("eval", f"random --gt {g!r}", ["eval", "--dataset", "{shared}/samples", "--results",
                                                "{shared}/results", "--gt", g]),
            Case("eval", f"random result bytes #{i}", ["eval", "--dataset", "{shared}/samples", "--list",
                                                       "{shared}/one.txt", "--results", "{ws}/res"],
                 write_file("res/small_occlusion.txt", rng.bytes(int(rng.integers(0, 400))))),
            Case("reference", f"random --kind {g!r}", ["reference", "--dataset", "{shared}/samples", "--kind", g,
                                                       "--out", "{ws}/out"]),
            Case("track", f"random checkpoint bytes #{i}", ["track", "--checkpoint", "{ws}/c.pt", "--dataset",
                                                            "{shared}/samples", "--out", "{ws}/res", "--quiet"],
                 write_file("c.pt", rng.bytes(int(rng.integers(0, 2000))))),
            Case("train --stage 2", f"random --set align.experts={g!r}", _stage2({"align.experts": g})),
        ]
    for key, annotation in _fields(Config()):
        kinds = [k.strip().split("[")[0] for k in annotation.split("|")]
        bad = [v for k in kinds for v in WRONG_TYPE.get(k, []) if not (v == "null" and "None" in kinds)]
        if bad:
            value = str(rng.choice(bad))
            cases.append(Case("config overrides", f"--set {key}={value}", _train({key: value})))
        cases.append(Case("config overrides", f"--set {key}.nope=1 (sub-key of a value)", _train({f"{key}.nope": "1"})))
    return cases


# ----------------------------------------------------------------------------- running and classifying


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def run_case(case: Case, root: Path, k: int) -> dict:
    shared, ws = root / "shared", root / "cases" / f"{k:03d}"
    ws.mkdir(parents=True)
    if case.setup is not None:
        case.setup(ws, shared)
    argv = [a.format(ws=ws, shared=shared) for a in case.argv]
    before = snapshot(root)
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    escaped = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(argv)
    except SystemExit as exc:      # an exit from inside (argparse's own): an exit status, not a traceback
        code = exc.code
    except Exception as exc:       # the battery's point: record anything that escapes
        code, escaped = None, exc
    seconds = time.perf_counter() - t0
    after = snapshot(root)
    changed = sorted(set(before) ^ set(after) | {p for p in before.keys() & after.keys() if before[p] != after[p]})
    stderr = err.getvalue().strip().replace(str(root), "<tmp>")
    documented = {Path(ws.relative_to(root), k) for k in ("",) + case.keeps} if case.keeps else set()
    left = [c for c in changed if Path(c) not in documented]          # kept results the error reports are fine
    if escaped is not None:
        outcome = "traceback"
        frame = traceback.extract_tb(escaped.__traceback__)[-1]
        detail = f"{type(escaped).__name__}: {escaped} (at {Path(frame.filename).name}:{frame.lineno})"
    elif code == 0:
        outcome, detail = "wrong output", "exit 0: the bad input was accepted"
    elif left or (changed and "kept" not in stderr):
        outcome, detail = "wrong output", f"exit {code}; left behind: {changed[:4]}"
    elif code == 2 and stderr.startswith("error:"):
        outcome, detail = "clear error", stderr.splitlines()[0]
        if changed:
            detail += f" [kept, as documented: {', '.join(case.keeps)}]"
    else:
        outcome, detail = "unclear error", f"exit {code}; stderr: {stderr[-200:]!r}"
    return dict(interface=case.interface, case=case.name, argv=case.argv, outcome=outcome,
                detail=detail.replace(str(root), "<tmp>"), seconds=round(seconds, 3))


def git_commit() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        return rev + ("+changes" if dirty else "")
    except OSError:
        return "unknown"


def write_report(rows: list, interrupted: list, out: Path, header: dict) -> None:
    counts = {i: Counter(r["outcome"] for r in rows if r["interface"] == i) for i in INTERFACES}
    total = Counter(r["outcome"] for r in rows)
    write_json_atomic(out.with_suffix(".json"), dict(header, counts={i: dict(c) for i, c in counts.items()},
                                                     total=dict(total), cases=rows, interrupted=interrupted))
    lines = ["# Reliability: bad inputs per interface and their outcomes", "",
             f"Command: `{header['command']}`  ",
             f"When: {header['when']}, wall time {header['seconds']:.0f} s, commit {header['commit']}, machine: "
             f"{header['machine']['processor']} ({header['machine']['cpu_count']} cores), torch "
             f"{header['machine'].get('torch')}, CUDA {'yes' if header['machine'].get('cuda') else 'no'}  ",
             f"Battery: hand-written cases + {header['random']} seeded random cases per interface (seed "
             f"{header['seed']}) + one wrong-type value per config field. Every case is a bad input.", "",
             "Outcomes: **clear error** = exit 2, stderr starting with `error:`, no file created, changed or removed; "
             "**unclear error** = another non-zero exit without a traceback; **traceback** = an exception escaped "
             "`main`; **wrong output** = exit 0 on bad input, or files left behind after the error.", "",
             "| interface | cases | " + " | ".join(OUTCOMES) + " |", "|---" * (len(OUTCOMES) + 2) + "|"]
    for name, c in list(counts.items()) + [("**all**", total)]:
        lines.append(f"| {name} | {sum(c.values())} | " + " | ".join(str(c[o]) for o in OUTCOMES) + " |")
    bad = [r for r in rows if r["outcome"] != "clear error"]
    lines += ["", "## Cases that did not end in a clear error", ""]
    lines += [f"- {r['interface']} / {r['case']}: **{r['outcome']}**: {r['detail']}" for r in bad] or ["None."]
    lines += ["", "## Interrupted runs", "",
              "A tiny stage-1 tracker (width 64, depth 2, drop-path 0.3) and a stage-2 network on it (two stages, "
              "Gumbel routing), 4 steps of batch 4 with a checkpoint every 2, on the CPU; each run interrupted as "
              "below, resumed by the same call, and its final weights compared with an uninterrupted run's. A kill is "
              "a real SIGKILL of a child process once half of the checkpoint's bytes are written "
              f"(`pmatrack_mini.resume_check`; `python -m pmatrack_mini.resume_check --data data_samples "
              f"[--device cuda --amp]` runs the same cases on a GPU).", "",
              "| stage | interruption | outcome |", "|---|---|---|"]
    lines += [f"| {r['stage']} | {r['case']} | {r['outcome']} |" for r in interrupted]
    lines += ["", f"Every case, with its arguments and its first error line: `{out.with_suffix('.json').name}`.", ""]
    write_text_atomic(out.with_suffix(".md"), "\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--random", type=int, default=6, help="seeded random cases per interface")
    p.add_argument("--out", default="results/reliability")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cases = hand_cases() + random_cases(np.random.default_rng(a.seed), a.random)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepare_shared(root / "shared")
        rows = []
        for k, case in enumerate(cases):
            rows.append(run_case(case, root, k))
            r = rows[-1]
            print(f"[{k + 1:3d}/{len(cases)}] {r['interface']:<16} {r['outcome']:<12} {r['case']}", flush=True)
        interrupted = interrupted_cases([root / "shared" / "samples"], root / "interrupted")
        for r in interrupted:
            print(f"interrupted: {r['stage']} / {r['case']}: {r['outcome']}", flush=True)
    header = dict(command="python " + " ".join(["benchmarks/reliability.py"] + (argv or sys.argv[1:])),
                  when=datetime.now(timezone.utc).isoformat(timespec="seconds"), commit=git_commit(),
                  machine=machine_info(), seed=a.seed, random=a.random, seconds=time.perf_counter() - t0)
    write_report(rows, interrupted, Path(a.out), header)
    total = Counter(r["outcome"] for r in rows)
    print(f"{len(rows)} cases: " + ", ".join(f"{total[o]} {o}" for o in OUTCOMES) + f"; wrote {a.out}.md/.json")


if __name__ == "__main__":
    main()
