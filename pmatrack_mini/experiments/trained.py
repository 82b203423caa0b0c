"""Trained networks shared by the notebooks and the demo: trained once into a work folder, then reused.

Training resumes from ``last.pt`` and stops at once when a run is complete, so a second call with the same
arguments only loads the checkpoint. A run's folder name carries its steps and a hash of its config (what decides the
weights: ``run_folder``), so a changed setting (or a changed default) never meets an old run; a changed *code* path with the same config does
reuse the old weights (delete ``work`` after changing the package).

    model, cfg = stage1_tracker("runs/demo", steps=600)                        # the RGBT tracker
    model, cfg = stage2_network("runs/demo", steps=400, align=dict(stages=("center",), experts=("tre",)))

The notebooks read one family instead, the networks ``pmatrack-mini reproduce`` trains (:func:`family`), so that a
number in notebook 05 and the same number in 09 come from the same network:

    nets = family("runs")                        # runs/reproduce (runs/reproduce-ci under PMATRACK_FAST)
    model, cfg = family_network(nets, "all")     # reproduce's network of the Full row
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

from ..config import OPERATIONAL, get_config, merge, stage2_config
from ..data.synth_sets import cached_dataset
from ..errors import PMATrackError
from ..models.checkpoint import checkpoint_config, model_from_checkpoint
from ..utils import FAST, folder_lock

STAGE1_TRAIN_SEED, STAGE2_TRAIN_SEED = 100, 300
# CI size (PMATRACK_FAST, the one switch): the stage-2 networks' experts at a quarter to a half of cpu-mini's widths,
# costs still rising TRE < FME < DPE. A fast run shows the pipeline; its networks teach nothing either way.
CI_EXPERT_SIZES = dict(tre_dim=48, fme_dim=64, fme_gate_hidden=32, fme_channels=8, dpe_base=32, dpe_mlp_ratio=1.0)


def stage1_tracker(work: str | Path, steps: int, seed: int = 0, progress: bool = False, batch_size: int | None = None):
    """The cpu-mini RGBT tracker trained ``steps`` steps on aligned generated sequences (batch ``batch_size``;
    default 8 for a CI-sized run, 32 otherwise). Returns (model, cfg)."""
    from ..training.train import train

    work = Path(work)
    small = steps <= 50
    data = cached_dataset(stage1_data_folder(work, steps), *stage1_data_size(steps), "none",
                          STAGE1_TRAIN_SEED + seed, progress=progress)
    cfg = get_config("cpu-mini", train=dict(steps=steps, batch_size=batch_size or (8 if small else 32), log_every=5,
                                            warmup_steps=min(50, max(1, steps // 6)), seed=seed))
    run = run_folder(work, "stage1", cfg)
    with folder_lock(run):                          # another process training the same run: wait, then load it
        if not (run / "final.pt").is_file():        # the folder's name carries the config: a final.pt is this run's
            train(cfg, data, run, progress=progress)
    return model_from_checkpoint(run / "final.pt")[:2]


def stage1_data_size(steps: int) -> tuple[int, int]:
    """(sequences, frames) of the aligned training set :func:`stage1_tracker` uses for ``steps`` steps: a small set
    for a CI-sized run (<= 50 steps), a larger one otherwise."""
    return (6, 60) if steps <= 50 else (24, 100)


def stage1_data_folder(work: str | Path, steps: int) -> Path:
    """The folder of that aligned training set, named by its size (a CI-sized and a full-sized set never meet)."""
    seqs, frames = stage1_data_size(steps)
    return Path(work) / f"train_aligned_{seqs}x{frames}"


def run_folder(work: Path, kind: str, cfg) -> Path:
    """``work/<kind>_<steps>_<hash of the settings that decide its weights>``: the whole config but the operational
    settings (``config.OPERATIONAL``: logging, checkpoint period, loader workers) and, for a stage-1 tracker, the
    alignment section it does not have (so a new stage-2 option does not orphan every trained tracker)."""
    settings = cfg.to_dict()
    for key in OPERATIONAL:
        section, name = key.split(".")
        settings[section].pop(name, None)
    if cfg.train.stage == 1:
        settings.pop("align", None)
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return Path(work) / f"{kind}_{cfg.train.steps}_{key}"


def setting_name(key: str, value) -> str:
    """``key-value`` for a run folder's name: a tuple as ``a+b``, a float as ``%g`` (``lambda_cost-0.1``)."""
    text = "+".join(map(str, value)) if isinstance(value, (tuple, list)) else \
        format(value, "g") if isinstance(value, float) else str(value)
    name = f"{key}-{text}"
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", name):
        raise PMATrackError(f"a run folder cannot be named after the setting {key}={value!r}")
    return name


def stage2_training_sets(work: str | Path, sequences: int, frames: int, levels=("small", "large", "dynamic"),
                         progress: bool = False) -> list:
    """Generated unaligned training sequences, one folder per offset level (seeds never used for testing)."""
    work = Path(work)
    return [s for k, lvl in enumerate(levels)
            for s in cached_dataset(work / f"train_{lvl}_{sequences}x{frames}", sequences, frames, lvl,
                                    STAGE2_TRAIN_SEED + k, progress=progress)]


def stage2_data_size(steps: int) -> tuple[int, int]:
    """(sequences, frames) per offset level of the training sets :func:`stage2_network` uses for ``steps`` steps:
    a small set for a CI-sized run (<= 50 steps), a larger one otherwise."""
    return (4, 40) if steps <= 50 else (24, 80)


def stage2_network(work: str | Path, steps: int, stage1_steps: int | None = None, seed: int = 0,
                   progress: bool = False, stage1_batch_size: int | None = None, **overrides):
    """PMATrack's network trained ``steps`` steps (stage 2) on top of :func:`stage1_tracker` (``stage1_steps``,
    ``stage1_batch_size``).

    ``overrides`` go to the stage-2 config (``align=...``, ``train=...``). Returns (model, cfg)."""
    from ..training.train import train

    work = Path(work)
    stage1_steps = stage1_steps or max(steps, 30)
    _, cfg1 = stage1_tracker(work, stage1_steps, seed, progress, stage1_batch_size)
    init = run_folder(work, "stage1", cfg1) / "final.pt"
    small = steps <= 50
    data = stage2_training_sets(work, *stage2_data_size(steps), progress=progress)
    train_over = dict(dict(steps=steps, batch_size=8 if small else 32, log_every=5, seed=seed,
                           warmup_steps=min(50, max(1, steps // 6)), init=str(init)), **overrides.pop("train", {}))
    if FAST:
        overrides["align"] = {**CI_EXPERT_SIZES, **overrides.get("align", {})}
    cfg = stage2_config(checkpoint_config(init), train=train_over, **overrides)
    run = run_folder(work, "stage2", cfg)
    with folder_lock(run):
        if not (run / "final.pt").is_file():
            train(cfg, data, run, progress=progress)
    return model_from_checkpoint(run / "final.pt")[:2]


def _notebook_fast():
    """``reproduce --fast``'s steps and sets at the cpu-mini size, not its toy model: the notebooks' CI-mode networks
    (their shape checks compare CI outputs with the stored full-mode ones)."""
    from .reproduce import FAST as TOY

    return dataclasses.replace(TOY, tiny=False)


def family(runs: str | Path, progress: bool = False):
    """The notebooks' networks: those of ``pmatrack-mini reproduce --out <runs>/reproduce`` (``ReproduceConfig``),
    trained here if that command has not run yet and reused by it if it runs later; under PMATRACK_FAST the same
    recipe at ``reproduce --fast``'s steps and sets (:func:`_notebook_fast`) in ``<runs>/reproduce-ci`` (not a
    folder of ``reproduce --fast``, whose toy model it does not use). Returns the reproduction's ``Workspace``."""
    from .reproduce import ReproduceConfig, Workspace

    root = Path(runs) / ("reproduce-ci" if FAST else "reproduce")
    return Workspace(root, _notebook_fast() if FAST else ReproduceConfig(), progress=progress)


def family_modes() -> str:
    """What :func:`family` trains in each mode, one line each (the notebooks' settings blocks print it)."""
    from .reproduce import ReproduceConfig

    return "\n".join(
        f"  {mode}: {'the recipe of ' if fast else 'the networks of '}`pmatrack-mini reproduce` "
        f"({'at the steps and sets of its --fast, cpu-mini size, ' if fast else ''}"
        f"runs/reproduce{'-ci' if fast else ''}): the stage-1 tracker {rc.stage1_steps} steps, each stage-2 "
        f"network {rc.stage2_steps} steps, batch {rc.batch_size}, on {rc.train_sequences} x {rc.train_frames}-frame "
        f"generated sequences per offset level"
        for mode, fast, rc in (("fast", True, _notebook_fast()), ("full", False, ReproduceConfig())))


def family_tracker(nets):
    """The stage-1 tracker every network of ``nets`` (:func:`family`) starts from. Returns (model, cfg)."""
    return model_from_checkpoint(nets.stage1())[:2]


def family_network(nets, variant: str = "all", **align):
    """``reproduce``'s stage-2 network ``variant`` (``reproduce.VARIANTS``: tre, fme, dpe, all, center, center_scale,
    one_shot); ``align`` settings (or ``steps=N``) on top train a network of the same recipe the tables do not use.
    (model, cfg); the config's ``train.init`` points at the stage-1 tracker as seen from here (the checkpoint keeps
    the path its trainer saw: ``reproduce`` runs from the project folder, a notebook from ``notebooks/``)."""
    model, cfg = model_from_checkpoint(nets.stage2(variant, **align))[:2]
    return model, merge(cfg, dict(train=dict(init=str(nets.stage1()))))


def training_summary(cfg, data: tuple[int, int, str] | None = None) -> str:
    """One line saying what a network was trained on and for how long, read from its config (and the stage-1
    checkpoint's): for the captions of figures whose meaning depends on training. ``data``: (sequences per level,
    frames, backgrounds) of its training sets (``Workspace.training_data`` for :func:`family`'s networks); default
    the sets of :func:`stage1_tracker` / :func:`stage2_network`."""
    t, a = cfg.train, cfg.align
    sets = {"procedural": "", "mixed": ", textures and photographs half each", "photo": ", photographs"}
    if t.stage == 1:
        seqs, frames, backgrounds = data or (*stage1_data_size(t.steps), "procedural")
        return (f"stage-1 tracker: {t.steps} steps x batch {t.batch_size} (lr {t.lr:g}) on {seqs} x {frames}-frame "
                f"generated aligned sequences{sets.get(backgrounds, ', ' + backgrounds)}")
    seqs, frames, backgrounds = data or (*stage2_data_size(t.steps), "procedural")
    stage1 = checkpoint_config(t.init).train if t.init else None
    return (f"stage 2: {t.steps} steps x batch {t.batch_size} (lr {t.lr:g}, router warm-up {a.router_warmup:.0%} of "
            f"the steps, lambda_cost {a.lambda_cost:g}), stages {'+'.join(a.stages)}, experts {'/'.join(a.experts)}, "
            f"TCMDA {'on' if a.tcmda else 'off'}; {seqs} x {frames}-frame generated sequences per offset level "
            f"(small, large, dynamic){sets.get(backgrounds, ', ' + backgrounds)}, TIR crops '{t.prealign}'"
            + (f"; on the {'frozen ' if t.freeze_tracker else ''}stage-1 tracker ({stage1.steps} steps x batch "
               f"{stage1.batch_size}, aligned sequences)" if stage1 else ""))
