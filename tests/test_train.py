import json
import os
import signal
import socket

import pytest
import torch
import torch.multiprocessing as mp

from pmatrack_mini.config import get_config, merge
from pmatrack_mini.data import load_dataset
from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.models import load_checkpoint, model_from_checkpoint
from pmatrack_mini.training.resume_check import differing, interrupted_cases, tiny_configs, train_killed_while_saving
from pmatrack_mini.training.train import train
from pmatrack_mini.utils import leftover_temporaries

TINY = dict(model=dict(embed_dim=64, depth=1, num_heads=2, head_channels=32),
            train=dict(steps=4, batch_size=4, ckpt_every=2, log_every=1, warmup_steps=1))


def _tiny(**train):
    return get_config("cpu-mini", model=TINY["model"], train={**TINY["train"], **train})


@pytest.fixture(scope="module")
def samples():
    return load_dataset("data_samples")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the resume check's tiny stage-1 config (drop-path 0.3, so the random stream matters), trained
    4 steps without a break."""
    cfg, _ = tiny_configs("")
    out = tmp_path_factory.mktemp("full")
    train(cfg, ["data_samples"], out, progress=False)
    return cfg, load_checkpoint(out / "final.pt")["model"]


def test_resume_gives_the_same_weights_even_with_other_operational_settings(tmp_path, uninterrupted):
    cfg, full = uninterrupted
    first = train(cfg, ["data_samples"], tmp_path, stop_after=2, progress=False)
    assert first["end"] == 2 and load_checkpoint(tmp_path / "last.pt")["step"] == 2
    other = merge(cfg, dict(train=dict(log_every=3, ckpt_every=1, num_workers=1)))   # config.OPERATIONAL
    resumed = train(other, ["data_samples"], tmp_path, progress=False)
    assert resumed["start"] == 2 and resumed["end"] == 4 and resumed["notes"] == []
    assert differing(full, resumed["model"].state_dict()) == []
    init = train(_tiny(steps=1), ["data_samples"], tmp_path / "c", stop_after=0, progress=False)["model"]
    assert differing(full, init.state_dict())              # and the weights did change during training


def test_resume_on_another_thread_count_continues_with_a_note(tmp_path, uninterrupted):
    cfg, _ = uninterrupted
    before = torch.get_num_threads()
    train(cfg, ["data_samples"], tmp_path, stop_after=2, progress=False)
    threads = 1 if before > 1 else 2
    resumed = train(merge(cfg, dict(train=dict(num_threads=threads))), ["data_samples"], tmp_path, progress=False)
    assert resumed["end"] == 4 and len(resumed["notes"]) == 1 and "CPU thread(s)" in resumed["notes"][0]
    assert torch.get_num_threads() == before                 # the run's thread count does not outlive it


def test_kill_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, uninterrupted):
    cfg, full = uninterrupted
    proc = train_killed_while_saving(cfg, ["data_samples"], tmp_path, at_step=4)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2          # the step-2 checkpoint still loads
    assert len(leftover_temporaries(tmp_path / "last.pt")) == 1         # the half-written one
    resumed = train(cfg, ["data_samples"], tmp_path, progress=False)
    assert resumed["start"] == 2 and differing(full, resumed["model"].state_dict()) == []
    assert leftover_temporaries(tmp_path / "last.pt") == []


def test_resume_restores_the_grad_scaler(tmp_path, monkeypatch):
    """A CPU GradScaler stands in for CUDA's (no GPU here): its scale doubles every step, so a resume that
    forgot it would restart from the initial scale."""
    import pmatrack_mini.training.train as train_module

    monkeypatch.setattr(train_module, "make_scaler",
                        lambda device, amp: torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1))
    cfg = _tiny()
    train(cfg, ["data_samples"], tmp_path, stop_after=2, progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["scaler"]["scale"] == 2.0**12
    train(cfg, ["data_samples"], tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["scaler"]["scale"] == 2.0**14


def test_resume_refuses_a_different_config(tmp_path, samples):
    train(_tiny(), samples, tmp_path / "a", stop_after=1, progress=False)
    with pytest.raises(PMATrackError, match=r"saved config differs .*train.lr: 0.0004 saved, 0.001 now"):
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


def _ddp_worker(rank, world, port, result_file, root):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      LOCAL_RANK=str(rank))
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from pmatrack_mini.data.sampler import PairSampler
    from pmatrack_mini.models import build_model
    from pmatrack_mini.training.train import setup_distributed, train_step

    torch.set_num_threads(1)
    assert setup_distributed("cpu") == (rank, world, torch.device("cpu"), True)
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
    checks = dict(averaged=torch.allclose(synced, mean, rtol=1e-4, atol=1e-6)
                  and not torch.allclose(gathered[0], gathered[1]))

    def same_on_every_rank(net):     # parameters (batch-norm statistics are each rank's own until broadcast)
        flat = torch.cat([p.detach().flatten().double() for p in net.parameters()])
        copies = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(copies, flat)
        return all(torch.equal(c, copies[0]) for c in copies)

    # stage 1 with drop-path, every rank on its own random stream: interrupted + resumed == uninterrupted
    data = ["data_samples"]
    stage1, _ = tiny_configs("")
    full = train(stage1, data, root / "full", progress=False)["model"].module
    train(stage1, data, root / "part", stop_after=2, progress=False)
    resumed = train(stage1, data, root / "part", progress=False)["model"].module
    checks.update(resumed=differing(full.state_dict(), resumed.state_dict()) == [],
                  replicas=same_on_every_rank(resumed))
    # stage 2 trained with one named expert: the routers and other experts never get a gradient (frozen); DDP
    # would stop at the second step if a trainable parameter got none
    _, stage2 = tiny_configs(root / "full" / "final.pt")
    stage2 = merge(stage2, dict(align=dict(routing="tre")))
    net = train(stage2, data, root / "s2", progress=False)["model"]
    checks.update(stage2=same_on_every_rank(net.module))
    if rank == 0:
        with open(result_file, "w") as f:
            f.write(json.dumps(checks))
    dist.destroy_process_group()


def test_ddp_on_two_gloo_processes_averages_gradients_and_resumes_exactly(tmp_path):
    result = tmp_path / "ddp.json"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(result), tmp_path), nprocs=2, join=True)
    assert json.loads(result.read_text()) == dict(averaged=True, resumed=True, replicas=True, stage2=True)


# ----------------------------------------------------------------------------- GPUs (skipped on CPU-only machines)


@pytest.mark.parametrize("local_rank, gpus, asked, expected", [
    (1, 4, "cuda", "cuda:1"),          # one GPU per process, by LOCAL_RANK
    (3, 1, "cuda", "cuda:0"),          # the launcher shows each process only its own GPU
    (0, 4, "cpu", "cpu"),
    (5, 4, "cuda", "at most 4 processes"),
    (1, 4, "cuda:1", "give --device cuda"),
])
def test_each_process_takes_the_gpu_of_its_local_rank(monkeypatch, local_rank, gpus, asked, expected):
    from pmatrack_mini.training.distributed import local_device

    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    if expected.startswith(("cuda", "cpu")):
        assert local_device(asked) == torch.device(expected)
    else:
        with pytest.raises(PMATrackError, match=expected):
            local_device(asked)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_resume_with_amp_and_drop_path_is_exact(tmp_path):
    """Stopped, resumed with other operational settings, killed mid-write: stage 1 and 2, fp16 + GradScaler."""
    rows = interrupted_cases(["data_samples"], tmp_path, device="cuda", amp=True)
    assert all(r["outcome"].endswith("identical weights") for r in rows), rows


def _gpu_worker(rank, world, port, root):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      LOCAL_RANK=str(rank))
    import hashlib

    import torch.distributed as dist

    from pmatrack_mini.training.resume_check import deterministic

    deterministic("cuda")
    stage1, _ = tiny_configs("")
    data = ["data_samples"]
    full = train(stage1, data, root / "full", device="cuda", amp=True, progress=False)
    train(stage1, data, root / "part", device="cuda", amp=True, stop_after=2, progress=False)
    resumed = train(stage1, data, root / "part", device="cuda", amp=True, progress=False)
    digest = [hashlib.sha1(b"".join(p.detach().cpu().numpy().tobytes() for p in r["model"].parameters())).hexdigest()
              for r in (full, resumed)]
    (root / f"rank{rank}.json").write_text(json.dumps(dict(
        device=full["device"], current=torch.cuda.current_device(), left_group=not dist.is_initialized(),
        digest=digest)))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_ddp_on_two_gpus_one_device_each_and_exact_resume(tmp_path):
    mp.spawn(_gpu_worker, args=(2, _free_port(), tmp_path), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [(r["device"], r["current"], r["left_group"]) for r in ranks] == [("cuda:0", 0, True), ("cuda:1", 1, True)]
    assert ranks[0]["digest"][0] == ranks[0]["digest"][1] == ranks[1]["digest"][0] == ranks[1]["digest"][1]
