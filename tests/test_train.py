import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from pmatrack_mini.config import get_config
from pmatrack_mini.data import load_dataset
from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.models import load_checkpoint, model_from_checkpoint
from pmatrack_mini.train import train

TINY = dict(model=dict(embed_dim=64, depth=1, num_heads=2, head_channels=32),
            train=dict(steps=4, batch_size=4, ckpt_every=2, log_every=1, warmup_steps=1))


def _tiny(**train):
    return get_config("cpu-mini", model=TINY["model"], train={**TINY["train"], **train})


@pytest.fixture(scope="module")
def samples():
    return load_dataset("data_samples")


def test_resume_gives_the_same_weights(tmp_path, samples):
    cfg = _tiny()
    full = train(cfg, samples, tmp_path / "a", progress=False)["model"].state_dict()
    first = train(cfg, samples, tmp_path / "b", stop_after=2, progress=False)
    assert first["end"] == 2 and load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 2
    resumed = train(cfg, samples, tmp_path / "b", progress=False)
    assert resumed["start"] == 2 and resumed["end"] == 4
    for k, v in full.items():
        assert torch.equal(v, resumed["model"].state_dict()[k]), k
    # and the weights did change during training
    init = train(_tiny(steps=1), samples, tmp_path / "c", stop_after=0, progress=False)["model"].state_dict()
    assert any(not torch.equal(full[k], init[k]) for k in full)


def test_resume_refuses_a_different_config(tmp_path, samples):
    train(_tiny(), samples, tmp_path / "a", stop_after=1, progress=False)
    with pytest.raises(PMATrackError, match="saved config differs"):
        train(_tiny(lr=1e-3), samples, tmp_path / "a", progress=False)


def test_checkpoint_rebuilds_model(tmp_path, samples):
    cfg = _tiny(steps=1)
    res = train(cfg, samples, tmp_path, progress=False)
    model, cfg2, step = model_from_checkpoint(tmp_path / "final.pt")
    assert cfg2 == cfg and step == 1
    for k, v in res["model"].state_dict().items():
        assert torch.equal(v, model.state_dict()[k])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, result_file):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      LOCAL_RANK=str(rank))
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from pmatrack_mini.data.sampler import PairSampler
    from pmatrack_mini.models import build_model
    from pmatrack_mini.train import setup_distributed, train_step

    torch.set_num_threads(1)
    got_rank, got_world = setup_distributed("cpu")
    assert (got_rank, got_world) == (rank, world)
    cfg = get_config("cpu-mini", model=TINY["model"], train=dict(grad_clip=0.0))
    torch.manual_seed(0)
    local = build_model(cfg)
    torch.manual_seed(0)
    ddp = DDP(build_model(cfg))
    batch = PairSampler(load_dataset("data_samples"), cfg.model, cfg.train).batch(0, 2, rank=rank)
    # gradients of this rank's batch alone
    train_step(local, batch, torch.optim.SGD(local.parameters(), lr=0.0), cfg, "cpu")
    mine = torch.cat([p.grad.flatten() for p in local.parameters()])
    # DDP gradients through the training code path
    train_step(ddp, batch, torch.optim.SGD(ddp.parameters(), lr=0.0), cfg, "cpu")
    synced = torch.cat([p.grad.flatten() for p in ddp.module.parameters()])
    gathered = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine)
    mean = torch.stack(gathered).mean(0)
    ok = torch.allclose(synced, mean, rtol=1e-4, atol=1e-6) and not torch.allclose(gathered[0], gathered[1])
    if rank == 0:
        with open(result_file, "w") as f:
            f.write("ok" if ok else f"mismatch {float((synced - mean).abs().max())}")
    dist.destroy_process_group()


def test_ddp_averages_gradients_over_two_gloo_processes(tmp_path):
    result = tmp_path / "ddp.txt"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(result)), nprocs=2, join=True)
    assert result.read_text() == "ok"
