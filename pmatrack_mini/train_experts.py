"""Training and evaluating the alignment experts alone, on a frozen stage-1 backbone.

    pmatrack-mini train-experts --backbone RUN/final.pt --data DIR [DIR ...] --out OUT [--experts tre fme dpe]

Each expert reads the template and search tokens of both modalities after block ``layer`` (shallow: 1 of the
cpu-mini's 0..5) and regresses the centre offset of the TIR target relative to the RGB target in the search
crop (smooth L1, in feature cells), plus, for TRE, the response BCE L_r against the target masks. The ground
truth comes from the exact crop homography: ``geometry.alignment_params(H_crop, c_rgb)``.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import require_nonnegative, require_positive
from .data.dataset import Sequence, load_dataset
from .data.sampler import PairSampler
from .errors import PMATrackError
from .geometry import alignment_params
from .models.experts import EXPERTS, build_expert, cell_mask, expert_loss
from .utils import atomic_path, set_seed

ATTRIBUTE_SUBSETS = ("distractor", "occlusion", "low_illumination", "thermal_crossover")


@dataclass
class ExpertTrainConfig:
    layer: int = 1                 # 0-based block index whose output the expert reads
    steps: int = 400
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    response_weight: float = 0.5   # lambda_r (TRE only)
    seed: int = 0

    def __post_init__(self):
        require_positive(self, "experts", ("steps", "batch_size", "lr"))
        require_nonnegative(self, "experts", ("layer", "weight_decay", "response_weight", "seed"))


class FrozenFeatures:
    """Token states of a frozen RGBT baseline after block ``layer``, split per modality."""

    def __init__(self, model, layer: int):
        if model.cfg.modalities != "rgbt":
            raise PMATrackError(f"experts need an RGBT backbone, this one is {model.cfg.modalities!r}")
        if not 0 <= layer < model.cfg.depth:
            raise PMATrackError(f"layer must be in 0..{model.cfg.depth - 1}, got {layer}")
        self.model, self.layer = model.eval(), layer
        for p in model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def __call__(self, batch: dict):
        bb = self.model.backbone
        _, states = bb([batch["z_rgb"], batch["z_tir"]], [batch["x_rgb"], batch["x_tir"]], upto=self.layer)
        (z_r, x_r), (z_t, x_t) = bb.split(states[self.layer])
        return (z_r, x_r), (z_t, x_t)


def targets(batch: dict, search_size: int) -> torch.Tensor:
    """(B, 4) ground-truth dx, dy (crop px), log sx, log sy at the RGB target centre."""
    center = batch["box"][:, :2].double() * search_size - 0.5          # normalised -> crop px (pixel centres)
    return alignment_params(batch["H_crop"].double(), center).float()


def expert_step_loss(name: str, out: dict, batch: dict, tgt: torch.Tensor, patch: int, grid: int,
                     response_weight: float) -> torch.Tensor:
    loss = expert_loss(out["params"], tgt, patch, with_scale=False)
    if name == "tre":  # L_r: the response should light up on the target cells of each modality
        loss = loss + response_weight * (
            F.binary_cross_entropy_with_logits(out["response_rgb"], cell_mask(batch["box"], grid))
            + F.binary_cross_entropy_with_logits(out["response_tir"], cell_mask(batch["tir_box"], grid)))
    return loss


def train_expert(name: str, features: FrozenFeatures, sampler: PairSampler, cfg: ExpertTrainConfig,
                 progress: bool = True):
    """Returns (expert, log)."""
    from tqdm.auto import tqdm

    mcfg = features.model.cfg
    set_seed(cfg.seed)
    expert = build_expert(name, mcfg.embed_dim, mcfg.feat_size, mcfg.search_size, stage="center")
    opt = torch.optim.AdamW(expert.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / cfg.steps)))
    log = []
    bar = tqdm(range(cfg.steps), desc=f"expert {name}", disable=not progress)
    for step in bar:
        batch = sampler.batch(step, cfg.batch_size, seed=cfg.seed + 1000)
        rgb, tir = features(batch)
        tgt = targets(batch, mcfg.search_size)
        expert.train()
        out = expert(rgb, tir)
        loss = expert_step_loss(name, out, batch, tgt, mcfg.patch_size, mcfg.feat_size, cfg.response_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(expert.parameters(), 5.0)
        opt.step()
        sched.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            err = (out["params"][:, :2] - tgt[:, :2]).norm(dim=1).median().item()
            log.append(dict(step=step, loss=float(loss.detach()), median_err_crop_px=err))
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", err=f"{err:.1f}px")
    return expert.eval(), log


@torch.no_grad()
def offset_errors(experts: dict, features: FrozenFeatures, sampler: PairSampler, batches: int, batch_size: int,
                  seed: int = 12345) -> dict:
    """Per-sample offset errors in RGB image px: {'before': (n,), name: (n,), 'attributes': {attr: (n,) bool}}."""
    size = features.model.cfg.search_size
    res = {"before": []}
    res.update({n: [] for n in experts})
    attrs = {a: [] for a in ATTRIBUTE_SUBSETS}
    for k in range(batches):
        batch = sampler.batch(k, batch_size, seed=seed)
        rgb, tir = features(batch)
        tgt = targets(batch, size)
        px = batch["px_per_crop_px"]
        res["before"].append((tgt[:, :2].norm(dim=1) * px).numpy())
        for n, e in experts.items():
            res[n].append(((e(rgb, tir)["params"][:, :2] - tgt[:, :2]).norm(dim=1) * px).numpy())
        for s, f in zip(batch["seq"].tolist(), batch["frame"].tolist()):
            seq: Sequence = sampler.seqs[s]
            for a in ATTRIBUTE_SUBSETS:
                attrs[a].append(bool(seq.attributes.get(a, np.zeros(len(seq), bool))[f]))
    out = {k: np.concatenate(v) for k, v in res.items()}
    out["attributes"] = {a: np.asarray(v, bool) for a, v in attrs.items()}
    return out


def error_table(errs: dict, names) -> dict:
    """{subset: {'n', 'before': (median, p90), name: (median, p90)}} for all samples and each attribute."""
    subsets = {"all": np.ones_like(errs["before"], bool)}
    subsets.update(errs["attributes"])
    table = {}
    for sub, mask in subsets.items():
        if mask.sum() == 0:
            continue
        row = {"n": int(mask.sum())}
        for k in ["before"] + list(names):
            v = errs[k][mask]
            row[k] = [float(np.median(v)), float(np.percentile(v, 90))]
        table[sub] = row
    return table


def save_experts(experts: dict, path, meta: dict) -> None:
    state = dict(format="pmatrack-mini-experts/1", meta=meta, experts={n: e.state_dict() for n, e in experts.items()})
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def add_cli(sub) -> None:
    t = sub.add_parser("train-experts", help="train the alignment experts alone on a frozen stage-1 backbone")
    t.add_argument("--backbone", required=True, help="stage-1 RGBT checkpoint (pmatrack-mini train)")
    t.add_argument("--data", nargs="+", required=True, help="dataset folder(s) with homography.txt (generated)")
    t.add_argument("--out", required=True, help="folder for experts.pt and train_log.json")
    t.add_argument("--experts", nargs="+", choices=list(EXPERTS), default=list(EXPERTS))
    t.add_argument("--steps", type=int, default=ExpertTrainConfig.steps)
    t.add_argument("--layer", type=int, default=ExpertTrainConfig.layer)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=_cmd)


def load_training_pairs(model_cfg, folders, seed: int = 0) -> PairSampler:
    from .config import TrainConfig

    seqs = [s for d in folders for s in load_dataset(d)]
    missing = [s.name for s in seqs if s.homography is None]
    if missing:
        raise PMATrackError(f"expert training needs homography.txt (exact offsets); missing in {missing[0]}")
    return PairSampler(seqs, model_cfg, TrainConfig(seed=seed))


def _cmd(args) -> None:
    from .train import model_from_checkpoint

    ecfg = ExpertTrainConfig(layer=args.layer, steps=args.steps, seed=args.seed)
    model, cfg, _ = model_from_checkpoint(args.backbone)
    feats = FrozenFeatures(model, ecfg.layer)
    sampler = load_training_pairs(cfg.model, args.data, ecfg.seed)
    trained, logs = {}, {}
    for name in args.experts:
        trained[name], logs[name] = train_expert(name, feats, sampler, ecfg, progress=not args.quiet)
    out = Path(args.out)
    save_experts(trained, out / "experts.pt", dict(config=asdict(ecfg), backbone=str(args.backbone)))
    with atomic_path(out / "train_log.json") as tmp:
        tmp.write_text(json.dumps(logs, indent=1))
    print(f"wrote {out / 'experts.pt'}")


def notebook_backbone(work: str | Path, steps: int, seed: int = 0):
    """A small stage-1 RGBT backbone for the notebooks: trained once into ``work/backbone_<steps>``, then reused
    (training resumes from ``last.pt`` and stops at once when it is complete). Returns (model, cfg)."""
    from .config import get_config
    from .data.synth import cached_dataset
    from .train import model_from_checkpoint, train

    work = Path(work)
    train_dir = work / "train_aligned"
    cached_dataset(train_dir, 6 if steps <= 50 else 24, 60 if steps <= 50 else 100, "none", 100 + seed, progress=False)
    cfg = get_config("cpu-mini", train=dict(steps=steps, batch_size=16 if steps <= 50 else 32, log_every=5,
                                            warmup_steps=min(50, max(1, steps // 6)), seed=seed))
    run = work / f"backbone_{steps}"
    train(cfg, train_dir, run, progress=False)
    model, cfg, _ = model_from_checkpoint(run / "final.pt")
    return model, cfg
