"""Trained networks shared by the notebooks and the demo: trained once into a work folder, then reused.

Training resumes from ``last.pt`` and stops at once when a run is complete, so a second call with the same
arguments only loads the checkpoint. Folder names carry the settings that make a run (steps, seed, variant), so
different settings never share a folder.

    model, cfg = stage1_tracker("runs/notebooks", steps=600)                   # the RGBT tracker
    model, cfg = stage2_network("runs/notebooks", steps=400, align=dict(stages=("center",), experts=("tre",)))
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .config import get_config, stage2_config
from .data.synth import cached_dataset
from .models.checkpoint import checkpoint_config, model_from_checkpoint

STAGE1_TRAIN_SEED, STAGE2_TRAIN_SEED = 100, 300


def stage1_tracker(work: str | Path, steps: int, seed: int = 0, progress: bool = False):
    """The cpu-mini RGBT tracker trained ``steps`` steps on aligned generated sequences. Returns (model, cfg)."""
    from .train import train

    work = Path(work)
    small = steps <= 50
    data = cached_dataset(work / "train_aligned", 6 if small else 24, 60 if small else 100, "none",
                          STAGE1_TRAIN_SEED + seed, progress=progress)
    cfg = get_config("cpu-mini", train=dict(steps=steps, batch_size=16 if small else 32, log_every=5,
                                            warmup_steps=min(50, max(1, steps // 6)), seed=seed))
    run = work / f"stage1_{steps}_s{seed}"
    train(cfg, data, run, progress=progress)
    return model_from_checkpoint(run / "final.pt")[:2]


def stage2_training_sets(work: str | Path, sequences: int, frames: int, levels=("small", "large", "dynamic"),
                         progress: bool = False) -> list:
    """Generated unaligned training sequences, one folder per offset level (seeds never used for testing)."""
    work = Path(work)
    return [s for k, lvl in enumerate(levels)
            for s in cached_dataset(work / f"train_{lvl}_{sequences}x{frames}", sequences, frames, lvl,
                                    STAGE2_TRAIN_SEED + k, progress=progress)]


def stage2_network(work: str | Path, steps: int, stage1_steps: int | None = None, seed: int = 0,
                   progress: bool = False, **overrides):
    """PMATrack's network trained ``steps`` steps (stage 2) on top of :func:`stage1_tracker`.

    ``overrides`` go to the stage-2 config (``align=...``, ``train=...``). Returns (model, cfg)."""
    from .train import train

    work = Path(work)
    stage1_steps = stage1_steps or max(steps, 30)
    stage1_tracker(work, stage1_steps, seed, progress)
    init = work / f"stage1_{stage1_steps}_s{seed}" / "final.pt"
    small = steps <= 50
    data = stage2_training_sets(work, 4 if small else 24, 40 if small else 80, progress=progress)
    train_over = dict(dict(steps=steps, batch_size=16 if small else 32, log_every=5, seed=seed,
                           warmup_steps=min(50, max(1, steps // 6)), init=str(init)), **overrides.pop("train", {}))
    cfg = stage2_config(checkpoint_config(init), train=train_over, **overrides)
    key = hashlib.sha1(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    run = work / f"stage2_{steps}_{key}"
    train(cfg, data, run, progress=progress)
    return model_from_checkpoint(run / "final.pt")[:2]
