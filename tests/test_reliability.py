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
                    st.booleans(), st.none(), st.text(max_size=6),
                    st.sampled_from(["rgb", "abc", "[1, 2]", "1e400", '{"a": 1}']))


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
    (["train", "--stage", "2", "--data", "D", "--out", "R"], "give --init CHECKPOINT"),
    (["train", "--init", "B", "--data", "D", "--out", "R"], "--init is for stage 2"),
    (["train", "--stage", "3", "--data", "D", "--out", "R"], "--stage: invalid choice"),
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


# ----------------------------------------------------------------------------- hypothesis over CLI arguments
# A value is drawn as (text, bad): bad is True for a value that must be refused, False for a valid one and
# None for random text that may be either. An argument list with a known-bad value must end in a clear
# error; one with only valid values must succeed; either way, nothing escapes main() and nothing partial
# is left behind.

_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8)  # argv has no NUL


def _good(*values):
    return st.sampled_from(values).map(lambda v: (v, False))


def _bad(*values):
    return st.sampled_from(values).map(lambda v: (v, True))


_GARBLED = _TEXT.map(lambda v: (v, None))


def _argv(**options) -> st.SearchStrategy:
    """``--name value`` pairs; an option given as (strategy, optional) may also be left out."""
    parts = []
    for name, (values, optional) in options.items():
        flag = "--" + name.replace("_", "-")
        pair = values.map(lambda v, f=flag: [(f, False), v])
        parts.append(st.one_of(st.just([]), pair) if optional else pair)
    return st.tuples(*parts).map(lambda ps: [x for p in ps for x in p])


def _check_outcome(argv, code: int, err: str) -> None:
    bad = [v for v, b in argv if b]
    if bad:
        assert code == 2, (argv, code, err)
    elif all(b is False for _, b in argv):
        assert code == 0, (argv, code, err)
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        assert err.startswith("error:") and "Traceback" not in err, err


def no_partial_files(folder) -> bool:
    """No temporary (``.name.xxx.tmp``) or partial (``.name.partial``) file or folder below ``folder``."""
    return not [f for f in files_under(folder) if any(part.startswith(".") for part in f.split("/"))]


_SYNTH = _argv(
    sequences=(st.one_of(_good("1", "2"), _bad("0", "-1", "x", "1.5", ""), _GARBLED), False),
    frames=(st.one_of(_good("10", "11"), _bad("9", "0", "-10", "ten"), _GARBLED), False),
    offset=(st.one_of(_good("none", "small", "large"), _bad("huge", "", "Small"), _GARBLED), True),
    seed=(st.one_of(_good("0", "7"), _bad("-1", "s"), _GARBLED), True),
    rgb_size=(st.one_of(_good("162x140", "200x160"),
                        _bad("0x0", "64x48", "161x140", "axb", "64x", "1x2x3", "99999x99999")), True),
    tir_size=(st.one_of(_good("64x48"), _bad("64x47", "-64x48")), True),
    challenges=(st.one_of(_good("none", "occlusion", "fast_motion,occlusion"), _bad("rain", "occlusion,snow")), True),
)


@FAST
@given(_SYNTH)
def test_synth_arguments(capsys, tmp_path, argv):
    import tempfile

    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        out = f"{tmp}/out"
        argv = [("synth", False), (out, False), ("--quiet", False)] + argv
        code, err = run_cli([a for a, _ in argv], capsys)
        _check_outcome(argv, code, err)
        from pathlib import Path

        if code == 2:
            assert not Path(out).exists()                     # refused before anything was written
        else:
            assert (Path(out) / "synth.json").is_file() and (Path(out) / "list.txt").is_file()
        assert no_partial_files(tmp)


@pytest.fixture(scope="module")
def eval_inputs(tmp_path_factory, samples_dir):
    """Results folders (good: perfect predictions; bad: one file broken), list files and a plain file."""
    from pmatrack_mini.data.dataset import load_dataset
    from pmatrack_mini.utils import write_boxes

    root = tmp_path_factory.mktemp("eval_inputs")
    for s in load_dataset(samples_dir):
        write_boxes(root / "good" / f"{s.name}.txt", s.gt_visible)
        write_boxes(root / "bad" / f"{s.name}.txt", s.gt_visible)
    (root / "bad" / "small_occlusion.txt").write_text("1,2,3,4\n1,2,x,4\n")
    (root / "one.txt").write_text("small_occlusion\n")
    (root / "ghost.txt").write_text("small_occlusion\nno_such_sequence\n")
    (root / "afile").write_text("not a folder\n")
    return root


def _resolve(argv, samples_dir, inputs, out):
    """Placeholders resolved against the test's folders: ``@samples``, ``@in/x`` (eval inputs), ``@out/x``."""
    def one(v):
        return (v.replace("@samples", str(samples_dir)).replace("@in", str(inputs)).replace("@out", str(out))
                if isinstance(v, str) else v)
    return [(one(v), b) for v, b in argv]


_DATASET = st.one_of(_good("@samples"), _bad("@in/missing", "@in/afile", "@in"))
_LIST = st.one_of(_good("@in/one.txt"), _bad("@in/ghost.txt", "@in/nope.txt"))
_EVAL = _argv(
    dataset=(_DATASET, False),
    results=(st.one_of(_good("@in/good"), _bad("@in/bad", "@in/missing", "@in/afile")), False),
    gt=(st.one_of(_good("visible", "infrared", "both"), _bad("rgb", "")), True),
    list=(_LIST, True),
    json=(st.one_of(_good("@out/r.json", "@out/sub/r.json"), _bad("@out", "@in")), True),
    plot=(st.one_of(_good("@out/p.png"), _bad("@out")), True),
)
_REFERENCE = _argv(
    dataset=(_DATASET, False),
    kind=(st.one_of(_good("static", "tir-naive"), _bad("oracle", "")), False),
    out=(st.one_of(_good("@out/res"), _bad("@in/afile")), False),
    list=(_LIST, True),
)


@FAST
@given(st.one_of(_EVAL.map(lambda a: ["eval"] + a), _REFERENCE.map(lambda a: ["reference"] + a)))
def test_eval_and_reference_arguments(capsys, tmp_path, samples_dir, eval_inputs, argv):
    import tempfile

    with tempfile.TemporaryDirectory(dir=tmp_path) as out:
        argv = _resolve([(argv[0], False)] + argv[1:], samples_dir, eval_inputs, out)
        code, err = run_cli([a for a, _ in argv], capsys)
        _check_outcome(argv, code, err)
        if code == 2:
            assert files_under(out) == []                      # nothing written, not even a partial file
        assert no_partial_files(out) and no_partial_files(eval_inputs)


# ----------------------------------------------------------------------------- hypothesis over result files

# Each edit of a perfect result file (40 rows) and whether eval must accept it.
_RESULT_EDITS = {
    "nan_row": (lambda rows, i: rows[:i] + ["nan,nan,nan,nan"] + rows[i + 1:], True),     # repaired
    "zero_size": (lambda rows, i: rows[:i] + ["5,5,0,-3"] + rows[i + 1:], True),         # repaired
    "extra_rows": (lambda rows, i: rows + rows[:i + 1], True),                           # cut to GT length
    "blank_lines": (lambda rows, i: rows[:i] + ["", "  "] + rows[i:], True),
    "spaces": (lambda rows, i: [r.replace(",", " ") for r in rows], True),
    "ragged": (lambda rows, i: rows[:i] + ["10,20,30,40,7"] + rows[i + 1:], False),
    "short_row": (lambda rows, i: rows[:i] + ["10,20,30"] + rows[i + 1:], False),
    "non_numeric": (lambda rows, i: rows[:i] + ["10,2O,30,40"] + rows[i + 1:], False),
    "too_few_rows": (lambda rows, i: rows[:i], False),
    "empty": (lambda rows, i: [], False),
    "truncated_mid_row": (lambda rows, i: rows[:i] + ["10,2"], False),
}


_GOOD_EDITS = sorted(k for k, (_, ok) in _RESULT_EDITS.items() if ok)
_BAD_EDITS = sorted(k for k, (_, ok) in _RESULT_EDITS.items() if not ok)


@FAST
@given(good=st.lists(st.sampled_from(_GOOD_EDITS), max_size=3), bad=st.one_of(st.none(), st.sampled_from(_BAD_EDITS)),
       where=st.integers(0, 39), gt=st.sampled_from(["visible", "infrared", "both"]))
def test_result_files(capsys, tmp_path, samples_dir, eval_inputs, good, bad, where, gt):
    """Edits that eval must accept, then at most one it must refuse (last, so that nothing undoes it)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        res, out = Path(tmp) / "res", Path(tmp) / "out"
        res.mkdir()
        rows = (eval_inputs / "good" / "small_occlusion.txt").read_text().splitlines()
        for e in good + ([bad] if bad else []):
            rows = _RESULT_EDITS[e][0](rows, min(where, max(len(rows) - 1, 0)))
        (res / "small_occlusion.txt").write_text("\n".join(rows) + ("\n" if rows else ""))
        code, err = run_cli(["eval", "--dataset", samples_dir, "--list", eval_inputs / "one.txt", "--results", res,
                             "--gt", gt, "--json", out / "r.json"], capsys)
        if bad is None:
            assert code == 0 and (out / "r.json").is_file(), err
        else:
            assert code == 2 and err.startswith("error:") and "small_occlusion.txt" in err, err
            assert files_under(out) == []


# ----------------------------------------------------------------------------- hypothesis over dataset folders


def _drop_frame(seq, modality, i):
    if (seq / modality).is_dir():   # another edit may have removed the folder
        sorted((seq / modality).iterdir())[i].unlink()


def _edit_lines(seq, name, fn):
    path = seq / name
    path.write_text("\n".join(fn(path.read_text().splitlines())) + "\n")


# Each edit of a sample sequence and whether the folder stays valid (True), or for which commands.
_FOLDER_EDITS = {
    "missing_rgb_frame": (lambda s, i: _drop_frame(s, "visible", i), False),
    "missing_tir_frame": (lambda s, i: _drop_frame(s, "infrared", i), False),
    "no_infrared_folder": (lambda s, i: __import__("shutil").rmtree(s / "infrared"), False),
    "ragged_box_row": (lambda s, i: _edit_lines(s, "visible.txt", lambda r: r[:i] + [r[i] + ",1"] + r[i + 1:]), False),
    "non_numeric_box": (lambda s, i: _edit_lines(s, "infrared.txt", lambda r: r[:i] + ["a,b,c,d"] + r[i + 1:]), False),
    "gt_row_missing": (lambda s, i: _edit_lines(s, "infrared.txt", lambda r: r[:i] + r[i + 1:]), False),
    "empty_gt": (lambda s, i: (s / "visible.txt").write_text(""), False),
    "bad_init": (lambda s, i: (s / "init.txt").write_text("1,2,0,4\n"), False),
    "garbled_attributes": (lambda s, i: _edit_lines(s, "attributes.txt", lambda r: r[:i] + ["1,x"] + r[i + 1:]), False),
    "homography_ragged": (lambda s, i: _edit_lines(s, "homography.txt", lambda r: r[:i] + ["1 0 0"] + r[i + 1:]),
                          False),
    "homography_short": (lambda s, i: _edit_lines(s, "homography.txt", lambda r: r[:i]), False),
    "homography_commas": (lambda s, i: _edit_lines(s, "homography.txt", lambda r: [x.replace(" ", ",") for x in r]),
                          True),
    "homography_comma_space": (lambda s, i: _edit_lines(s, "homography.txt",
                                                        lambda r: [x.replace(" ", ", ") for x in r]), True),
    "gt_whitespace": (lambda s, i: _edit_lines(s, "visible.txt", lambda r: [x.replace(",", "\t") for x in r]), True),
    # eval reads no image; the tir-naive reference reads the first frames' sizes
    "unreadable_first_frame": (lambda s, i: (s / "visible" / "v000000.jpg").write_bytes(b"\xff\xd8 no"), {"eval"}),
}


@FAST
@given(edits=st.lists(st.sampled_from(sorted(_FOLDER_EDITS)), min_size=1, max_size=2, unique=True),
       where=st.integers(1, 30), command=st.sampled_from(["eval", "reference"]))
def test_dataset_folders(capsys, tmp_path, samples_dir, eval_inputs, edits, where, command):
    import shutil
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        data, out = Path(tmp) / "data", Path(tmp) / "out"
        shutil.copytree(samples_dir / "small_occlusion", data / "small_occlusion")
        for e in edits:
            _FOLDER_EDITS[e][0](data / "small_occlusion", where)
        if command == "eval":
            argv = ["eval", "--dataset", data, "--results", eval_inputs / "good", "--gt", "infrared",
                    "--json", out / "r.json"]
        else:
            argv = ["reference", "--dataset", data, "--kind", "tir-naive", "--out", out]
        code, err = run_cli(argv, capsys)
        if all(_FOLDER_EDITS[e][1] is True or command in (_FOLDER_EDITS[e][1] or ()) for e in edits):
            assert code == 0, err
        else:
            assert code == 2 and err.startswith("error:") and "small_occlusion" in err, err
            assert files_under(out) == []


# ----------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def real_checkpoint(stage1_checkpoint):
    return stage1_checkpoint


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")   # torch's note on random bytes
@FAST
@given(data=st.one_of(st.binary(max_size=300), st.integers(0, 10**6).map(lambda n: ("cut", n))))
def test_random_or_truncated_checkpoints(tmp_path, real_checkpoint, data):
    from pmatrack_mini.models import load_checkpoint

    blob = real_checkpoint.read_bytes()
    if isinstance(data, tuple):
        data = blob[: data[1] % (len(blob) - 1)]          # any strict prefix of a real checkpoint
    path = tmp_path / "x.pt"
    path.write_bytes(data)
    with pytest.raises(PMATrackError, match="x.pt: not a"):
        load_checkpoint(path)


class _Foreign:   # a pickled object of another program: weights_only loading refuses it
    pass


@pytest.mark.parametrize("payload", [
    {"state_dict": {}},                                         # another trainer's checkpoint
    {"format": "pmatrack-mini-experts/1", "experts": {}},       # our expert file, not a tracker
    {"format": "pmatrack-mini/1", "model": {}},                 # tagged, but no config or step
    {"format": "pmatrack-mini/1", "model": {}, "config": "cpu-mini", "step": 0},
    [1, 2, 3],
    "text",
    _Foreign(),
])
def test_foreign_checkpoints(tmp_path, payload, capsys, samples_dir):
    import torch

    from pmatrack_mini.models import load_checkpoint

    path = tmp_path / "x.pt"
    torch.save(payload, path)
    with pytest.raises(PMATrackError, match="x.pt: not a"):
        load_checkpoint(path)
    assert_clear_error(["track", "--checkpoint", path, "--dataset", samples_dir, "--out", tmp_path / "res"],
                       capsys, "x.pt: not a")
    assert not (tmp_path / "res").exists()


def test_checkpoint_with_a_bad_stored_config(tmp_path, real_checkpoint, capsys, samples_dir):
    import torch

    state = torch.load(real_checkpoint, weights_only=True)
    for config, match in ((dict(state["config"], model={"patch_size": 0}), "model.patch_size=0"),
                          (dict(state["config"], train={"steps": "many"}), "'train.steps' expects int")):
        torch.save(dict(state, config=config), tmp_path / "c.pt")
        assert_clear_error(["track", "--checkpoint", tmp_path / "c.pt", "--dataset", samples_dir, "--out",
                            tmp_path / "res"], capsys, match)
    assert not (tmp_path / "res").exists()


# ----------------------------------------------------------------------------- the battery (benchmarks/reliability.py)


def _battery():
    """``benchmarks/reliability.py`` as a module."""
    import importlib.util
    import sys
    from pathlib import Path

    name = "reliability_battery"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" /
                                                      "reliability.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module                    # dataclasses looks the module up while it is executed
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_battery_counts_every_case():
    """Every case belongs to an interface the report counts (else it would drop out of the totals), named once."""
    import numpy as np

    R = _battery()
    cases = R.hand_cases() + R.random_cases(np.random.default_rng(0), 2)
    assert {c.interface for c in cases} <= set(R.INTERFACES)
    names = [(c.interface, c.name) for c in cases]
    assert len(names) == len(set(names))


def test_own_camera_cases_fail_for_their_own_reason(tmp_path, samples_dir, stage1_checkpoint):
    """The battery's ``track --rgb/--tir`` and ``calibrate`` cases: their arguments without the case's change succeed,
    and each case ends in a clear error that names what it says it must, leaving nothing behind."""
    import shutil

    from pmatrack_mini.cli import main
    from pmatrack_mini.tracking.calibrate import fit_homography, read_homography_file, read_point_pairs

    R = _battery()
    shared = tmp_path / "shared"
    shutil.copytree(samples_dir / R.CAM_SEQ, shared / "samples" / R.CAM_SEQ)
    shutil.copy(stage1_checkpoint, shared / "tiny.pt")
    (shared / "afile").write_text("a file, not a folder\n")
    R.prepare_cameras(shared)
    cam, _, _ = R._cam()
    assert main([a.format(ws=tmp_path / "control", shared=shared) for a in cam]) == 0
    read_homography_file(shared / "cam" / "H.txt")                    # what the calibration-file cases start from
    (tmp_path / "p.txt").write_text(R._point_pairs(R.GOOD_RGB_POINTS))  # what the points-file cases start from
    fit_homography(read_point_pairs(tmp_path / "p.txt"))
    cases = [c for c in R.camera_cases() if c.interface in ("track --rgb/--tir", "calibrate")]
    assert {"all but one point on a line", "3 of 4 points on a line"} <= {c.name for c in cases}   # near-degenerate
    rows = [R.run_case(c, tmp_path, k) for k, c in enumerate(cases)]
    assert len(rows) > 40
    assert [r for r in rows if r["outcome"] != "clear error"] == []
