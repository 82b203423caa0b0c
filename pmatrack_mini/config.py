"""Typed configuration: presets as dataclasses, merged strictly (an unknown key is an error).

Two presets:

* ``cpu-mini`` trains on 2 CPU cores in minutes. Width 192, depth 6, patch 16, template 64 px and search
  128 px give 4x4 + 8x8 tokens per modality (160 tokens for RGBT): small enough for >= 50 FPS tracking at
  batch 1 on 2 cores, large enough that a 8x8 score map plus sub-cell offsets localises 20-40 px targets.
  It trains from scratch (nothing can be downloaded), so the backbone learns at the full learning rate.
* ``paper`` is OSTrack's setting: ViT-B/16, template 128 px (factor 2), search 256 px (factor 4), backbone
  learning rate x0.1 (it starts from MAE/OSTrack weights), grad clip 0.1.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .errors import PMATrackError

MODALITIES = ("rgbt", "rgb", "tir")


@dataclass
class ModelConfig:
    template_size: int = 64          # px, template crop side
    search_size: int = 128           # px, search crop side
    template_factor: float = 2.0     # crop side = factor * sqrt(w * h)
    search_factor: float = 4.0
    patch_size: int = 16
    embed_dim: int = 192
    depth: int = 6
    num_heads: int = 3
    mlp_ratio: float = 4.0
    head_channels: int = 128         # first conv width of the centre head branches
    modalities: str = "rgbt"         # rgbt | rgb | tir
    drop_path: float = 0.0

    def __post_init__(self):
        if self.modalities not in MODALITIES:
            raise PMATrackError(f"model.modalities must be one of {MODALITIES}, got {self.modalities!r}")
        for name in ("template_size", "search_size"):
            if getattr(self, name) % self.patch_size:
                raise PMATrackError(f"model.{name}={getattr(self, name)} is not a multiple of patch_size={self.patch_size}")
        if self.embed_dim % self.num_heads:
            raise PMATrackError(f"model.embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}")

    @property
    def feat_size(self) -> int:
        """Side of the search feature map (tokens per row)."""
        return self.search_size // self.patch_size


@dataclass
class TrainConfig:
    steps: int = 1500
    batch_size: int = 32
    lr: float = 4e-4
    backbone_lr_mult: float = 1.0
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    warmup_steps: int = 50
    schedule: str = "cosine"          # cosine | step
    max_gap: int = 30                 # template / search frames at most this far apart
    center_jitter: float = 3.0        # OSTrack's search centre jitter factor
    scale_jitter: float = 0.25        # OSTrack's search scale jitter
    giou_weight: float = 2.0
    l1_weight: float = 5.0
    focal_weight: float = 1.0
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 250
    num_threads: int = 0              # 0: leave torch's default

    def __post_init__(self):
        if self.schedule not in ("cosine", "step"):
            raise PMATrackError(f"train.schedule must be cosine or step, got {self.schedule!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise PMATrackError("train.steps and train.batch_size must be positive")


@dataclass
class Config:
    preset: str = "cpu-mini"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS = {
    "cpu-mini": {},
    "paper": dict(
        model=dict(template_size=128, search_size=256, patch_size=16, embed_dim=768, depth=12, num_heads=12,
                   head_channels=256, drop_path=0.1),
        train=dict(steps=60000, batch_size=32, lr=4e-4, backbone_lr_mult=0.1, grad_clip=0.1, warmup_steps=1000,
                   max_gap=200),
    ),
}


def merge(obj, overrides: dict, where: str = ""):
    """Return a copy of dataclass ``obj`` with ``overrides`` applied; unknown keys raise."""
    names = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in overrides.items():
        if key not in names:
            raise PMATrackError(f"unknown config key {where + key!r}; known: {sorted(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise PMATrackError(f"config key {where + key!r} expects a mapping")
            changes[key] = merge(current, value, where=f"{where}{key}.")
        else:
            changes[key] = tuple(value) if isinstance(current, tuple) else value
    return dataclasses.replace(obj, **changes)


def get_config(preset: str = "cpu-mini", **overrides) -> Config:
    """Preset + overrides, e.g. ``get_config("cpu-mini", model={"modalities": "rgb"}, train={"steps": 10})``."""
    if preset not in PRESETS:
        raise PMATrackError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    cfg = merge(Config(preset=preset), PRESETS[preset])
    return merge(cfg, overrides)


def config_from_dict(d: dict) -> Config:
    """Rebuild a Config saved with :meth:`Config.to_dict` (strict)."""
    d = dict(d)
    preset = d.pop("preset", "cpu-mini")
    return merge(Config(preset=preset), d)
