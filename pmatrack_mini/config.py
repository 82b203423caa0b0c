"""Typed configuration: presets as dataclasses, merged strictly.

An unknown key, a value whose type does not fit the field's annotation (``--set train.steps=abc``) and a value
out of range (``--set model.patch_size=0``) are each a :class:`PMATrackError` naming the key and the value.
The type check is generic (:func:`check_field_value` reads the annotations), the ranges are checked by each
dataclass's ``__post_init__``.

Two presets:

* ``cpu-mini`` trains on 2 CPU cores in minutes. Width 192, depth 6, patch 16, template 64 px and search
  128 px give 4x4 + 8x8 tokens per modality (160 tokens for RGBT): small enough for >= 50 FPS tracking at
  batch 1 on 2 cores, large enough that a 8x8 score map plus sub-cell offsets localises 20-40 px targets.
  It trains from scratch (nothing can be downloaded), so the backbone learns at the full learning rate.
* ``paper`` is OSTrack's setting: ViT-B/16, template 128 px (factor 2), search 256 px (factor 4), backbone
  learning rate x0.1 (it starts from MAE/OSTrack weights: ``--set model.pretrained=FILE``), grad clip 0.1.

Three sections: ``model`` (the stage-1 tracker: backbone and head), ``align`` (PMATrack's alignment network that
stage 2 adds: stages, experts, router, TCMDA, their losses) and ``train`` (the recipe of either stage, including how
training pairs are pre-aligned). ``train.stage`` says which network a config builds: 1, the baseline tracker;
2, the tracker plus the alignment stages (``models.build_model``).

Not every setting changes the weights a run ends with. :data:`OPERATIONAL` lists those that only change how a run
is carried out (logging, checkpoint frequency, input workers) and :data:`INIT_SOURCES` the files the initial
weights come from; a resumed run takes its weights from its own ``last.pt``, so neither list blocks resuming
(:func:`resume_differences`). ``train.num_threads`` does not block it either, but it is not operational: the number
of CPU threads changes how float sums are split, and so the last bits of the weights (measured: 4 steps of the tiny
resume-check model at 1 and at 2 threads differ in most tensors); a resume on another thread count continues with
a note (``resume.restore``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .config_checks import (ACCEPTS, check_field_value, differences, flat_dict, merge, parse_overrides,  # noqa: F401
                            require, require_nonnegative, require_positive)
from .errors import PMATrackError

MODALITIES = ("rgbt", "rgb", "tir")
STAGE_ROLES = ("center", "scale", "refine")      # progressive alignment, shallow -> deep
EXPERT_NAMES = ("tre", "fme", "dpe")             # rising cost
ROUTING_MODES = ("router", "soft") + EXPERT_NAMES
PREALIGN_MODES = ("none", "first-frame", "mixture")
ROUTER_INPUTS = ("tokens", "agreement", "official")     # ``models.router.Router``
EXPERT_SIZE_FIELDS = ("tre_dim", "tre_readout", "fme_dim", "fme_gate_hidden", "fme_channels", "dpe_base", "dpe_levels",
                      "dpe_heads", "dpe_mlp_ratio")      # AlignConfig's expert sizes (``AlignConfig.expert_sizes``)
# expert sizes for the width-64 toy networks of the tests and ``reproduce --fast`` (the defaults are cpu-mini's, for
# width 192): scaled down with the width, costs still rising TRE < FME < DPE
TOY_EXPERT_SIZES = dict(tre_dim=16, fme_dim=32, fme_gate_hidden=16, fme_channels=6, dpe_base=32, dpe_heads=2)


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
    pretrained: str = ""             # stage 1: MAE / timm ViT or OSTrack weights for the backbone ("" = none)

    def __post_init__(self):
        require_positive(self, "model", ("template_size", "search_size", "patch_size", "embed_dim", "depth",
                                         "num_heads", "head_channels", "template_factor", "search_factor",
                                         "mlp_ratio"))
        require(0 <= self.drop_path < 1, "model.drop_path", self.drop_path, "in [0, 1)")
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
class AlignConfig:
    """PMATrack's alignment network (stage 2). Block indices are 0-based: a stage runs on the output of blocks[i].

    ``layers`` gives one block per role (center, scale, refine); ``stages`` picks which roles exist (the
    progressive ablation: ("center",), ("center", "scale"), all three). ``experts`` is the set each stage's
    router chooses from (the component ablation: ("tre",), ("tre", "fme"), all three).
    """
    stages: tuple = STAGE_ROLES
    layers: tuple = (1, 3, 4)        # cpu-mini: shallow, middle, deep of 6 blocks (paper: 2, 5, 8 of 12)
    experts: tuple = EXPERT_NAMES
    routing: str = "router"          # inference: router (hard arg-max) | soft | tre | fme | dpe
    gumbel_tau: float = 1.0          # training: Gumbel-softmax temperature
    router_input: str = "tokens"     # what the router reads (``models.router``): tokens | agreement | official
    router_channels: int = 4         # per-token channels kept by the router (spatial layout survives pooling)
    router_hidden: int = 64
    tcmda: bool = True               # False: stages predict alignment only (experts measured alone)
    one_shot: bool = False           # the ablation: one stage at the centre block regresses all four parameters,
                                     # TCMDA at the scale and refine blocks fuses with that one estimate
    tcmda_heads: int = 4             # cpu-mini: 4 heads of 48 channels; paper: 8 heads of 96
    tcmda_points: int = 4            # K sampling points per head (paper: 4)
    lambda_p: float = 1.0            # parameter loss L_p (smooth L1, translation in feature cells)
    param_beta: float = 1.0          # L_p's smooth-L1 beta (cells; log scales): quadratic below it, linear above
    lambda_r: float = 0.5            # TRE response loss L_r (BCE)
    lambda_cost: float = 0.01        # CPESL cost penalty
    router_warmup: float = 0.25      # first fraction of stage-2 steps: experts mixed uniformly, router not trained
    # The experts' sizes (``models.experts``). The paper preset takes the official shapes (TRE 0.756, FME 4.33,
    # DPE 7.555 G multiply-adds per call); cpu-mini the same shares of its tracker (1.3 / 7.7 / 13.4 %).
    tre_dim: int = 144               # TRE's projections per modality: Linear C -> d, ReLU, Linear d -> d (paper 768)
    tre_readout: str = "displacement"  # TRE reads its histogram's features per displacement | "pooled" (official)
    fme_dim: int = 192               # FME's projections per modality: Linear C -> d (paper 768)
    fme_gate_hidden: int = 64        # FME's band gates: MLP 2d -> h -> 2 (paper 1024)
    fme_channels: int = 24           # FME's pyramid over the N x N correlation image (paper 64)
    dpe_base: int = 64               # DPE's U-Net widths base * 2^k, a multiple of 16 (paper 256)
    dpe_levels: int = 3              # U-Net levels; the grid must halve that often (paper 4 on 16 x 16; 8 x 8: 3)
    dpe_heads: int = 4               # DPE's transformer block over both modalities, width 2C (paper 8)
    dpe_mlp_ratio: float = 2.0       # its MLP ratio (paper 4)

    def __post_init__(self):
        self.stages, self.layers, self.experts = tuple(self.stages), tuple(self.layers), tuple(self.experts)
        if not self.stages or list(self.stages) != [r for r in STAGE_ROLES if r in self.stages]:
            raise PMATrackError(f"align.stages must be a non-empty, ordered subset of {STAGE_ROLES}, "
                                f"got {self.stages}")
        if not self.experts or len(set(self.experts)) != len(self.experts) or set(self.experts) - set(EXPERT_NAMES):
            raise PMATrackError(f"align.experts must be distinct names from {EXPERT_NAMES}, got {self.experts}")
        if (len(self.layers) != len(STAGE_ROLES) or not all(ACCEPTS["int"](i) for i in self.layers)
                or list(self.layers) != sorted(self.layers)
                or len({self.layer_of(r) for r in self.stages}) < len(self.stages)):   # two stages on one block
            raise PMATrackError(f"align.layers needs one increasing block index per role {STAGE_ROLES}, strictly "
                                f"increasing over the stages in use {self.stages}, "
                                f"got {self.layers}")
        if self.routing not in ROUTING_MODES:
            raise PMATrackError(f"align.routing must be one of {ROUTING_MODES}, got {self.routing!r}")
        if self.routing in EXPERT_NAMES and self.routing not in self.experts:
            raise PMATrackError(f"align.routing={self.routing!r} names an expert that is not in align.experts "
                                f"{self.experts}")
        require_positive(self, "align", ("gumbel_tau", "router_channels", "router_hidden", "tcmda_heads",
                                         "tcmda_points", "param_beta"))
        require_nonnegative(self, "align", ("lambda_p", "lambda_r", "lambda_cost"))
        require(0 <= self.router_warmup < 1, "align.router_warmup", self.router_warmup, "in [0, 1)")
        require_positive(self, "align", ("tre_dim", "fme_dim", "fme_gate_hidden", "fme_channels", "dpe_base",
                                         "dpe_levels", "dpe_heads", "dpe_mlp_ratio"))
        require(self.tre_readout in ("displacement", "pooled"), "align.tre_readout", self.tre_readout,
                "'displacement' or 'pooled'")
        require(self.router_input in ROUTER_INPUTS, "align.router_input", self.router_input,
                f"one of {', '.join(ROUTER_INPUTS)}")
        require(self.dpe_base % 16 == 0, "align.dpe_base", self.dpe_base, "a multiple of 16")
        require(not self.one_shot or self.stages == STAGE_ROLES, "align.one_shot", self.one_shot,
                f"used with all three stages {STAGE_ROLES} (their blocks place the one stage and the fusions)")

    def layer_of(self, role: str) -> int:
        return self.layers[STAGE_ROLES.index(role)]

    def expert_sizes(self, name: str) -> dict:
        """The constructor's size arguments of expert ``name`` (``models.experts.build_expert``)."""
        return {"tre": dict(proj_dim=self.tre_dim, readout=self.tre_readout),
                "fme": dict(proj_dim=self.fme_dim, gate_hidden=self.fme_gate_hidden, channels=self.fme_channels),
                "dpe": dict(base=self.dpe_base, levels=self.dpe_levels, heads=self.dpe_heads,
                            mlp_ratio=self.dpe_mlp_ratio)}[name]


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
    num_workers: int = 0              # input processes per rank (data.sampler.batch_loader); 0: the loop's own
    # stage 2 (alignment): ``init`` is the stage-1 checkpoint it starts from
    stage: int = 1
    init: str = ""
    freeze_tracker: bool = True       # paper: backbone and head frozen in stage 2
    tracker_lr_mult: float = 0.1      # their learning rate when not frozen
    # How TIR crops are cut for training (must match the tracker's --prealign at test time):
    #   none         resolution change only (naive);
    #   first-frame  template and search through H0, fitted to the template frame's two boxes (the tracker's
    #                first-frame pre-alignment, with the template frame playing frame 1);
    #   mixture      template through H0; search through the true H_t perturbed by a residual drawn from
    #                (zero, small, large, the template frame's H0) with probabilities ``residual_mix``.
    prealign: str = "first-frame"
    residual_mix: tuple = (0.2, 0.2, 0.3, 0.3)
    residual_small_px: float = 4.0    # RGB px, std of the small residual per axis
    residual_large_px: float = 50.0   # RGB px, the large residual's length is uniform in [0, this]
    residual_scale: float = 0.10      # the large residual's scale is within 1 +- this per axis

    def __post_init__(self):
        if self.stage not in (1, 2):
            raise PMATrackError(f"train.stage must be 1 or 2, got {self.stage!r}")
        if self.prealign not in PREALIGN_MODES:
            raise PMATrackError(f"train.prealign must be one of {PREALIGN_MODES}, got {self.prealign!r}")
        require_nonnegative(self, "train", ("tracker_lr_mult", "residual_small_px", "residual_large_px"))
        require(0 <= self.residual_scale < 1, "train.residual_scale", self.residual_scale, "in [0, 1)")
        self.residual_mix = tuple(self.residual_mix)
        if (len(self.residual_mix) != 4 or not all(isinstance(w, (int, float)) for w in self.residual_mix)
                or min(self.residual_mix) < 0 or sum(self.residual_mix) <= 0):
            raise PMATrackError(f"train.residual_mix needs 4 non-negative weights (zero, small, large, first-frame), "
                                f"got {self.residual_mix}")
        if self.schedule not in ("cosine", "step"):
            raise PMATrackError(f"train.schedule must be cosine or step, got {self.schedule!r}")
        require_positive(self, "train", ("steps", "batch_size", "lr", "max_gap", "log_every", "ckpt_every"))
        require_nonnegative(self, "train", ("backbone_lr_mult", "weight_decay", "grad_clip", "warmup_steps",
                                            "center_jitter", "scale_jitter", "giou_weight", "l1_weight",
                                            "focal_weight"))
        require(0 <= self.seed < 2**63, "train.seed", self.seed, "in [0, 2**63)")
        require(0 <= self.num_threads <= 1024, "train.num_threads", self.num_threads,
                "in [0, 1024] (0: torch's default)")
        require(0 <= self.num_workers <= 256, "train.num_workers", self.num_workers, "in [0, 256]")


@dataclass
class Config:
    preset: str = "cpu-mini"
    model: ModelConfig = field(default_factory=ModelConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        if self.train.stage == 1:
            return                      # the alignment section is unused by a stage-1 tracker
        bad = [self.align.layer_of(r) for r in self.align.stages if not 0 <= self.align.layer_of(r) < self.model.depth]
        if bad:
            raise PMATrackError(f"align.layers {self.align.layers}: block index {bad[0]} is outside the backbone's "
                                f"0..{self.model.depth - 1}")
        if self.model.modalities != "rgbt":
            raise PMATrackError(f"stage 2 aligns two modalities; model.modalities is {self.model.modalities!r}")
        a, grid = self.align, self.model.feat_size
        if "dpe" in a.experts and grid % 2 ** a.dpe_levels:
            raise PMATrackError(f"align.dpe_levels={a.dpe_levels}: the {grid} x {grid} search grid cannot halve "
                                f"{a.dpe_levels} times (at most {(grid & -grid).bit_length() - 1} U-Net levels)")
        if "dpe" in a.experts and (2 * self.model.embed_dim) % a.dpe_heads:
            raise PMATrackError(f"align.dpe_heads={a.dpe_heads} does not divide DPE's block width "
                                f"2 x model.embed_dim = {2 * self.model.embed_dim}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS = {
    "cpu-mini": {},
    "paper": dict(
        model=dict(template_size=128, search_size=256, patch_size=16, embed_dim=768, depth=12, num_heads=12,
                   head_channels=256, drop_path=0.1),
        align=dict(layers=(2, 5, 8), tcmda_heads=8, tre_dim=768, fme_dim=768, fme_gate_hidden=1024, fme_channels=64,
                   dpe_base=256, dpe_levels=4, dpe_heads=8, dpe_mlp_ratio=4.0),
        train=dict(steps=60000, batch_size=32, lr=4e-4, backbone_lr_mult=0.1, grad_clip=0.1, warmup_steps=1000,
                   max_gap=200),
    ),
}

# Stage 2 (alignment) recipe on top of a preset: what changes when ``train.stage`` is 2. The search jitter is the
# tracker's (the search crop is centred on the last box, so the target is near its centre), not OSTrack's training
# jitter: measured here on the same batches of large residuals, a centre-stage TRE trained 150 steps brings the median
# from 22.8 to 13.5 px with it and to 17.9 px with OSTrack's, which puts many targets far off centre or outside the
# TIR crop.
STAGE2_TRAIN = {
    "cpu-mini": dict(stage=2, steps=1500, lr=1e-3, warmup_steps=50, prealign="mixture", center_jitter=1.0,
                     scale_jitter=0.1),
    "paper": dict(stage=2, steps=36000, lr=1e-4, warmup_steps=500, prealign="mixture", center_jitter=1.0,
                  scale_jitter=0.1),
}


# Settings that change how a run is carried out but not the weights it ends with: a resumed run may change them.
OPERATIONAL = ("train.log_every", "train.ckpt_every", "train.num_workers")
# May change on resume, but the run then continues not step for step (float sums split over other threads).
CONTINUABLE = ("train.num_threads",)
# Where the initial weights come from. A resumed run loads its weights from its own last.pt, so these files are not
# read again (they may have moved); stage 2 keeps the stage-1 config's ``model.pretrained`` but never reads it.
INIT_SOURCES = ("model.pretrained", "train.init")


def resume_differences(saved: Config, cfg: Config) -> dict:
    """What blocks resuming a run saved with ``saved`` under ``cfg``: every difference except the operational
    settings, the thread count and the initial-weight files (:data:`OPERATIONAL`, :data:`CONTINUABLE`,
    :data:`INIT_SOURCES`)."""
    return differences(saved, cfg, ignore=OPERATIONAL + CONTINUABLE + INIT_SOURCES)


def get_config(preset: str = "cpu-mini", /, stage: int = 1, **overrides) -> Config:
    """Preset (+ the stage-2 recipe) + overrides, e.g.
    ``get_config("cpu-mini", model={"modalities": "rgb"}, train={"steps": 10})``."""
    if preset not in PRESETS:
        raise PMATrackError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    if "preset" in overrides:
        raise PMATrackError("the preset is chosen by name (--preset), not overridden")
    if stage not in (1, 2):
        raise PMATrackError(f"stage must be 1 or 2, got {stage!r}")
    cfg = merge(Config(preset=preset), PRESETS[preset])
    if stage == 2:
        overrides["train"] = {**STAGE2_TRAIN[preset], **overrides.get("train", {})}
    return merge(cfg, overrides)


def stage2_config(stage1: Config, **overrides) -> Config:
    """The stage-2 config that continues a stage-1 config: same preset and tracker, the stage-2 recipe, overrides.

    ``overrides`` may touch ``align`` and ``train``; a ``model`` override that changes the tracker is an error
    (stage 2 loads the stage-1 weights, which fix the tracker's size).
    """
    if stage1.train.stage != 1:
        raise PMATrackError("stage 2 starts from a stage-1 tracker checkpoint; this one is already stage 2")
    model = overrides.pop("model", {})
    changed = {k: v for k, v in model.items() if getattr(stage1.model, k, object()) != v}
    if changed:
        raise PMATrackError(f"model settings come from the stage-1 checkpoint; it differs in {changed}")
    overrides["train"] = {**STAGE2_TRAIN[stage1.preset], **overrides.get("train", {})}
    return merge(stage1, overrides)            # one merge: the checks see the final config


def config_from_dict(d: dict) -> Config:
    """Rebuild a Config saved with :meth:`Config.to_dict` (strict)."""
    if not isinstance(d, dict):
        raise PMATrackError(f"a stored config must be a mapping, got {type(d).__name__}")
    d = dict(d)
    preset = d.pop("preset", "cpu-mini")
    return merge(Config(preset=check_field_value("preset", preset, "str")), d)
