import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seeded(request):
    """Every test starts from the same random state whichever worker runs it and whichever tests ran before, so a
    tolerance that holds once holds on every run (CI spreads tests over workers in a varying order)."""
    import random
    import zlib

    import numpy as np
    import torch

    seed = zlib.crc32(request.node.nodeid.encode())
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """Two generated small-offset sequences of 20 frames (written once per test session)."""
    from pmatrack_mini.data.synth import SynthConfig
    from pmatrack_mini.data.synth_sets import generate_dataset

    root = tmp_path_factory.mktemp("tiny")
    generate_dataset(root, 2, SynthConfig(frames=20, offset="small"), seed=7, progress=False)
    return root


from pmatrack_mini.config import TOY_EXPERT_SIZES  # noqa: E402  (expert sizes for width 64)


def _untrained_checkpoint(folder: Path, stage: int) -> Path:
    """A checkpoint of an untrained toy network (width 64): stage 1 one block deep, stage 2 three blocks with a
    stage after each."""
    import torch

    from pmatrack_mini.config import get_config, stage2_config
    from pmatrack_mini.models import build_model, save_checkpoint

    cfg = get_config("cpu-mini", model=dict(embed_dim=64, depth=1 if stage == 1 else 3, num_heads=2,
                                            head_channels=32))
    if stage == 2:
        cfg = stage2_config(cfg, align=dict(layers=(0, 1, 2), tcmda_heads=2, tcmda_points=2, **TOY_EXPERT_SIZES))
    path = folder / f"stage{stage}.pt"
    torch.manual_seed(stage)                # the same weights whichever tests ran before in this process
    save_checkpoint(path, build_model(cfg), cfg, step=0)
    return path


@pytest.fixture(scope="session")
def stage1_checkpoint(tmp_path_factory) -> Path:
    return _untrained_checkpoint(tmp_path_factory.mktemp("stage1"), 1)


@pytest.fixture(scope="session")
def stage2_checkpoint(tmp_path_factory) -> Path:
    return _untrained_checkpoint(tmp_path_factory.mktemp("stage2"), 2)
