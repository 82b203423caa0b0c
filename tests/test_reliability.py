"""Bad input never ends in a traceback: config overrides, CLI arguments, result files, dataset folders,
checkpoints. Property-based (hypothesis) where the space of bad inputs is large, hand cases where it is not.

Every CLI case asserts the exit status (2), that stderr starts with ``error:``, and that no partial file
was left in the output folder.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmatrack_mini.config import Config, get_config, merge, parse_overrides
from pmatrack_mini.errors import PMATrackError

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ----------------------------------------------------------------------------- config overrides


@pytest.mark.parametrize("overrides,match", [
    (dict(train=dict(steps="abc")), r"'train.steps' expects int, got 'abc'"),
    (dict(train=dict(steps=1.5)), r"'train.steps' expects int, got 1.5"),
    (dict(train=dict(steps=True)), r"'train.steps' expects int, got True"),
    (dict(model=dict(embed_dim="abc")), r"'model.embed_dim' expects int"),
    (dict(model=dict(modalities=3)), r"'model.modalities' expects str, got 3"),
    (dict(model=dict(patch_size=0)), r"model.patch_size=0 is out of range: must be > 0"),
    (dict(train=dict(lr=0)), r"train.lr=0.0 is out of range"),
    (dict(train=dict(lr=float("nan"))), r"train.lr=nan is out of range: must be a finite number"),
    (dict(model=dict(drop_path=1.0)), r"model.drop_path=1.0 .* \[0, 1\)"),
    (dict(train=dict(warmup_steps=-1)), r"train.warmup_steps=-1"),
    (dict(train=dict(batch_size=0)), r"train.batch_size=0"),
    (dict(model=4), r"'model' expects a mapping"),
])
def test_merge_names_key_and_value(overrides, match):
    with pytest.raises(PMATrackError, match=match):
        get_config("cpu-mini", **overrides)


def test_merge_converts_what_fits():
    cfg = get_config("cpu-mini", train=dict(lr=1, steps=3))
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float) and cfg.train.steps == 3


@dataclass
class _Section:   # any dataclass section (as a future one) is checked from its annotations alone
    count: int = 1
    weight: float = 0.5
    name: str = "a"
    flag: bool = False
    pair: tuple = (1, 2)
    maybe: tuple | None = None


@pytest.mark.parametrize("key,value,ok", [
    ("count", 3, 3), ("count", 1.5, None), ("count", "3", None), ("count", False, None),
    ("weight", 2, 2.0), ("weight", "x", None), ("weight", float("inf"), None),
    ("name", "b", "b"), ("name", 1, None), ("flag", True, True), ("flag", 1, None),
    ("pair", [3, 4], (3, 4)), ("pair", 3, None), ("maybe", None, None), ("maybe", [1], (1,)),
])
def test_generic_checker_on_any_dataclass(key, value, ok):
    if ok is None and not (key == "maybe" and value is None):
        with pytest.raises(PMATrackError, match=key):
            merge(_Section(), {key: value})
    else:
        assert getattr(merge(_Section(), {key: value}), key) == ok


def test_parse_overrides():
    assert parse_overrides(["model.depth=4", "train.lr=1e-3", "model.modalities=rgb"]) == \
        {"model": {"depth": 4, "modalities": "rgb"}, "train": {"lr": 1e-3}}
    for bad in (["model=1", "model.depth=2"], ["model.depth=1", "model.depth.x=2"], ["depth"], [".a=1"],
                ["train.lr=1", "train.lr=2"]):
        with pytest.raises(PMATrackError, match="--set"):
            parse_overrides(bad)


_keys = st.sampled_from(["model.depth", "model.patch_size", "model.embed_dim", "model.drop_path", "model.modalities",
                         "train.lr", "train.steps", "train.seed", "train.num_threads", "train.schedule", "model",
                         "train", "preset", "model.nope", "nope.x", "a.b.c", ""])
_values = st.one_of(st.integers(-3, 3), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.booleans(), st.none(), st.text(max_size=6), st.sampled_from(["rgb", "abc", "[1, 2]", "1e400", '{"a": 1}']))


@FAST
@given(st.lists(st.tuples(_keys, _values), max_size=4))
def test_random_overrides_give_a_config_or_a_clear_error(pairs):
    items = [f"{k}={v}" for k, v in pairs]
    try:
        cfg = get_config("cpu-mini", **parse_overrides(items))
    except PMATrackError:
        return
    assert isinstance(cfg, Config)
    assert cfg.model.patch_size > 0 and cfg.train.lr > 0 and 0 <= cfg.model.drop_path < 1


# ----------------------------------------------------------------------------- devices


def test_check_device():
    import torch

    from pmatrack_mini.utils import check_device

    assert check_device("cpu") == torch.device("cpu")
    for bad in ("gpu", "", "cuda:-1", "cuda:x", "meta", "CPU"):
        with pytest.raises(PMATrackError, match="device"):
            check_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(PMATrackError, match="CUDA is not available"):
            check_device("cuda")
    with pytest.raises(PMATrackError, match="CUDA is not available|GPU"):   # past the last GPU, or no CUDA
        check_device(f"cuda:{torch.cuda.device_count() + 3}")


# ----------------------------------------------------------------------------- the command line


def run_cli(argv, capsys) -> tuple[int, str]:
    """Run ``pmatrack-mini argv`` in-process; (exit status, stderr). An escaping exception fails the test."""
    from pmatrack_mini.cli import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_clear_error(argv, capsys, match: str = "") -> str:
    code, err = run_cli(argv, capsys)
    assert code == 2, (argv, code, err)
    assert err.startswith("error:") and "Traceback" not in err, err
    assert match in err, (match, err)
    return err


def files_under(folder) -> list:
    """Every file below ``folder`` (relative paths), partial or temporary ones included."""
    from pathlib import Path

    folder = Path(folder)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("argv,match", [
    ([], "required: command"),
    (["nope"], "invalid choice: 'nope'"),
    (["eval"], "required: --dataset, --results"),
    (["synth", "OUT", "--sequences", "-1"], "--sequences: must be >= 1, got -1"),
    (["synth", "OUT", "--frames", "abc"], "--frames: expected an integer, got 'abc'"),
    (["synth", "OUT", "--seed", "-3"], "--seed: must be >= 0"),
    (["train", "--data", "D", "--out", "R", "--steps", "x"], "--steps: invalid int value"),
    (["train-experts", "--backbone", "B", "--data", "D", "--out", "R", "--steps", "0"], "experts.steps=0"),
])
def test_usage_errors_are_one_line(argv, match, capsys, tmp_path):
    assert_clear_error([a.replace("OUT", str(tmp_path / "out")) for a in argv], capsys, match)
    assert files_under(tmp_path) == []


def test_device_and_config_errors_before_anything_is_written(capsys, tmp_path, samples_dir):
    import torch

    base = ["train", "--data", samples_dir, "--out", tmp_path / "run", "--quiet"]
    if not torch.cuda.is_available():
        assert_clear_error(base + ["--device", "cuda"], capsys, "CUDA is not available")
    assert_clear_error(base + ["--device", "tpu9"], capsys, "unknown device 'tpu9'")
    assert_clear_error(base + ["--set", "train.steps=abc"], capsys, "'train.steps' expects int, got 'abc'")
    assert_clear_error(base + ["--set", "model.embed_dim=abc"], capsys, "'model.embed_dim' expects int")
    assert_clear_error(base + ["--set", "model.patch_size=0"], capsys, "model.patch_size=0 is out of range")
    assert_clear_error(base + ["--set", "train.steps=5", "--steps", "3"], capsys, "given twice")
    assert_clear_error(["track", "--checkpoint", tmp_path / "c.pt", "--dataset", samples_dir, "--out",
                        tmp_path / "res", "--device", "gpu"], capsys, "unknown device 'gpu'")
    assert files_under(tmp_path) == []


def test_output_paths_that_cannot_be_written(capsys, tmp_path, samples_dir):
    (tmp_path / "afile").write_text("x")
    assert_clear_error(["reference", "--dataset", samples_dir, "--kind", "static", "--out", tmp_path / "afile"],
                       capsys, "not a folder")
    assert_clear_error(["eval", "--dataset", samples_dir, "--results", samples_dir, "--json", tmp_path],
                       capsys, "is a folder")
    assert files_under(tmp_path) == ["afile"]


# ----------------------------------------------------------------------------- dataset folders


@pytest.fixture
def seq_copy(tmp_path, samples_dir):
    import shutil

    dst = tmp_path / "s"
    shutil.copytree(samples_dir / "small_occlusion", dst)
    return dst


def test_homography_rows_comma_or_space(seq_copy):
    import numpy as np

    from pmatrack_mini.data.dataset import load_sequence

    ref = load_sequence(seq_copy).homography
    text = (seq_copy / "homography.txt").read_text()
    (seq_copy / "homography.txt").write_text(text.replace(" ", ","))
    np.testing.assert_array_equal(load_sequence(seq_copy).homography, ref)
    (seq_copy / "homography.txt").write_text(text.replace(" ", ", "))
    np.testing.assert_array_equal(load_sequence(seq_copy).homography, ref)


@pytest.mark.parametrize("edit,match", [
    (lambda rows: rows[:3] + ["1 2 3"] + rows[4:], r"homography.txt:4: expected 9 values"),
    (lambda rows: rows[:1] + ["1 0 0 0 1 0 0 0 x"] + rows[2:], r"homography.txt:2: non-numeric"),
    (lambda rows: rows[:5] + ["1 0 0 0 1 0 0 0 nan"] + rows[6:], r"homography.txt:6: NaN or infinite"),
    (lambda rows: rows[:30], r"homography.txt: 30 homography rows, but the sequence has 40 frames"),
    (lambda rows: [], r"homography.txt: no homography rows"),
])
def test_homography_errors_name_file_and_line(seq_copy, edit, match):
    from pmatrack_mini.data.dataset import load_sequence

    rows = (seq_copy / "homography.txt").read_text().splitlines()
    (seq_copy / "homography.txt").write_text("\n".join(edit(rows)) + "\n")
    with pytest.raises(PMATrackError, match=match):
        load_sequence(seq_copy)
