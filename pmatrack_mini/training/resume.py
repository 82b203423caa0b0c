"""Exact resume: what a checkpoint holds so that an interrupted run ends with the weights of an uninterrupted one.

The batches need nothing: they are a pure function of (seed, step, rank) (``data.sampler``). What does:

* the weights, the optimiser and the scheduler (``models.checkpoint.save_checkpoint``);
* the random streams a step draws from. Drop-path and the Gumbel noise of stage 2's routers use torch's global
  generators, the CPU one and, on a GPU, the CUDA one of the process's device. Each rank has its own: the ranks'
  states are gathered to rank 0 and written in the one checkpoint file, so that one atomic write saves all of them
  (separate files per rank could be left out of step by a kill between two writes);
* the GradScaler of mixed precision on CUDA: its scale and growth counter decide which steps are skipped.

numpy's and Python's global generators are not drawn from while training (the sampler makes its own per step), so
they are not saved. Rank 0 continues the seeded stream (a one-process run is unchanged); every other rank draws
from its own (seed, rank) stream, so drop-path and Gumbel noise are not repeated across ranks.

A run resumes under another config only where the difference cannot change the weights
(``config.resume_differences``: logging, checkpoint frequency, input workers, initial-weight files). Resuming
with another number of CPU threads, processes, another device type, or with or without ``--amp`` continues the
run, but not step for step as an uninterrupted one: that is allowed, with a note saying so.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import Config, config_from_dict, resume_differences
from ..errors import PMATrackError
from ..models.checkpoint import load_checkpoint
from .distributed import gather_to_rank0


def rank_stream(seed: int, rank: int) -> None:
    """Give rank > 0 its own torch random stream (CPU and every GPU); rank 0 keeps the one ``set_seed`` started."""
    if rank:
        torch.manual_seed(int(np.random.SeedSequence([seed, rank]).generate_state(1)[0]))


def rng_state(device: torch.device) -> dict:
    """This process's torch random state: the CPU generator, and the CUDA one of ``device`` when it is a GPU."""
    state = dict(cpu=torch.get_rng_state())
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def make_scaler(device: torch.device, amp: bool):
    """The loss scaler of fp16 autocast on CUDA; None otherwise (bf16 autocast on CPU needs none)."""
    return torch.amp.GradScaler("cuda") if amp and device.type == "cuda" else None


def checkpoint_extras(rank: int, world: int, device: torch.device, scaler, amp: bool) -> dict | None:
    """The checkpoint entries a resume needs beyond the weights and the optimiser: every rank's random state,
    the scaler, and how the run was carried out. Collective (every rank calls it); None on ranks other than 0."""
    states = gather_to_rank0(rng_state(device), rank, world)
    if rank:
        return None
    extras = dict(rng=states, run=dict(world_size=world, device_type=device.type, amp=bool(amp),
                                       cpu_threads=torch.get_num_threads()))
    if scaler is not None:
        extras["scaler"] = scaler.state_dict()
    return extras


def open_run(last: Path, cfg: Config) -> dict:
    """The state in ``last`` if this config may resume it; a PMATrackError naming the settings that differ."""
    state = load_checkpoint(last)
    diff = resume_differences(config_from_dict(state["config"]), cfg)
    if diff:
        shown = ", ".join(f"{k}: {a!r} saved, {b!r} now" for k, (a, b) in list(diff.items())[:4])
        raise PMATrackError(f"{last}: saved config differs from this run's ({shown}); use another --out or remove it")
    if "optimizer" not in state or "scheduler" not in state:
        raise PMATrackError(f"{last}: holds weights but no optimiser state, so training cannot resume from it")
    return state


def restore(state: dict, model, optimizer, scheduler, scaler, rank: int, world: int, device: torch.device,
            amp: bool) -> list[str]:
    """Put a checkpoint back: weights, optimiser, scheduler, scaler and this rank's random state. Call it last
    before the first step (nothing may draw random numbers in between). Returns notes on what keeps the
    continuation from being step-for-step exact."""
    getattr(model, "module", model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    notes = []
    run = state.get("run", {})
    if run and (run.get("world_size"), run.get("device_type"), run.get("amp")) != (world, device.type, bool(amp)):
        notes.append(f"saved by {run.get('world_size')} process(es) on {run.get('device_type')} with amp="
                     f"{run.get('amp')}, resumed by {world} on {device.type} with amp={bool(amp)}: training continues, "
                     f"but not step for step as an uninterrupted run")
    if device.type == "cpu" and run.get("cpu_threads", torch.get_num_threads()) != torch.get_num_threads():
        notes.append(f"saved with {run['cpu_threads']} CPU thread(s), resumed with {torch.get_num_threads()}: float "
                     f"sums are split differently, so training continues, but not step for step")
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    states = state.get("rng") or ([dict(cpu=state["torch_rng"])] if "torch_rng" in state else [])  # older files
    if rank < len(states):
        set_rng_state(states[rank], device)
    return notes
