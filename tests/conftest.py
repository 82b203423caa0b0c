import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """Two generated small-offset sequences of 20 frames (written once per test session)."""
    from pmatrack_mini.data.synth import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("tiny")
    generate_dataset(root, 2, SynthConfig(frames=20, offset="small"), seed=7, progress=False)
    return root
