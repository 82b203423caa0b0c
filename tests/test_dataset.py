import shutil
import warnings

import numpy as np
import pytest

from pmatrack_mini.data.dataset import load_dataset, load_sequence, read_boxes, sequence_names
from pmatrack_mini.errors import PMATrackError


def test_samples_load(samples_dir):
    seqs = load_dataset(samples_dir)
    assert len(seqs) == 5
    for s in seqs:
        assert len(s) == len(s.gt_visible) == len(s.gt_infrared) == s.homography.shape[0]
        assert s.rgb(0).shape == (256, 320, 3) and s.tir(0).shape == (128, 160, 3)
        assert s.rgb(0).dtype == np.uint8


def test_read_boxes_separators(tmp_path):
    p = tmp_path / "gt.txt"
    p.write_text("1,2,3,4\n5 6 7 8\n\n9\t10\t11\t12\n1.5, 2.5, 3.5, 4.5\n")
    np.testing.assert_allclose(read_boxes(p), [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [1.5, 2.5, 3.5, 4.5]])


@pytest.mark.parametrize("text,match", [("1,2,3,4\n1,2,x,4\n", r"gt.txt:2: non-numeric"),
                                        ("1,2,3,4\n1,2,nan,4\n", r"gt.txt:2: NaN"),
                                        ("1,2,3\n", r"gt.txt:1: expected 4 values"),
                                        ("", "no box rows")])
def test_read_boxes_errors_name_file_and_line(tmp_path, text, match):
    p = tmp_path / "gt.txt"
    p.write_text(text)
    with pytest.raises(PMATrackError, match=match):
        read_boxes(p)


@pytest.fixture
def seq_copy(tmp_path, samples_dir):
    dst = tmp_path / "s"
    shutil.copytree(samples_dir / "small_occlusion", dst)
    return dst


def test_missing_pieces_are_named(seq_copy, tmp_path):
    with pytest.raises(PMATrackError, match="sequence folder not found"):
        load_sequence(tmp_path / "nope")
    (seq_copy / "infrared.txt").unlink()
    with pytest.raises(PMATrackError, match="infrared.txt: box file not found"):
        load_sequence(seq_copy)


def test_frame_count_rule(seq_copy):
    frames = sorted((seq_copy / "visible").iterdir())
    frames[-1].unlink()
    with pytest.raises(PMATrackError, match="39 frames but .*visible.txt has 40 rows"):
        load_sequence(seq_copy)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = load_sequence(seq_copy, strict=False)
    assert len(s) == 39 and len(s.gt_infrared) == 39 and any("keeping the first 39" in str(x.message) for x in w)


def test_unreadable_image(seq_copy):
    (seq_copy / "visible" / "v000003.jpg").write_bytes(b"not a jpeg")
    s = load_sequence(seq_copy)  # lazy: listing works
    with pytest.raises(PMATrackError, match="v000003.jpg: unreadable image"):
        s.rgb(3)


def test_invalid_rows_kept_but_bad_init_rejected(seq_copy):
    rows = (seq_copy / "visible.txt").read_text().splitlines()
    rows[5] = "0,0,0,0"
    (seq_copy / "visible.txt").write_text("\n".join(rows) + "\n")
    s = load_sequence(seq_copy)
    assert np.all(s.gt_visible[5] == 0)
    init = (seq_copy / "init.txt").read_text().splitlines()
    init[0] = "10,10,-5,8"
    (seq_copy / "init.txt").write_text("\n".join(init) + "\n")
    with pytest.raises(PMATrackError, match="init.txt:1: the initial box must have positive size"):
        load_sequence(seq_copy)


def test_rgbt234_names_and_mismatched_modalities(tmp_path, seq_copy):
    for folder, suffix in (("visible", "v"), ("infrared", "i")):
        for p in (seq_copy / folder).iterdir():
            p.rename(p.with_name(f"{int(p.stem[1:]) + 1:05d}{suffix}.jpg"))
    s = load_sequence(seq_copy)
    assert s.rgb_files[0].name == "00001v.jpg" and s.rgb_files[10].name == "00011v.jpg"
    sorted((seq_copy / "infrared").iterdir())[-1].unlink()
    (seq_copy / "infrared.txt").write_text("\n".join((seq_copy / "infrared.txt").read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(PMATrackError, match="mismatched modalities"):
        load_sequence(seq_copy)


def test_sequence_list(tmp_path, samples_dir):
    lf = tmp_path / "list.txt"
    lf.write_text("small_occlusion\nnone_lowlight\n")
    assert sequence_names(samples_dir, lf) == ["small_occlusion", "none_lowlight"]
    lf.write_text("small_occlusion\nmissing_one\n")
    with pytest.raises(PMATrackError, match="missing_one"):
        sequence_names(samples_dir, lf)
    with pytest.raises(PMATrackError, match="no sequences"):
        sequence_names((tmp_path / "empty").mkdir() or tmp_path / "empty")


def test_atomic_writes_leave_no_partial_file_and_normal_permissions(tmp_path):
    import os
    from pmatrack_mini.utils import atomic_path, write_text_atomic

    target = tmp_path / "out.txt"
    write_text_atomic(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert (target.stat().st_mode & 0o777) == (0o666 & ~umask)
