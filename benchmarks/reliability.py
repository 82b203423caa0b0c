"""A fixed, seeded battery of bad inputs, run through ``pmatrack_mini.cli.main`` in-process, per interface.

    python benchmarks/reliability.py [--seed 0] [--random 6] [--out results/reliability]

Interfaces: synth, eval, reference, train, train --stage 2, track (on a dataset), track --rgb/--tir (your own
cameras: videos or frame folders), calibrate, profile, reproduce, and config overrides (``train --set KEY=VALUE``
with a value of the wrong type for every field of every config section, found by walking the dataclasses, so a
new section is covered without a change here). Every case is a bad input; its outcome is one of

* clear error:   exit status 2, stderr starting with ``error:``, and no file created, changed or removed;
* unclear error: a non-zero exit status without a traceback, but not in that form (argparse's usage block), or
  an ``error:`` that does not name what the case says it must (the file and frame or line, or the bad value);
* traceback:     an exception escaped ``main``;
* wrong output:  exit status 0 (the bad input was accepted), or files were left behind by the failed command
  (a partial output) other than those the command documents keeping (``track`` keeps the sequences it finished
  before a later one failed, and says so in its error).

Hand-written cases cover each documented rule; ``--random`` seeded cases per interface add garbled values. A case
may also say what its error must name (``Case.says``: the file and frame or line, or the bad value). Training and
tracking cases use a tiny model (width 64, depth 1) and one-step runs; own-camera and calibration cases use the first
8 frames of a sample sequence as frame folders and lossless videos; so the whole battery takes about a minute on 2
CPU cores.

Interrupted runs are checked apart (``pmatrack_mini.training.resume_check``): a tiny stage-1 tracker and a stage-2
network on it, stopped and resumed, resumed with other operational settings, killed while writing a checkpoint and
resumed; each outcome says whether the final weights equal those of an uninterrupted run.

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
from pmatrack_mini.data.videos import write_video
from pmatrack_mini.geometry import apply_homography, fit_box_homography
from pmatrack_mini.models import build_model
from pmatrack_mini.models import save_checkpoint
from pmatrack_mini.tracking.calibrate import write_homography_file
from pmatrack_mini.training.resume_check import interrupted_cases
from pmatrack_mini.utils import machine_info, write_boxes, write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
INTERFACES = ("synth", "eval", "reference", "train", "train --stage 2", "track", "track --rgb/--tir", "calibrate",
              "profile", "reproduce", "config overrides")
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
    says: tuple = ()                # what the error must name (file and frame or line, or the value), if anything


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
    "homography row all zero": lambda s: edit_lines(s / "homography.txt", lambda r: r[:4] + ["0 " * 9] + r[5:]),
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
    prepare_cameras(shared)


# ----------------------------------------------------------------------------- own cameras and calibration

CAM_SEQ, CAM_FRAMES = "small_occlusion", 8      # own-camera inputs: the first 8 frames of this sample sequence


def _first_row(name: str) -> str:
    """The first box of a sample GT file, as ``--init`` takes it."""
    return (ROOT / "data_samples" / CAM_SEQ / name).read_text().splitlines()[0].strip()


def prepare_cameras(shared: Path) -> None:
    """``cam/``: the first frames of a sample sequence as RGB / TIR frame folders and lossless (FFV1) videos, and the
    calibration file of its first-frame boxes; ``two.txt``: a list of two sequences (``eval``)."""
    from pmatrack_mini.data.dataset import load_sequence

    seq = load_sequence(shared / "samples" / CAM_SEQ)
    cam = shared / "cam"
    for mod, files in (("visible", seq.rgb_files), ("infrared", seq.tir_files)):
        (cam / mod).mkdir(parents=True)
        for f in files[:CAM_FRAMES]:
            shutil.copy(f, cam / mod / f.name)
    write_video((seq.rgb(t) for t in range(CAM_FRAMES)), cam / "rgb.avi")
    write_video((seq.tir(t) for t in range(CAM_FRAMES)), cam / "tir.avi")
    write_homography_file(cam / "H.txt", fit_box_homography(seq.init_box, seq.gt_infrared[0]))
    write_text_atomic(shared / "two.txt", f"{CAM_SEQ}\nnone_lowlight\n")


def corner_rows(boxes) -> str:
    """x,y,w,h boxes as RGBT234's 8-value corner rows ``x1 y1 x2 y1 x2 y2 x1 y2``."""
    return "".join(" ".join(f"{v:.2f}" for v in (x, y, x + w, y, x + w, y + h, x, y + h)) + "\n"
                   for x, y, w, h in np.asarray(boxes, dtype=np.float64))


def results_in_corners(name: str):
    """A setup: perfect results copied to ``ws/res``, sequence ``name``'s file rewritten in corner rows."""
    def setup(ws, shared):
        shutil.copytree(shared / "results", ws / "res")
        boxes = np.loadtxt(ws / "res" / f"{name}.txt", delimiter=",", ndmin=2)
        (ws / "res" / f"{name}.txt").write_text(corner_rows(boxes))
    return setup


def rgb_box_then_tir_box(ws, shared):
    """``ws/res``: each row the visible GT box then the infrared GT box (8 values that are not one box's corners)."""
    shutil.copytree(shared / "results", ws / "res")
    src = shared / "samples" / CAM_SEQ
    rows = zip(src.joinpath("visible.txt").read_text().split(), src.joinpath("infrared.txt").read_text().split())
    (ws / "res" / f"{CAM_SEQ}.txt").write_text("".join(f"{v.replace(',', ' ')} {i.replace(',', ' ')}\n"
                                                       for v, i in rows))


def cut_file(src: str, dst: str, fraction: float):
    """A setup: the first ``fraction`` of the bytes of ``shared/src`` as ``ws/dst`` (a file cut short)."""
    def setup(ws, shared):
        data = (shared / src).read_bytes()
        (ws / dst).write_bytes(data[: int(len(data) * fraction)])
    return setup


def frame_folder(mod: str, edit):
    """A setup: ``shared/cam/mod`` copied to ``ws/mod``, then ``edit(sorted list of its frames)``."""
    def setup(ws, shared):
        shutil.copytree(shared / "cam" / mod, ws / mod)
        edit(sorted((ws / mod).iterdir()))
    return setup


def unaligned_missing_annos(ws, shared):
    """A LasHeR-Unaligned folder (``annos/<seq>.txt``) of two sequences, the second one's annos file missing."""
    copy_sequences(shared, ws / "data", (CAM_SEQ, "none_lowlight"))
    (ws / "data" / "annos").mkdir()
    shutil.copy(ws / "data" / CAM_SEQ / "visible.txt", ws / "data" / "annos" / f"{CAM_SEQ}.txt")


def two_trackers(ws, shared):
    """``ws/res``: every sequence's results twice, as ``A_<seq>.txt`` and ``B_<seq>.txt``."""
    for f in (shared / "results").iterdir():
        for prefix in ("A_", "B_"):
            (ws / "res").mkdir(exist_ok=True)
            shutil.copy(f, ws / "res" / f"{prefix}{f.name}")


def _point_pairs(rgb) -> str:
    """Point-pair lines ``x_rgb y_rgb x_tir y_tir`` for the RGB points ``rgb`` under a fixed rig homography."""
    H = np.array([[0.5, 0.004, 3.0], [-0.003, 0.5, -2.0], [1e-5, 0.0, 1.0]])
    rgb = np.asarray(rgb, dtype=np.float64)
    return "".join(" ".join(f"{v:.3f}" for v in row) + "\n"
                   for row in np.concatenate([rgb, apply_homography(H, rgb)], axis=1))


GOOD_RGB_POINTS = [[20, 30], [290, 25], [300, 230], [30, 220], [160, 120], [100, 180]]


def _without(argv: list, *flags) -> list:
    """``argv`` without the ``--flag value`` pairs of ``flags``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in flags:
            skip = True
        else:
            out.append(a)
    return out


def _cam() -> tuple[list, list, list]:
    """Valid arguments but for the case's change: ``track`` on the two videos from the first-frame boxes, the same
    from a calibration file ``ws/H.txt``, and ``calibrate`` on the first frames with a points file ``ws/p.txt``."""
    cam = ["track", "--checkpoint", "{shared}/tiny.pt", "--rgb", "{shared}/cam/rgb.avi", "--tir",
           "{shared}/cam/tir.avi", "--init", _first_row("init.txt"), "--init-tir", _first_row("infrared.txt"),
           "--out", "{ws}/res", "--quiet"]
    calib = _without(cam, "--init-tir") + ["--homography", "{ws}/H.txt"]
    cal = ["calibrate", "--rgb", "{shared}/cam/visible/v000000.jpg", "--tir", "{shared}/cam/infrared/i000000.jpg",
           "--points", "{ws}/p.txt", "--out", "{ws}/cal/H.txt"]
    return cam, calib, cal


def camera_cases() -> list[Case]:
    """Own cameras (``track --rgb/--tir`` on videos or frame folders), ``calibrate``, the result formats and folder
    layouts ``eval`` reads, and a dataset homography that cannot be used."""
    C = Case
    cam, calib, cal = _cam()
    folders = _with(cam, rgb="{shared}/cam/visible", tir="{shared}/cam/infrared")
    track = ["track", "--checkpoint", "{shared}/tiny.pt", "--dataset", "{ws}/data", "--list", "{ws}/data/list.txt",
             "--out", "{ws}/res", "--quiet"]
    ev = ["eval", "--dataset", "{shared}/samples", "--results", "{ws}/res", "--list", "{shared}/one.txt"]
    boxes = _without(cal, "--points") + ["--boxes"]
    points = lambda text: write_file("p.txt", text.encode())                                    # noqa: E731
    line = np.linspace(10, 250, 6)
    good = _point_pairs(GOOD_RGB_POINTS).splitlines(keepends=True)
    H_bad = {"singular": ("1 2 3 2 4 6 0 0 1\n", "H.txt:1"), "NaN": ("1 0 0 0 1 nan 0 0 1\n", "H.txt:1"),
             "all zero": ("0 0 0 0 0 0 0 0 0\n", "H.txt:1"),
             "of two lines": ("1 0 0 0 1 0 0 0 1\n1 0 0 0 1 0 0 0 1\n", "H.txt: 2 homography lines"),
             "of 8 values": ("1 0 0 0 1 0 0 0\n", "H.txt:1"), "empty": ("", "H.txt")}
    T, K, E = "track --rgb/--tir", "calibrate", "eval"
    with_points = lambda setup: lambda ws, shared: (points("".join(good))(ws, shared), setup(ws, shared))  # noqa: E731
    cases = [
        # track on videos and frame folders
        C(T, "RGB video cut at 5/8 of its bytes (a later frame unreadable)", _with(cam, rgb="{ws}/cut.avi"),
          cut_file("cam/rgb.avi", "cut.avi", 5 / 8), says=("cut.avi: frame",)),
        C(T, "TIR video cut at half its bytes, with --video", _with(cam, tir="{ws}/cut.avi") + ["--video"],
          cut_file("cam/tir.avi", "cut.avi", 1 / 2), says=("cut.avi: frame",)),
        C(T, "RGB video cut inside its header", _with(cam, rgb="{ws}/cut.avi"),
          cut_file("cam/rgb.avi", "cut.avi", 0.01), says=("cut.avi",)),
        C(T, "RGB video missing", _with(cam, rgb="{ws}/nope.avi"), says=("nope.avi",)),
        C(T, "TIR folder missing", _with(cam, tir="{ws}/nope"), says=("nope",)),
        C(T, "RGB is a text file", _with(cam, rgb="{shared}/afile"), says=("afile",)),
        C(T, "RGB is a text file named .avi", _with(cam, rgb="{ws}/fake.avi"), write_file("fake.avi", b"not a video\n"),
          says=("fake.avi",)),
        C(T, "TIR is an empty folder", _with(cam, tir="{ws}/empty"), lambda ws, shared: (ws / "empty").mkdir(),
          says=("empty",)),
        C(T, f"frame counts differ ({CAM_FRAMES} and 40) without --truncate",
          _with(cam, tir="{shared}/samples/" + CAM_SEQ + "/infrared"), says=(f"has {CAM_FRAMES} frames", "has 40")),
        C(T, "RGB folder with an unreadable frame in the middle", _with(folders, rgb="{ws}/visible"),
          frame_folder("visible", lambda fs: fs[4].write_bytes(b"no")), says=("v000004.jpg",)),
        C(T, "TIR folder with an empty frame file in the middle", _with(folders, tir="{ws}/infrared"),
          frame_folder("infrared", lambda fs: fs[3].write_bytes(b"")), says=("i000003.jpg",)),
        C(T, "TIR folder one frame short (a frame missing in the middle)", _with(folders, tir="{ws}/infrared"),
          frame_folder("infrared", lambda fs: fs[3].unlink()),
          says=(f"has {CAM_FRAMES} frames", f"has {CAM_FRAMES - 1}")),
        C(T, "--init of zero size", _with(cam, init="178,51,0,25"), says=("178,51,0,25",)),
        C(T, "--init-tir of zero size", _with(cam, init_tir="91,24,18,0"), says=("91,24,18,0",)),
        C(T, "--init with 3 values", _with(cam, init="178,51,35"), says=("178,51,35",)),
        C(T, "--init NaN", _with(cam, init="nan,51,35,25"), says=("nan,51,35,25",)),
        C(T, "no --init", _without(cam, "--init"), says=("--init",)),
        C(T, "both --init-tir and --homography", _with(cam, homography="{shared}/cam/H.txt"),
          says=("--init-tir", "--homography")),
        C(T, "neither --init-tir nor --homography", _without(cam, "--init-tir"), says=("--init-tir", "--homography")),
        *[C(T, f"calibration file {what}", calib, write_file("H.txt", text.encode()), says=(said,))
          for what, (text, said) in H_bad.items()],
        C(T, "calibration file missing", calib, says=("H.txt",)),
        C(T, "--prealign oracle with videos", _with(cam, prealign="oracle"), says=("oracle",)),
        C(T, "--dataset together with --rgb/--tir", _with(cam, dataset="{shared}/samples"), says=("--dataset",)),
        C(T, "--rgb without --tir", _without(cam, "--tir"), says=("--tir",)),
        C(T, "--out is a file", _with(cam, out="{shared}/afile"), says=("afile",)),
        # track on a dataset
        C("track", "--prealign oracle, homography.txt with an all-zero row", _with(track, prealign="oracle"),
          broken_dataset(DATASET_BREAKS["homography row all zero"]), says=("homography.txt", "frame 5")),
        C("track", "--video with --dataset", _with(track, dataset="{shared}/samples", list="{shared}/one.txt") +
          ["--video"], says=("--video",)),
        # calibrate
        C(K, "3 point pairs", cal, points("".join(good[:3])), says=("p.txt: 3 point pair",)),
        C(K, "a non-numeric line", cal, points("".join(good[:2] + ["nine 10 11 12\n"] + good[3:])), says=("p.txt:3",)),
        C(K, "NaN in a pair", cal, points("".join(good[:4] + ["1 2 3 nan\n"] + good[5:])), says=("p.txt:5",)),
        C(K, "a line of 5 values", cal, points("".join(good + ["1 2 3 4 5\n"])), says=("p.txt:7",)),
        C(K, "collinear points", cal, points(_point_pairs(np.stack([line, line * 0.5 + 10], axis=1))),
          says=("do not fix a homography",)),
        # RGB points exactly on a line but one, TIR points to 3 decimals (as a points file holds them): no homography
        # is fixed by them (the DLT's 8th singular value is lifted only by the rounding)
        C(K, "all but one point on a line", cal,
          points(_point_pairs([[i * 10.0, i * 5.0 + 3] for i in range(1, 12)] + [[50, 200]])),
          says=("do not fix a homography",)),
        C(K, "3 of 4 points on a line", cal, points(_point_pairs([[0, 0], [100, 50], [200, 100], [50, 200]])),
          says=("do not fix a homography",)),
        C(K, "a pair repeating an RGB point", cal, points("".join(good + [good[1]])), says=("p.txt:7", "line 2")),
        C(K, "empty points file", cal, points(""), says=("p.txt",)),
        C(K, "points file missing", _with(cal, points="{ws}/nope.txt"), says=("nope.txt",)),
        C(K, "points file is a folder", _with(cal, points="{shared}/cam"), says=("cam",)),
        C(K, "--boxes of zero size", boxes + ["10,10,0,20", "5,5,8,8"], says=("10,10,0,20",)),
        C(K, "--boxes with 3 values", boxes + ["10,10,20,20", "5,5,8"], says=("5,5,8",)),
        C(K, "--boxes with --ransac", boxes + ["10,10,20,20", "5,5,8,8", "--ransac", "3"], says=("--ransac",)),
        C(K, "--points and --boxes together", cal + ["--boxes", "10,10,20,20", "5,5,8,8"], points("".join(good)),
          says=("--boxes",)),
        C(K, "--ransac 0", cal + ["--ransac", "0"], points("".join(good)), says=("--ransac",)),
        C(K, "unreadable RGB frame", _with(cal, rgb="{ws}/broken.png"),
          with_points(write_file("broken.png", b"not an image")), says=("broken.png",)),
        C(K, "TIR frame missing", _with(cal, tir="{ws}/none.png"), points("".join(good)), says=("none.png",)),
        C(K, "RGB video cut inside its header", _with(cal, rgb="{ws}/cut.avi"),
          with_points(cut_file("cam/rgb.avi", "cut.avi", 0.01)), says=("cut.avi",)),
        C(K, "TIR folder with an unreadable first frame", _with(cal, tir="{ws}/infrared"),
          with_points(frame_folder("infrared", lambda fs: fs[0].write_bytes(b"no"))), says=("i000000.jpg",)),
        C(K, "--out is a folder", _with(cal, out="{shared}/cam"), points("".join(good)), says=("cam",)),
        C(K, "--figure is --out", _with(cal, figure="{ws}/cal/H.txt"), points("".join(good)), says=("--figure",)),
        # eval: result formats and dataset layouts
        C(E, "result rows: 4-value rows, then an 8-value row", ev,
          results_setup(lambda r: r[:3] + ["1 2 5 2 5 9 1 9"] + r[4:]), says=("small_occlusion.txt:4",)),
        C(E, "result files: one of 4-value rows, the next of 8-value rows", _with(ev, list="{shared}/two.txt"),
          results_in_corners("none_lowlight"), says=("none_lowlight.txt:1", "small_occlusion.txt")),
        C(E, "result rows of 8 values: an RGB box then a TIR box", ev, rgb_box_then_tir_box,
          says=("small_occlusion.txt:1",)),
        C(E, "result files of two trackers (A_, B_)", ev, two_trackers, says=("A_, B_",)),
        C(E, "dataset folder matching no layout (empty)", _with(_without(ev, "--list"), dataset="{ws}/empty"),
          lambda ws, shared: (ws / "empty").mkdir(), says=("empty", "no sequences in any known dataset layout")),
        C(E, "dataset folder matching no layout (loose files)",
          _with(_without(ev, "--list"), dataset="{shared}/results", results="{shared}/results"),
          says=("results", "no sequences in any known dataset layout")),
        C(E, "LasHeR-Unaligned folder without an annos file",
          ["eval", "--dataset", "{ws}/data", "--results", "{shared}/results"], unaligned_missing_annos,
          says=("annos/none_lowlight.txt",)),
        C(E, "--layout lasher-unaligned on a LasHeR folder (no annos/)",
          ["eval", "--dataset", "{shared}/samples", "--results", "{shared}/results", "--layout", "lasher-unaligned"],
          says=("annos",)),
        C(E, "--layout muart244 on a LasHeR folder (no annos/visible/)",
          ["eval", "--dataset", "{shared}/samples", "--results", "{shared}/results", "--layout", "muart244"],
          says=("annos/visible",)),
    ]
    return cases


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
    return cases + camera_cases()


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
    # own cameras and calibration (drawn last, so that the cases above keep their values)
    cam, calib, cal = _cam()
    for i in range(n):
        g = garbled()
        cases += [
            Case("track --rgb/--tir", f"random --init {g!r}", _with(cam, init=g), says=("--init",)),
            Case("track --rgb/--tir", f"random calibration file bytes #{i}", calib,
                 write_file("H.txt", rng.bytes(int(rng.integers(0, 300)))), says=("H.txt",)),
            Case("calibrate", f"random points file bytes #{i}", cal,
                 write_file("p.txt", rng.bytes(int(rng.integers(0, 400)))), says=("p.txt",)),
        ]
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
        unsaid = [s for s in case.says if s not in stderr]
        if unsaid:
            outcome, detail = "unclear error", f"the error does not name {unsaid[0]!r}: {detail}"
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
             "**unclear error** = another non-zero exit without a traceback, or an error that does not name the "
             "file and frame / line or the value a case requires; **traceback** = an exception escaped "
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
              "(`pmatrack_mini.training.resume_check`; `python -m pmatrack_mini.training.resume_check "
              "--data data_samples [--device cuda --amp]` runs the same cases on a GPU).", "",
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
