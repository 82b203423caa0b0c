"""Generated sets on disk: one rendered sequence in the LasHeR layout (:func:`write_sequence`), whole sets
(:func:`generate_dataset`), the five ``data_samples`` sequences (:func:`generate_samples`) and sets generated once and
then reused (:func:`cached_dataset`).

A generated folder records what it was made with in ``synth.json`` (sequences, frames, offset, seed, sizes,
challenges, ... and the generator's version), written last and atomically. A folder whose record differs
from what is asked, or that holds sequences but no record, is never silently reused: :func:`generate_dataset`
refuses it (naming the differing parameters) unless ``overwrite``, and :func:`cached_dataset` regenerates it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from ..errors import PMATrackError
from ..utils import read_json, write_boxes, write_json_atomic, write_text_atomic
from .synth import SynthConfig, config_record, render_sequence

# ----------------------------------------------------------------------------- writing


def write_sequence(seq: dict, out_dir: str | Path, jpeg_quality: int = 85) -> Path:
    """Write one rendered sequence in the LasHeR layout, via a temporary folder renamed at the end."""
    out_dir = Path(out_dir)
    tmp = out_dir.parent / f".{out_dir.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "visible").mkdir(parents=True)
    (tmp / "infrared").mkdir(parents=True)
    q = [int(cv2.IMWRITE_JPEG_QUALITY), int(jpeg_quality)]
    for t, (rgb, tir) in enumerate(zip(seq["rgb"], seq["tir"])):
        cv2.imwrite(str(tmp / "visible" / f"v{t:06d}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), q)
        cv2.imwrite(str(tmp / "infrared" / f"i{t:06d}.jpg"), tir, q)
    write_boxes(tmp / "visible.txt", seq["visible"], decimals=0)
    write_boxes(tmp / "init.txt", seq["visible"], decimals=0)
    write_boxes(tmp / "infrared.txt", seq["infrared"], decimals=2)
    write_text_atomic(tmp / "homography.txt",
                      "\n".join(" ".join(f"{v:.10g}" for v in h.reshape(-1)) for h in seq["homography"]) + "\n")
    names = list(seq["attributes"])
    rows = [",".join(str(int(seq["attributes"][n][t])) for n in names) for t in range(len(seq["visible"]))]
    write_text_atomic(tmp / "attributes.txt", "# " + ",".join(names) + "\n" + "\n".join(rows) + "\n")
    write_json_atomic(tmp / "meta.json", seq["meta"])
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


# ----------------------------------------------------------------------------- generation records

RECORD = "synth.json"


def generation_record(**params) -> dict:
    """The dataset-level record of a generated folder: ``params`` and the generator's version, as JSON values."""
    from .. import __version__

    return json.loads(json.dumps(dict(format="pmatrack-mini-synth/1", generator=f"pmatrack-mini {__version__}",
                                      **params)))


def _config_params(cfg: SynthConfig) -> dict:
    return config_record(cfg)


def dataset_record(sequences: int, cfg: SynthConfig, seed: int, prefix: str) -> dict:
    extra = {}
    if cfg.background != "procedural":             # the photographs come from this package version
        from importlib.metadata import version

        extra["photographs"] = f"scikit-image {version('scikit-image')}"
    return generation_record(sequences=sequences, seed=seed, prefix=prefix, **_config_params(cfg), **extra)


def read_record(folder: str | Path) -> dict | None:
    """The record of ``folder`` (None when it has none); a record that is not a JSON object is an error."""
    path = Path(folder) / RECORD
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except PMATrackError:
        raise PMATrackError(f"{path}: unreadable generation record") from None


def record_differences(recorded: dict, asked: dict) -> list[str]:
    """``["frames: recorded 100, asked 40", ...]`` for every parameter that differs."""
    return [f"{k}: recorded {recorded.get(k)!r}, asked {asked.get(k)!r}"
            for k in sorted(set(recorded) | set(asked)) if recorded.get(k) != asked.get(k)]


def _listed(folder: Path) -> list[str]:
    lst = folder / "list.txt"
    return [n.strip() for n in lst.read_text(errors="replace").splitlines() if n.strip()] if lst.is_file() else []


def _claim(out: Path, asked: dict, names: list[str], overwrite: bool) -> None:
    """Make ``out`` ready to receive the set ``asked`` describes (sequence folders ``names``), or refuse.

    Refused unless ``overwrite``: a folder whose record differs from ``asked`` (the message names each
    differing parameter), or that holds sequences (a ``list.txt`` or one of ``names``) but no readable record.
    Before anything is written the old record is removed, so an interrupted run leaves a folder without a
    record (refused or regenerated next time), never one whose record describes other data; sequences that
    an old record's list named and the new set does not are removed (they were generated too).
    """
    if out.exists() and not out.is_dir():
        raise PMATrackError(f"{out}: exists and is not a folder")
    try:
        old = read_record(out)
        differences = record_differences(old, asked) if old is not None else []
        problem = f"{out} was generated with other parameters ({'; '.join(differences)})" if differences else ""
    except PMATrackError as exc:
        old, problem = None, str(exc)
    if old is None and not problem and (_listed(out) or any((out / n).exists() for n in names)):
        problem = f"{out} holds sequences but no {RECORD}, so the parameters they were made with are unknown"
    if problem and not overwrite:
        raise PMATrackError(f"{problem}; pass --overwrite to replace them, or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / RECORD).unlink(missing_ok=True)
    stale = [n for n in _listed(out) if n not in names] if old is not None else []
    for name in stale:   # only plain names of folders that look generated (they hold a meta.json)
        if Path(name).name == name and name not in (".", "..") and (out / name / "meta.json").is_file():
            shutil.rmtree(out / name)


def generate_dataset(out: str | Path, sequences: int, cfg: SynthConfig, seed: int = 0,
                     prefix: str | None = None, overwrite: bool = False, progress: bool = True) -> list[Path]:
    """Render and write ``sequences`` sequences, a ``list.txt`` naming them and the record ``synth.json``.

    Sequence i uses seed (seed, i). A folder already holding sequences made with other parameters (or of
    unknown origin) is refused unless ``overwrite`` (see :func:`_claim`).
    """
    from tqdm.auto import tqdm

    if sequences < 1 or seed < 0:
        raise PMATrackError(f"sequences must be >= 1 and seed >= 0, got {sequences} and {seed}")
    out = Path(out)
    prefix = prefix or f"synth_{cfg.offset}"
    names = [f"{prefix}_{seed:04d}_{i:03d}" for i in range(sequences)]
    record = dataset_record(sequences, cfg, seed, prefix)
    _claim(out, record, names, overwrite)
    paths = []
    for i, name in enumerate(tqdm(names, desc=f"synth {cfg.offset}", disable=not progress)):
        seq_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        paths.append(write_sequence(render_sequence(cfg, seq_seed), out / name, cfg.jpeg_quality))
    write_text_atomic(out / "list.txt", "\n".join(names) + "\n")
    write_json_atomic(out / RECORD, record)
    return paths


# The committed data_samples/: one sequence per offset level and challenge (name, offset, challenges, seed).
SAMPLE_SET = (
    ("none_lowlight", "none", ("low_illumination",), 11),
    ("small_occlusion", "small", ("occlusion",), 12),
    ("small_crossover", "small", ("thermal_crossover",), 13),
    ("large_fastmotion", "large", ("fast_motion",), 14),
    ("large_occlusion_lowlight", "large", ("occlusion", "low_illumination"), 15),
)
SAMPLE_FRAMES = 40


def _sample_configs(frames: int) -> list:
    return [(name, SynthConfig(frames=frames, offset=offset, challenges=challenges), seed)
            for name, offset, challenges, seed in SAMPLE_SET]


def samples_record(frames: int = SAMPLE_FRAMES) -> dict:
    return generation_record(preset="samples", sequences=[dict(name=name, seed=seed, **_config_params(cfg))
                                                          for name, cfg, seed in _sample_configs(frames)])


def generate_samples(out: str | Path, frames: int = SAMPLE_FRAMES, progress: bool = True,
                     overwrite: bool = False) -> list[Path]:
    """Regenerate ``data_samples/`` (deterministic), with its record; another set in ``out`` is refused
    unless ``overwrite``."""
    from tqdm.auto import tqdm

    out = Path(out)
    record = samples_record(frames)
    _claim(out, record, [n for n, *_ in SAMPLE_SET], overwrite)
    paths = []
    for name, cfg, seed in tqdm(_sample_configs(frames), desc="samples", disable=not progress):
        paths.append(write_sequence(render_sequence(cfg, seed), out / name, cfg.jpeg_quality))
    write_text_atomic(out / "list.txt", "\n".join(n for n, *_ in SAMPLE_SET) + "\n")
    write_json_atomic(out / RECORD, record)
    return paths


def cached_dataset(folder: str | Path, sequences: int, frames: int, offset: str, seed: int, progress: bool = True,
                   failure: bool = False, background: str = "procedural"):
    """Load the synthetic set in ``folder``, generating it first unless its record says it was made with exactly
    these parameters (a folder made with others, or without a record, is regenerated, never reused)."""
    from .dataset import load_dataset

    from ..utils import folder_lock

    folder = Path(folder)
    cfg = SynthConfig(frames=frames, offset=offset, failure=failure, background=background)
    with folder_lock(folder):                       # another process making the same set: wait, then reuse it
        try:
            current = read_record(folder) == dataset_record(sequences, cfg, seed, f"synth_{offset}")
        except PMATrackError:
            current = False
        if not current:
            generate_dataset(folder, sequences, cfg, seed=seed, overwrite=True, progress=progress)
        return load_dataset(folder)
