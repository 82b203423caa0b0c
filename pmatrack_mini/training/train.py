"""Training, both stages, one loop, on CPU or GPU, one process or DDP.

    pmatrack-mini train --preset cpu-mini --data DIR [DIR ...] --out RUN [--steps N] [--device cpu|cuda] [--amp]
    pmatrack-mini train --stage 2 --init RUN/final.pt --data DIR [DIR ...] --out RUN2 [--set align.lambda_cost=0.05]
    torchrun --nproc_per_node 4 -m pmatrack_mini.cli train --preset paper --data DIR --out RUN --device cuda --amp \
        --set model.pretrained=WEIGHTS.pth train.num_workers=6

* Stage 1 trains the tracker (OSTrack recipe): AdamW, backbone lr x ``backbone_lr_mult``, linear warm-up then
  cosine (or x0.1 step at 80 %), grad clipping, L_track. ``model.pretrained`` first loads MAE / timm ViT or OSTrack
  weights into the backbone (``models.checkpoint.load_pretrained``; what was loaded, missing and left unused is
  printed and counted in the run's first log record). The paper preset lowers the backbone's rate for such
  weights, so training it without them warns.
* Stage 2 (``train.stage=2``) builds PMATrack's network, loads the stage-1 tracker from ``train.init``, freezes it
  (``train.freeze_tracker``; unfrozen it learns at ``tracker_lr_mult`` x lr) and trains the alignment stages with
  L_track + lambda_p L_p + lambda_r L_r + L_CPESL (``losses.alignment_loss``). Training pairs are cut through a
  pre-alignment as the tracker cuts them (``train.prealign``, default ``mixture`` in stage 2: see ``data.sampler``).
  Stage 2 never reads ``model.pretrained`` (its tracker comes from ``train.init``).
* Input: ``train.num_workers`` DataLoader processes per rank cut the batches (``data.sampler.batch_loader``);
  the batches are the same for any number of workers.
* Checkpoints ``RUN/last.pt`` (and ``final.pt``) are written atomically and hold the config, the step, the model /
  optimiser / scheduler states and what else an exact resume needs (``resume``: every rank's random states, the
  GradScaler); training resumes from ``last.pt`` and ends with the same weights as an uninterrupted run.
  Operational settings (``config.OPERATIONAL``) may change between the two; another thread count continues the
  run with a note (it changes the last bits of the sums).
* Multi-GPU / multi-node: torch's DDP, launched by ``torchrun`` (``distributed``); gloo on CPU.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path

import torch

from ..config import Config, get_config, parse_overrides, stage2_config
from ..data.dataset import load_dataset
from ..data.sampler import batch_loader
from ..errors import PMATrackError
from ..models.checkpoint import (build_model, checkpoint_config, load_pretrained, load_stage1, pretrained_summary,
                                 save_checkpoint)
from ..utils import atomic_path, check_device, leftover_temporaries, set_seed
from .distributed import barrier, setup_distributed, shutdown, wrap
from .losses import alignment_loss, tracking_loss
from .resume import checkpoint_extras, make_scaler, open_run, rank_stream, restore


# ----------------------------------------------------------------------------- pieces


def param_groups(model, cfg: Config) -> list:
    """Stage 1: [backbone at lr x backbone_lr_mult, head at lr]. Stage 2: [tracker at lr x tracker_lr_mult (empty
    when frozen), alignment stages at lr]. The last group always runs at the base rate (the logged lr)."""
    net = getattr(model, "module", model)                 # unwrap DDP
    lr = cfg.train.lr
    if cfg.train.stage == 2:
        align, tracker = net.trainable_parameters()
        return [dict(params=tracker, lr=lr * cfg.train.tracker_lr_mult), dict(params=align, lr=lr)]
    backbone = [p for n, p in net.named_parameters() if n.startswith("backbone.") and p.requires_grad]
    rest = [p for n, p in net.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
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


def as_float32(obj):
    """Floating tensors in (nested dicts / lists / tuples of) ``obj`` in float32: the losses, homography inverses
    included, run in full precision whatever autocast produced."""
    if torch.is_tensor(obj):
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: as_float32(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(as_float32(v) for v in obj)
    return obj


def compute_loss(out: dict, batch: dict, cfg: Config):
    """L_track, plus the alignment losses in stage 2. Returns (loss, stats of floats)."""
    t = cfg.train
    out = as_float32(out)
    loss, stats = tracking_loss(out, batch["box"], (t.giou_weight, t.l1_weight, t.focal_weight))
    if t.stage == 2:
        l_align, s_align = alignment_loss(out["align"], batch, cfg)
        loss = loss + l_align
        stats.update(s_align, loss=float(loss.detach()))
    return loss, stats


def load_sequences(data) -> list:
    """A dataset folder, a list of folders, or a list of Sequences -> [Sequence]."""
    if isinstance(data, (str, Path)):
        return load_dataset(data)
    return [s for d in data for s in (load_dataset(d) if isinstance(d, (str, Path)) else [d])]


def initial_network(cfg: Config, load_init: bool = True):
    """(the network to train, the pretrained-loading report or None).

    Stage 1: from scratch, or its backbone from ``model.pretrained``; stage 2: the stage-1 tracker of
    ``train.init`` loaded. ``load_init=False`` (a resumed run, whose weights come from its last.pt) reads neither."""
    model, report = build_model(cfg), None
    if cfg.train.stage == 2:
        if not cfg.train.init:
            raise PMATrackError("stage 2 starts from a stage-1 tracker: give --init CHECKPOINT (train.init)")
        if load_init:
            load_stage1(model, cfg.train.init)
    elif cfg.model.pretrained and load_init:
        report = load_pretrained(model, cfg.model.pretrained)
    return model, report


def build_for_training(cfg: Config):
    """The network to train with its initial weights (:func:`initial_network` without the report)."""
    return initial_network(cfg)[0]


def train_step(model, batch: dict, optimizer, cfg: Config, device, scaler=None, amp: bool = False):
    """One optimisation step. Returns stats (floats). Under DDP, gradients are averaged over ranks."""
    model.train()
    b = {k: v.to(device, non_blocking=True) for k, v in batch.items()
         if v.is_floating_point() or v.dtype == torch.uint8}                     # images, boxes, homographies
    b = {k: v.float().div_(255.0) if v.dtype == torch.uint8 else v for k, v in b.items()}   # loader's uint8 images
    dev_type = torch.device(device).type
    with torch.autocast(dev_type, enabled=amp, dtype=torch.float16 if dev_type == "cuda" else torch.bfloat16):
        out = model(b["z_rgb"], b["x_rgb"], b["z_tir"], b["x_tir"])
    loss, stats = compute_loss(out, b, cfg)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite loss {float(loss)} ({stats})")
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if cfg.train.grad_clip > 0:
        params = [p for p in model.parameters() if p.requires_grad]
        stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip))
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return stats


def progress_fields(stats: dict) -> dict:
    """What the progress bar shows: loss, GIoU and speed; in stage 2 the alignment error at the target
    (RGB px, median) before alignment and after the last stage."""
    fields = dict(loss=f"{stats['loss']:.3f}", giou=f"{stats['giou_score']:.2f}", sps=f"{stats['samples_per_s']:.1f}")
    errs = [k for k in stats if k.startswith("err_") and k != "err_before"]
    if errs:
        fields["align_px"] = f"{stats['err_before']:.1f}->{stats[errs[-1]]:.1f}"
    return fields


# ----------------------------------------------------------------------------- the loop


def train(cfg: Config, data: str | Path | list, out_dir: str | Path, device: str = "cpu", amp: bool = False,
          resume: bool = True, stop_after: int | None = None, progress: bool = True) -> dict:
    """Train ``cfg`` on a dataset folder (or a list of folders / Sequences); checkpoints go to ``out_dir``.

    ``stop_after`` ends the run after that many steps of this call (the schedule still spans
    ``cfg.train.steps``): an interrupted run, for tests and time-boxed jobs. Under torchrun, every process calls
    this; ``device`` ``cuda`` then means the process's own GPU. Returns a summary.
    """
    rank, world, dev, created = setup_distributed(device)
    threads = torch.get_num_threads()
    try:
        return _train(cfg, data, Path(out_dir), rank, world, dev, amp, resume, stop_after, progress)
    finally:
        torch.set_num_threads(threads)                   # train.num_threads holds for this run only
        shutdown(created)


def _train(cfg, data, out_dir, rank, world, dev, amp, resume, stop_after, progress) -> dict:
    from tqdm.auto import tqdm

    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    set_seed(cfg.train.seed)
    sequences = load_sequences(data)
    if cfg.train.stage == 2:
        missing = [s.name for s in sequences if s.homography is None]
        if missing:
            raise PMATrackError(f"stage 2 supervises alignment with the exact homography; {missing[0]} has no "
                                f"homography.txt (generated data has one)")
    last = out_dir / "last.pt"
    state = open_run(last, cfg) if resume and last.is_file() else None
    start = int(state["step"]) if state is not None else 0
    end = cfg.train.steps if stop_after is None else min(cfg.train.steps, start + stop_after)
    per_rank = max(1, cfg.train.batch_size // world)
    loader = batch_loader(sequences, cfg.model, cfg.train, start, end, per_rank, rank, pin_memory=dev.type == "cuda")
    net, report = initial_network(cfg, load_init=state is None)
    rank_stream(cfg.train.seed, rank)
    model = wrap(net.to(dev), dev, world)
    optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    scaler = make_scaler(dev, amp)
    if rank == 0:
        if report is not None:
            print(pretrained_summary(report))
        elif state is None and cfg.preset == "paper" and cfg.train.stage == 1 and not cfg.model.pretrained:
            warnings.warn("the paper preset trains the backbone at 0.1 x lr, assuming MAE / OSTrack weights, but "
                          "model.pretrained is not set: the backbone starts from random weights "
                          "(--set model.pretrained=FILE)", UserWarning, stacklevel=3)
        for tmp in leftover_temporaries(last):            # a process killed while writing a checkpoint
            tmp.unlink()
            print(f"removed {tmp.name}, a checkpoint write that did not finish")
    notes = []
    if state is not None:
        notes = restore(state, model, optimizer, scheduler, scaler, rank, world, dev, amp)   # last: the RNG
        if rank == 0 and progress:
            print(f"resuming {last} at step {start}" + "".join(f"; note: {n}" for n in notes))

    desc = f"train {cfg.preset}/" + (cfg.model.modalities if cfg.train.stage == 1 else "stage2")
    bar = tqdm(range(start, end), desc=desc, disable=not progress or rank != 0, initial=start, total=cfg.train.steps)
    log = []
    t0, seen = time.perf_counter(), 0
    for step, batch in zip(bar, loader):
        if cfg.train.stage == 2:
            net.set_router_warmup(step < cfg.align.router_warmup * cfg.train.steps)
        stats = train_step(model, batch, optimizer, cfg, dev, scaler=scaler, amp=amp)
        scheduler.step()
        seen += per_rank * world
        if (step + 1) % cfg.train.log_every == 0 or step + 1 == end:
            sps = seen / (time.perf_counter() - t0)
            stats.update(step=step + 1, lr=optimizer.param_groups[-1]["lr"], samples_per_s=sps)
            if report is not None and not log:
                stats.update({f"pretrained_{k}": v if k == "loaded" else len(v)
                              for k, v in report.items() if k != "path"})
            log.append(stats)
            bar.set_postfix(progress_fields(stats))
        if (step + 1) % cfg.train.ckpt_every == 0 or step + 1 == end:
            extras = checkpoint_extras(rank, world, dev, scaler, amp)      # every rank: gathers the RNG states
            if rank == 0:
                save_checkpoint(last, model, cfg, step + 1, optimizer, scheduler, **extras)
            barrier(world)
    bar.close()
    if rank == 0 and end == cfg.train.steps and end > start:
        save_checkpoint(out_dir / "final.pt", model, cfg, end)
    if rank == 0 and log:
        with atomic_path(out_dir / f"log_{start:06d}_{end:06d}.json") as tmp:
            tmp.write_text(json.dumps(log, indent=1))
    barrier(world)                                         # nobody leaves while rank 0 still writes
    elapsed = time.perf_counter() - t0
    return dict(start=start, end=end, seconds=elapsed, samples_per_s=seen / max(elapsed, 1e-9),
                last=log[-1] if log else None, notes=notes, model=model, device=str(dev), rank=rank, world=world)


# ----------------------------------------------------------------------------- CLI


def add_cli(sub) -> None:
    t = sub.add_parser("train", help="train the tracker (stage 1) or PMATrack's alignment network (stage 2)")
    t.add_argument("--stage", type=int, choices=[1, 2], default=1,
                   help="1: the tracker; 2: the alignment stages on a frozen stage-1 tracker (needs --init)")
    t.add_argument("--init", default=None, help="stage 2: the stage-1 tracker checkpoint to start from")
    t.add_argument("--preset", default=None, help="cpu-mini (default) or paper; stage 2 takes the --init's")
    t.add_argument("--data", nargs="+", required=True, help="dataset folder(s) in the LasHeR layout")
    t.add_argument("--out", required=True, help="run folder (checkpoints, logs); resumes from last.pt")
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--modalities", choices=["rgbt", "rgb", "tir"], default=None)
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--device", default="cpu")
    t.add_argument("--amp", action="store_true", help="mixed precision (fp16 on CUDA, bf16 on CPU)")
    t.add_argument("--set", nargs="*", default=[],
                   help="strict overrides, e.g. model.depth=4 train.lr=1e-3 align.experts=tre,fme")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=_cmd_train)


def config_from_args(args) -> Config:
    """The run's config from the command line (stage 2: the --init checkpoint's tracker + the stage-2 recipe)."""
    flags = (("train.steps", args.steps), ("train.batch_size", args.batch_size), ("train.seed", args.seed),
             ("model.modalities", args.modalities))
    overrides = parse_overrides(list(args.set) + [f"{key}={val}" for key, val in flags if val is not None])
    if args.stage == 1:
        if args.init:
            raise PMATrackError("--init is for stage 2 (train --stage 2 --init STAGE1_CHECKPOINT)")
        return get_config(args.preset or "cpu-mini", **overrides)
    if not args.init:
        raise PMATrackError("stage 2 starts from a stage-1 tracker: give --init CHECKPOINT")
    stage1 = checkpoint_config(args.init)
    if args.preset and args.preset != stage1.preset:
        raise PMATrackError(f"{args.init}: stage-1 checkpoint preset is {stage1.preset!r}, not {args.preset!r}")
    overrides.setdefault("train", {})["init"] = str(args.init)
    return stage2_config(stage1, **overrides)


def _cmd_train(args) -> None:
    check_device(args.device)
    cfg = config_from_args(args)
    res = train(cfg, args.data, args.out, device=args.device, amp=args.amp, progress=not args.quiet)
    if res["last"]:
        print(f"steps {res['start']}->{res['end']}  {res['samples_per_s']:.1f} samples/s  "
              f"loss {res['last']['loss']:.3f}  checkpoint {Path(args.out) / 'last.pt'}")


__all__ = ["train", "train_step", "compute_loss", "build_for_training", "initial_network", "config_from_args",
           "setup_distributed"]
