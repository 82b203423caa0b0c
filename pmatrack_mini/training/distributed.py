"""Several processes, one model: torch's DistributedDataParallel (DDP), launched by ``torchrun``.

    torchrun --nproc_per_node 4 -m pmatrack_mini.cli train ... --device cuda

torchrun starts one process per GPU and sets RANK (global index), WORLD_SIZE and LOCAL_RANK (index on this node).
Each process

* takes the GPU of its LOCAL_RANK (``--device cuda`` means "my GPU"; an explicit ``cuda:N`` is refused, as every
  process would pick the same one) and makes it the current device before anything touches CUDA;
* joins the process group (NCCL on GPUs, gloo on CPU), wraps the network in DDP with ``device_ids=[its GPU]``,
  which averages the gradients over the processes in ``backward``;
* cuts its own share of every batch (``data.sampler``: a pure function of seed, step and rank).

DDP needs every trainable parameter to receive a gradient at every step; the networks make sure of it (stage 2
freezes what a fixed routing never reaches: ``models.pmatrack``), so ``find_unused_parameters`` (a graph
traversal per step) is not needed. Frozen parameters are ignored by DDP.

When a single process runs (WORLD_SIZE unset or 1), everything here is a no-op.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from ..errors import PMATrackError


def local_device(device: str | torch.device) -> torch.device:
    """This process's device: under torchrun, ``cuda`` becomes ``cuda:LOCAL_RANK`` (or ``cuda:0`` when the
    launcher shows each process a single GPU)."""
    dev = torch.device(device)
    if dev.type != "cuda" or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return dev
    if dev.index is not None:
        raise PMATrackError(f"--device {device}: under torchrun each process takes the GPU of its LOCAL_RANK; "
                            f"give --device cuda")
    local, count = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
    if count == 1:
        return torch.device("cuda", 0)
    if local >= count:
        raise PMATrackError(f"LOCAL_RANK {local}, but this node has {count} GPU(s): start at most {count} processes "
                            f"per node (--nproc_per_node)")
    return torch.device("cuda", local)


def setup_distributed(device: str | torch.device = "cpu") -> tuple[int, int, torch.device, bool]:
    """(rank, world size, this process's device, whether this call created the process group).

    Joins the process group when launched with WORLD_SIZE > 1 (or uses the one the caller set up)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = local_device(device)
    if world == 1 and not dist.is_initialized():
        return 0, 1, dev, False
    if dev.type == "cuda":
        torch.cuda.set_device(dev)             # before NCCL creates its communicators on "the current device"
    created = not dist.is_initialized()
    if created:
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), dev, created


def wrap(model: torch.nn.Module, device: torch.device, world: int) -> torch.nn.Module:
    """``model`` in DDP when several processes train (it must already be on ``device``), else as it is."""
    if world == 1:
        return model
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def gather_to_rank0(obj, rank: int, world: int) -> list | None:
    """Every rank's ``obj`` (any picklable value), as a list on rank 0 and None elsewhere. Collective: every
    rank must call it."""
    if world == 1:
        return [obj]
    out = [None] * world if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def shutdown(created: bool) -> None:
    """Leave the process group if this process created it (a caller's own group stays)."""
    if created and dist.is_initialized():
        dist.destroy_process_group()
