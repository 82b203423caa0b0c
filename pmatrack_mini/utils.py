"""Small helpers shared by every module: seeds, atomic writes, device checks, the CI-size switch."""
from __future__ import annotations

import json
import os
import random
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import PMATrackError

# The one CI-size switch. Notebooks and demos shrink their sizes and step counts when set.
FAST: bool = os.environ.get("PMATRACK_FAST", "0") not in ("", "0", "false", "False")


def set_seed(seed: int) -> None:
    """Seed python, numpy and (if imported) torch."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A reader never sees a half-written file, and a failure leaves the old file untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)   # mkstemp makes 0600 files; give the result normal permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (a ``<folder>.lock`` file beside it) while building what it caches, so
    that two processes asking for the same cached set or network at once (two notebooks, two test workers) build it
    once: the second waits, then finds it made. POSIX ``flock``; elsewhere no lock."""
    path = Path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:                     # not POSIX: no lock
        yield
        return
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def leftover_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporary files :func:`atomic_path` left beside ``path`` when its process was killed mid-write."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*.tmp{path.suffix}")) if path.parent.is_dir() else []


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | os.PathLike) -> dict:
    """A JSON object from a file; anything else (missing, unreadable, not an object) is a PMATrackError."""
    from .errors import PMATrackError

    path = Path(path)
    try:
        obj = json.loads(path.read_text(errors="replace"))
    except (OSError, ValueError):
        obj = None
    if not isinstance(obj, dict):
        raise PMATrackError(f"{path}: not a readable JSON object")
    return obj


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def write_boxes(path: str | os.PathLike, boxes: np.ndarray, decimals: int = 2) -> None:
    """Write (N, 4) boxes as comma-separated ``x,y,w,h`` rows, atomically."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    fmt = f"{{:.{decimals}f}}"
    lines = [",".join(fmt.format(v) for v in row) for row in boxes]
    write_text_atomic(path, "\n".join(lines) + "\n")


def check_device(device: str):
    """``torch.device(device)`` if this machine can run on it, else a PMATrackError saying why.

    Accepts ``cpu``, ``cuda`` / ``cuda:N`` (when CUDA is available and N < the number of GPUs) and ``mps``
    (when available). Checked before anything is built or written, so ``--device cuda`` on a machine
    without a GPU is a one-line error rather than a traceback from deep inside the first ``.to(device)``.
    """
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise PMATrackError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise PMATrackError(f"device {device!r}: CUDA is not available on this machine (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise PMATrackError(f"device {device!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise PMATrackError(f"device {device!r}: MPS is not available on this machine (use --device cpu)")
    elif dev.type != "cpu":
        raise PMATrackError(f"device {device!r} is not supported; use cpu, cuda, cuda:N or mps")
    return dev


def run_record(argv=None) -> dict:
    """What every benchmark's results file starts with: the command that wrote it (``argv``: the arguments given to
    its ``main``, else the command line), when (UTC), and the machine (:func:`machine_info`)."""
    import sys
    from datetime import datetime, timezone

    args = list(argv) if argv is not None else sys.argv[1:]
    return dict(command="python " + " ".join([sys.argv[0]] + args),
                when=datetime.now(timezone.utc).isoformat(timespec="seconds"), machine=machine_info())


def machine_info() -> dict:
    """What a benchmark records about the machine it ran on."""
    import platform

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover
        pass
    return info
