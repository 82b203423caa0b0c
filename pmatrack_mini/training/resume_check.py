"""Does an interrupted run end with the weights of an uninterrupted one? Interrupt, resume, compare.

    python -m pmatrack_mini.training.resume_check --data data_samples [--device cuda] [--amp]

Cases, each for a tiny stage-1 tracker (with drop-path, so the random streams matter) and a stage-2 network on it:

* stopped after k steps (``train(stop_after=k)``), then resumed by the same command;
* stopped, then resumed with other operational settings (logging, checkpoint frequency, threads, input workers);
* killed (SIGKILL) while writing a checkpoint: a child process trains and kills itself once half of the checkpoint's
  bytes are on disk. The previous ``last.pt`` must still load, and resuming from it must reach the same weights.

Each outcome is "identical weights" or names what differs. The tests and ``benchmarks/reliability.py`` use these
functions; on a GPU machine this command checks the CUDA paths (CUDA random states, GradScaler) the same way, with
torch's deterministic algorithms on (otherwise some CUDA kernels differ run to run with or without a resume).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ..config import TOY_EXPERT_SIZES, Config, config_from_dict, get_config, merge, stage2_config
from ..models.checkpoint import load_checkpoint

TINY_MODEL = dict(embed_dim=64, depth=2, num_heads=2, head_channels=32, drop_path=0.3)
TINY_TRAIN = dict(steps=4, batch_size=4, ckpt_every=2, log_every=1, warmup_steps=1)
OTHER_OPERATIONAL = dict(log_every=3, ckpt_every=1, num_workers=2)


def tiny_configs(init: str | Path) -> tuple[Config, Config]:
    """(stage-1 config, stage-2 config training on the stage-1 checkpoint ``init``), both 4 steps."""
    stage1 = get_config("cpu-mini", model=TINY_MODEL, train=TINY_TRAIN)
    stage2 = stage2_config(stage1, align=dict(layers=(0, 1, 1), stages=("center", "scale"), tcmda_heads=2,
                                              tcmda_points=2, **TOY_EXPERT_SIZES), train=dict(TINY_TRAIN, init=str(init)))
    return stage1, stage2


def deterministic(device: str) -> None:
    """Deterministic CUDA kernels (the CPU ones already are), so that weights can be compared exactly."""
    if torch.device(device).type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


def differing(a: dict, b: dict) -> list[str]:
    """Names of the tensors in which two state dicts differ (exactly)."""
    return sorted(k for k in a.keys() | b.keys() if k not in a or k not in b or not torch.equal(a[k], b[k]))


def compare(reference: Path, run: Path) -> str:
    diff = differing(load_checkpoint(reference)["model"], load_checkpoint(run)["model"])
    return "identical weights" if not diff else f"different weights: {len(diff)} tensors differ ({diff[0]}, ...)"


def train_killed_while_saving(cfg: Config, data: list, out: Path, at_step: int, device: str = "cpu",
                              amp: bool = False) -> subprocess.CompletedProcess:
    """Train ``cfg`` in a child process that kills itself (SIGKILL) while writing the checkpoint of ``at_step``,
    half of its bytes written. Its return code is ``-SIGKILL`` when it died where intended."""
    out.mkdir(parents=True, exist_ok=True)
    cfg_file = out.parent / f".{out.name}.config.json"
    cfg_file.write_text(json.dumps(cfg.to_dict()))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                       os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS=str(torch.get_num_threads()))        # this process's thread count: the same sums
    cmd = [sys.executable, "-m", "pmatrack_mini.training.resume_check", "--child", str(cfg_file), str(out),
           str(at_step), "--device", device] + (["--amp"] if amp else []) + ["--data"] + [str(d) for d in data]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    finally:
        cfg_file.unlink()


def _child(cfg_file: str, out: str, at_step: int, data: list, device: str, amp: bool) -> None:
    """The killed process: torch.save writes half of the checkpoint of ``at_step``, then the process dies."""
    from .train import train

    real_save = torch.save

    def save_then_die(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("step") == at_step:
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            with open(f, "wb") as fh:
                fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                fh.flush()
                os.fsync(fh.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *args, **kwargs)

    torch.save = save_then_die
    deterministic(device)
    train(config_from_dict(json.loads(Path(cfg_file).read_text())), data, out, device=device, amp=amp,
          progress=False)


def interrupted_cases(data: list, root: Path, device: str = "cpu", amp: bool = False) -> list[dict]:
    """Every case of the module docstring; one row each: stage, case, outcome."""
    from .train import train

    deterministic(device)
    rows = []

    def run(cfg, name, stop=None, resume_cfg=None):
        train(cfg, data, root / name, device=device, amp=amp, stop_after=stop, progress=False)
        if stop is not None:
            train(resume_cfg or cfg, data, root / name, device=device, amp=amp, progress=False)
        return root / name / "final.pt"

    stage1, _ = tiny_configs("")
    ref1 = run(stage1, "s1_full")
    _, stage2 = tiny_configs(ref1)
    for stage, cfg in (("stage 1", stage1), ("stage 2", stage2)):
        tag = stage.replace(" ", "")
        ref = ref1 if cfg is stage1 else run(cfg, f"{tag}_full")
        rows.append(dict(stage=stage, case="stopped after 2 of 4 steps, resumed",
                         outcome=compare(ref, run(cfg, f"{tag}_stop", stop=2))))
        other = merge(cfg, dict(train=OTHER_OPERATIONAL))
        rows.append(dict(stage=stage, case=f"stopped after 1 step, resumed with {OTHER_OPERATIONAL}",
                         outcome=compare(ref, run(cfg, f"{tag}_ops", stop=1, resume_cfg=other))))
        rows.append(dict(stage=stage, case="killed while writing the step-4 checkpoint, resumed",
                         outcome=_kill_case(cfg, data, root / f"{tag}_kill", ref, device, amp)))
    return rows


def _kill_case(cfg: Config, data: list, out: Path, reference: Path, device: str, amp: bool) -> str:
    from .train import train

    proc = train_killed_while_saving(cfg, data, out, at_step=4, device=device, amp=amp)
    if proc.returncode != -signal.SIGKILL:
        return f"the child was not killed as planned (exit {proc.returncode}): {proc.stderr[-300:]}"
    step = load_checkpoint(out / "last.pt")["step"]          # the previous checkpoint must still load
    train(cfg, data, out, device=device, amp=amp, progress=False)
    return f"previous last.pt (step {step}) intact; " + compare(reference, out / "final.pt")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--child", nargs=3, metavar=("CONFIG", "OUT", "STEP"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        _child(a.child[0], a.child[1], int(a.child[2]), a.data, a.device, a.amp)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for r in interrupted_cases(a.data, Path(tmp), a.device, a.amp):
            print(f"{r['stage']:8s} {r['case']:75s} {r['outcome']}")


if __name__ == "__main__":
    main()
