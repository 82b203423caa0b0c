"""Stage-1 training of the tracker (OSTrack recipe), on CPU or GPU, one process or DDP.

    pmatrack-mini train --preset cpu-mini --data DIR --out RUN_DIR [--steps N] [--device cpu|cuda] [--amp]
    torchrun --nproc_per_node 4 -m pmatrack_mini.cli train --preset paper --data DIR --out RUN_DIR --device cuda

* AdamW, backbone lr x ``backbone_lr_mult``, linear warm-up then cosine (or x0.1 step at 80 %), grad clipping.
* Checkpoints ``RUN_DIR/last.pt`` (and ``final.pt``) are written atomically and hold the config, the step,
  model / optimiser / scheduler states and the torch RNG; training resumes from ``last.pt`` and ends with
  the same weights as an uninterrupted run (batches are a pure function of seed, step and rank).
* Multi-GPU / multi-node: torch's DDP, launched by ``torchrun`` (it sets RANK / WORLD_SIZE); gloo on CPU.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from .config import Config, config_from_dict, get_config, parse_overrides
from .data.dataset import load_dataset
from .data.sampler import PairSampler
from .errors import PMATrackError
from .losses import tracking_loss
from .models import build_model
from .utils import atomic_path, check_device, set_seed


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path, model, cfg: Config, step: int, optimizer=None, scheduler=None) -> None:
    net = model.module if isinstance(model, DDP) else model
    state = dict(format="pmatrack-mini/1", config=cfg.to_dict(), step=step, model=net.state_dict(),
                 torch_rng=torch.get_rng_state())
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; clear errors for missing / truncated / foreign files."""
    path = Path(path)
    if not path.is_file():
        raise PMATrackError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, pickle of arbitrary objects, not a torch file ...
        raise PMATrackError(f"{path}: not a readable checkpoint (truncated or foreign file): {type(exc).__name__}") from None
    if (not isinstance(state, dict) or state.get("format") != "pmatrack-mini/1"
            or not isinstance(state.get("model"), dict) or not isinstance(state.get("config"), dict)
            or not isinstance(state.get("step"), int)):
        raise PMATrackError(f"{path}: not a pmatrack-mini checkpoint (no format tag, model state, config or step)")
    return state


def model_from_checkpoint(path, device="cpu", expect_preset: str | None = None):
    """Rebuild the network from the config stored in the checkpoint; returns (model, cfg, step)."""
    state = load_checkpoint(path)
    cfg = config_from_dict(state["config"])
    if expect_preset is not None and cfg.preset != expect_preset:
        raise PMATrackError(f"{path}: checkpoint preset is {cfg.preset!r}, but {expect_preset!r} was asked for")
    model = build_model(cfg)
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    if missing or unexpected:
        raise PMATrackError(f"{path}: weights do not fit the stored config "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.to(device).eval(), cfg, int(state["step"])


# ----------------------------------------------------------------------------- pieces


def setup_distributed(device: str):
    """(rank, world_size). Initialises torch.distributed when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if str(device).startswith("cuda") else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def param_groups(model, cfg: Config) -> list:
    net = model.module if isinstance(model, DDP) else model
    backbone = [p for n, p in net.named_parameters() if n.startswith("backbone.") and p.requires_grad]
    rest = [p for n, p in net.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
    lr = cfg.train.lr
    return [dict(params=backbone, lr=lr * cfg.train.backbone_lr_mult), dict(params=rest, lr=lr)]


def lr_lambda(cfg: Config):
    T, warm = cfg.train.steps, cfg.train.warmup_steps

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.train.schedule == "step":
            return 0.1 if step >= 0.8 * T else 1.0
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, T - warm)))
    return f


def train_step(model, batch: dict, optimizer, cfg: Config, device, scaler=None, amp: bool = False):
    """One optimisation step. Returns stats (floats). Under DDP, gradients are averaged over ranks."""
    model.train()
    b = {k: v.to(device, non_blocking=True) for k, v in batch.items() if v.is_floating_point()}
    dev_type = torch.device(device).type
    with torch.autocast(dev_type, enabled=amp, dtype=torch.float16 if dev_type == "cuda" else torch.bfloat16):
        out = model(b["z_rgb"], b["x_rgb"], b["z_tir"], b["x_tir"])
    out = {k: (v.float() if torch.is_tensor(v) else v) for k, v in out.items()}
    t = cfg.train
    loss, stats = tracking_loss(out, b["box"], (t.giou_weight, t.l1_weight, t.focal_weight))
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite loss {float(loss)} ({stats})")
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if t.grad_clip > 0:
        stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip))
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return stats


# ----------------------------------------------------------------------------- the loop


def train(cfg: Config, data: str | Path | list, out_dir: str | Path, device: str = "cpu", amp: bool = False,
          resume: bool = True, stop_after: int | None = None, progress: bool = True) -> dict:
    """Train ``cfg`` on a dataset folder (or a list of Sequences); checkpoints go to ``out_dir``.

    ``stop_after`` ends the run after that many steps of this call (the schedule still spans
    ``cfg.train.steps``): an interrupted run, for tests and time-boxed jobs. Returns a summary.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    rank, world = setup_distributed(device)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    set_seed(cfg.train.seed)
    sequences = load_dataset(data) if isinstance(data, (str, Path)) else data
    sampler = PairSampler(sequences, cfg.model, cfg.train)
    model = build_model(cfg).to(device)
    if world > 1:
        model = DDP(model, device_ids=[torch.device(device).index] if str(device).startswith("cuda") else None)
    optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    scaler = torch.amp.GradScaler("cuda") if amp and str(device).startswith("cuda") else None

    start = 0
    last = out_dir / "last.pt"
    if resume and last.is_file():
        state = load_checkpoint(last)
        saved = config_from_dict(state["config"])
        if saved != cfg:
            raise PMATrackError(f"{last}: saved config differs from this run's; use another --out or remove it")
        (model.module if world > 1 else model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start = int(state["step"])
        if rank == 0 and progress:
            print(f"resuming {last} at step {start}")

    per_rank = max(1, cfg.train.batch_size // world)
    end = cfg.train.steps if stop_after is None else min(cfg.train.steps, start + stop_after)
    bar = tqdm(range(start, end), desc=f"train {cfg.preset}/{cfg.model.modalities}", disable=not progress or rank != 0,
               initial=start, total=cfg.train.steps)
    log = []
    t0, seen = time.perf_counter(), 0
    for step in bar:
        batch = sampler.batch(step, per_rank, seed=cfg.train.seed, rank=rank)
        stats = train_step(model, batch, optimizer, cfg, device, scaler=scaler, amp=amp)
        scheduler.step()
        seen += per_rank * world
        if (step + 1) % cfg.train.log_every == 0 or step + 1 == end:
            sps = seen / (time.perf_counter() - t0)
            stats.update(step=step + 1, lr=optimizer.param_groups[1]["lr"], samples_per_s=sps)
            log.append(stats)
            bar.set_postfix(loss=f"{stats['loss']:.3f}", giou=f"{stats['giou_score']:.2f}", sps=f"{sps:.1f}")
        if rank == 0 and ((step + 1) % cfg.train.ckpt_every == 0 or step + 1 == end):
            save_checkpoint(last, model, cfg, step + 1, optimizer, scheduler)
    bar.close()
    if rank == 0 and end == cfg.train.steps and end > start:
        save_checkpoint(out_dir / "final.pt", model, cfg, end)
    if rank == 0 and log:
        with atomic_path(out_dir / f"log_{start:06d}_{end:06d}.json") as tmp:
            tmp.write_text(json.dumps(log, indent=1))
    elapsed = time.perf_counter() - t0
    return dict(start=start, end=end, seconds=elapsed, samples_per_s=seen / max(elapsed, 1e-9),
                last=log[-1] if log else None, model=model)


# ----------------------------------------------------------------------------- CLI


def add_cli(sub) -> None:
    t = sub.add_parser("train", help="train the tracker (stage 1)")
    t.add_argument("--preset", default="cpu-mini")
    t.add_argument("--data", required=True, help="dataset folder in the LasHeR layout")
    t.add_argument("--out", required=True, help="run folder (checkpoints, logs); resumes from last.pt")
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--modalities", choices=["rgbt", "rgb", "tir"], default=None)
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--device", default="cpu")
    t.add_argument("--amp", action="store_true", help="mixed precision (fp16 on CUDA, bf16 on CPU)")
    t.add_argument("--set", nargs="*", default=[], help="strict overrides, e.g. model.depth=4 train.lr=1e-3")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=_cmd_train)


def _cmd_train(args) -> None:
    check_device(args.device)
    flags = (("train.steps", args.steps), ("train.batch_size", args.batch_size), ("train.seed", args.seed),
             ("model.modalities", args.modalities))
    overrides = parse_overrides(list(args.set) + [f"{key}={val}" for key, val in flags if val is not None])
    cfg = get_config(args.preset, **overrides)
    res = train(cfg, args.data, args.out, device=args.device, amp=args.amp, progress=not args.quiet)
    if res["last"]:
        print(f"steps {res['start']}->{res['end']}  {res['samples_per_s']:.1f} samples/s  "
              f"loss {res['last']['loss']:.3f}  checkpoint {Path(args.out) / 'last.pt'}")


__all__ = ["train", "train_step", "save_checkpoint", "load_checkpoint", "model_from_checkpoint"]
