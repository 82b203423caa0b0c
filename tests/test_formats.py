"""Result-file formats (lasher / official / corners) and the unaligned benchmarks' folder layouts, on small
fabricated folders: each layout loads with the right ground truth, each format scores as the lasher rows of the same
boxes through ``pmatrack-mini eval`` (and through the ``rgbt`` package's loaders when it is installed)."""
import json

import cv2
import numpy as np
import pytest

from pmatrack_mini.cli import main
from pmatrack_mini.data.dataset import load_dataset, load_sequence
from pmatrack_mini.data.layouts import LAYOUTS, detect_layout
from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.evaluation.evaluate import read_result_file
from pmatrack_mini.tracking.track_outputs import RESULT_FORMATS, write_result

NAMES = ("carA", "boy_2")
T = 8


def _gts(seed: int):
    """Integer visible and (other, smaller-camera) infrared GT per sequence."""
    rng = np.random.default_rng(seed)
    out = {}
    for n in NAMES:
        v = np.column_stack([rng.integers(20, 60, T), rng.integers(20, 40, T), rng.integers(8, 30, T),
                             rng.integers(8, 30, T)]).astype(float)
        i = np.round(v / 2) + [7, 3, 0, 0]
        out[n] = (v, i)
    return out


def _frames(folder, prefix, size):
    folder.mkdir(parents=True)
    img = np.zeros((size[1], size[0], 3), np.uint8)
    for t in range(T):
        cv2.imwrite(str(folder / f"{prefix}{t:06d}.png"), img)


def _rows(path, boxes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(",".join(f"{v:g}" for v in b) + "\n" for b in boxes))


def make_layout(root, layout, seed=0):
    """A fabricated dataset folder in ``layout``; returns {name: (visible GT, infrared GT)}."""
    gts = _gts(seed)
    home = root / "sequence" if layout == "muart244" else root
    for n, (v, i) in gts.items():
        seq = home / n
        frames = seq / "NotAlign" if layout == "luart" else seq
        _frames(frames / "visible", "v", (16, 12))
        _frames(frames / "infrared", "i", (8, 6))
        if layout == "lasher-unaligned":
            _rows(root / "annos" / f"{n}.txt", v)
            _rows(seq / "visible.txt", np.vstack([v[:1], v[1:] + 50]))   # only the first row (init) is read
            _rows(seq / "infrared.txt", i)
        elif layout == "muart244":
            _rows(root / "annos" / "visible" / f"{n}.txt", v)
            _rows(root / "annos" / "infrared" / f"{n}.txt", i)
        else:
            _rows(seq / "visible.txt", v)
            _rows(seq / "infrared.txt", i)
    return gts


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_loads_with_the_right_gt(tmp_path, layout):
    gts = make_layout(tmp_path, layout)
    assert detect_layout(tmp_path) == layout
    seqs = {s.name: s for s in load_dataset(tmp_path)}
    assert sorted(seqs) == sorted(NAMES)
    assert [s.name for s in load_dataset(tmp_path, layout=layout)] == [s.name for s in load_dataset(tmp_path)]
    for n, (v, i) in gts.items():
        s = seqs[n]
        np.testing.assert_array_equal(s.gt_visible, v)
        np.testing.assert_array_equal(s.gt_infrared, i)
        np.testing.assert_array_equal(s.init_box, v[0])
        assert len(s) == T and s.rgb_files[0].name == "v000000.png" and s.tir_files[-1].name == "i000007.png"
        assert ("NotAlign" in s.rgb_files[0].parts) == (layout == "luart")
        assert s.rgb(0).shape == (12, 16, 3) and s.tir(0).shape == (6, 8, 3)
        np.testing.assert_array_equal(load_sequence(s.path).gt_visible, v)   # a single sequence folder too


def _predictions(gts, seed=1):
    """Integer predictions near the visible GT (frame 1 = the GT, as the official tracker writes it)."""
    rng = np.random.default_rng(seed)
    out = {}
    for n, (v, _) in gts.items():
        p = v + rng.integers(-12, 13, v.shape) * [1, 1, 0.5, 0.5]
        p[:, 2:] = np.maximum(np.round(p[:, 2:]), 1)
        p[0] = v[0]
        out[n] = p
    return out


def _eval(capsys, data, res, *extra):
    out = res.parent / f"{res.name}.json"
    assert main(["eval", "--dataset", str(data), "--results", str(res), "--json", str(out), *extra]) == 0, \
        capsys.readouterr().err
    rep = json.loads(out.read_text())
    return {k: rep[k] for k in ("PR", "NPR", "SR")}, rep


@pytest.mark.parametrize("layout", ["muart244", "lasher-unaligned"])
def test_every_format_scores_as_the_lasher_rows(tmp_path, capsys, layout):
    gts = make_layout(tmp_path / "data", layout)
    preds = _predictions(gts)
    scores = {}
    for fmt in RESULT_FORMATS:
        for n, p in preds.items():
            write_result(tmp_path / fmt, n, p, fmt, init_box=gts[n][0][0])
        scores[fmt], rep = _eval(capsys, tmp_path / "data", tmp_path / fmt)
        assert rep["gt"] == "visible"
    assert 0 < scores["lasher"]["SR"] < 0.95
    assert scores["official"] == scores["lasher"] == scores["corners"]
    names = {fmt: sorted(p.name for p in (tmp_path / fmt).iterdir()) for fmt in RESULT_FORMATS}
    assert names["lasher"] == names["official"] == ["boy_2.txt", "carA.txt"]
    assert names["corners"] == ["PMATrack_boy_2.txt", "PMATrack_carA.txt"]
    # scored against the visible GT: a perfect visible prediction is perfect whatever the TIR GT says
    for n, (v, _) in gts.items():
        write_result(tmp_path / "perfect", n, v, "official")
    assert _eval(capsys, tmp_path / "data", tmp_path / "perfect")[0] == dict(PR=1.0, NPR=1.0, SR=20 / 21)


def test_file_contents_of_each_format(tmp_path):
    box = np.array([[10.7, -3.7, 20.2, 5.9], [1, 2, 3, 4]])
    assert write_result(tmp_path, "s", box, "official").read_text() == "10 -3 20 5\n1 2 3 4\n"   # cast as int()
    assert write_result(tmp_path, "s", box, "official", init_box=[5, 6, 7, 8]).read_text() == "5 6 7 8\n1 2 3 4\n"
    assert write_result(tmp_path, "s", box, "lasher").read_text().splitlines()[0] == "10.70,-3.70,20.20,5.90"
    p = write_result(tmp_path, "s", box, "corners", tracker="MyTracker")
    assert p.name == "MyTracker_s.txt"
    assert p.read_text().splitlines()[1] == "1.00 2.00 4.00 2.00 4.00 6.00 1.00 6.00"
    back, fmt = read_result_file(p)
    assert fmt == "corners"
    np.testing.assert_allclose(back, box, atol=0.011)


def test_corner_rows_are_the_four_corners_of_one_box(tmp_path, capsys):
    rgb, tir = np.array([[30.0, 40.0, 20.0, 10.0]]), np.array([[300.0, 200.0, 50.0, 60.0]])
    row = [float(v) for v in write_result(tmp_path, "s", rgb, "corners").read_text().split()]
    x, y, w, h = rgb[0]
    # columns 5-8 are the bottom-right and bottom-left corners of the same box, not another (TIR) box
    assert row[4:] == [x + w, y + h, x, y + h] and row[4:] != tir[0].tolist()
    assert row[:4] == [x, y, x + w, y]
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3 4 5 6 7 8\n" + " ".join(f"{v:g}" for v in np.r_[rgb[0], tir[0]]) + "\n")
    with pytest.raises(PMATrackError, match=r"bad.txt:1: 8 values must be the corners .* of one box"):
        read_result_file(bad)


def _fails(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    for s in needles:
        assert s in err, err
    return err


def test_bad_result_folders_exit_2_naming_file_and_line(tmp_path, capsys):
    data = tmp_path / "data"
    gts = make_layout(data, "lasher")
    preds = _predictions(gts)
    res = tmp_path / "res"
    write_result(res, "boy_2", preds["boy_2"], "lasher")
    write_result(res, "carA", preds["carA"], "corners", tracker="X")
    (res / "carA.txt").write_text((res / "X_carA.txt").read_text())
    (res / "X_carA.txt").unlink()
    argv = ["eval", "--dataset", str(data), "--results", str(res), "--json", str(tmp_path / "r.json")]
    _fails(capsys, argv, "carA.txt:1: 8-value corner row", "boy_2.txt has 4-value x,y,w,h rows")
    write_result(res, "carA", preds["carA"], "lasher")
    lines = (res / "carA.txt").read_text().splitlines()
    (res / "carA.txt").write_text("\n".join(lines[:3] + [lines[3] + ",7"] + lines[4:]) + "\n")
    _fails(capsys, argv, "carA.txt:4: expected 4 values (x,y,w,h) or 8", "got 5")
    corner = " ".join(["1", "2", "5", "2", "5", "9", "1", "9"])
    (res / "carA.txt").write_text("\n".join(lines[:2] + [corner] + lines[3:]) + "\n")
    _fails(capsys, argv, "carA.txt:3: 8-value corner row, but earlier rows are 4-value x,y,w,h")
    for n in NAMES:                                         # two trackers' corner files in one folder
        (res / f"{n}.txt").unlink()
        write_result(res, n, preds[n], "corners", tracker="A")
        write_result(res, n, preds[n], "corners", tracker="B")
    _fails(capsys, argv, "result files of several trackers (A_, B_)")
    for n in NAMES:
        (res / f"B_{n}.txt").unlink()
    assert main(argv[:5]) == 0
    (res / "A_carA.txt").unlink()
    _fails(capsys, argv, "no result file for 1 sequence(s), e.g. A_carA.txt")
    assert not (tmp_path / "r.json").exists()


def test_bad_dataset_folders_exit_2_naming_the_folder(tmp_path, capsys):
    res = tmp_path / "res"
    res.mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(capsys, ["eval", "--dataset", str(empty), "--results", str(res)],
           f"{empty}: no sequences in any known dataset layout", "MUART244 (annos/visible/<seq>.txt)")
    data = tmp_path / "mu"
    make_layout(data, "muart244")
    _rows(data / "annos" / "visible" / "ghost.txt", [[1, 2, 3, 4]])   # annotated, but no frames
    _fails(capsys, ["eval", "--dataset", str(data), "--results", str(res)],
           "incomplete MUART244 folder", str(data / "sequence" / "ghost"))
    (data / "annos" / "visible" / "ghost.txt").unlink()
    (data / "annos" / "infrared" / "carA.txt").unlink()
    _fails(capsys, ["eval", "--dataset", str(data), "--results", str(res)],
           "infrared/carA.txt or ", "carA/infrared.txt: not found: incomplete MUART244 folder")
    ua = tmp_path / "ua"
    make_layout(ua, "lasher")
    _fails(capsys, ["eval", "--dataset", str(ua), "--results", str(res), "--layout", "lasher-unaligned"],
           "not a LasHeR-Unaligned folder", "annos/<seq>.txt")
    (ua / "annos").mkdir()
    _rows(ua / "annos" / "carA.txt", _gts(0)["carA"][0][:-2])     # two rows short of the frames
    _fails(capsys, ["eval", "--dataset", str(ua), "--results", str(res)],
           "visible has 8 frames but", "annos/carA.txt has 6 rows")


def test_writer_refuses_bad_input_and_writes_nothing(tmp_path):
    box = np.array([[1.0, 2.0, 3.0, 4.0], [np.nan, 2.0, 3.0, 4.0]])
    with pytest.raises(PMATrackError, match="frame 2 is not finite"):
        write_result(tmp_path, "s", box, "official")
    with pytest.raises(PMATrackError, match="unknown result format 'mot'"):
        write_result(tmp_path, "s", box, "mot")
    with pytest.raises(PMATrackError, match="cannot prefix a file name"):
        write_result(tmp_path, "s", box, "corners", tracker="a/b")
    assert list(tmp_path.iterdir()) == []


def _rgbt_gt(tmp_path, gts):
    """The fabricated visible GT as the rgbt package's LasHeR and RGBT234 loaders read ground truth (RGBT234's with
    the visible GT for both cameras, so that its MPR / MSR are PR / SR against the visible GT)."""
    lasher, r234 = tmp_path / "lasher" / "gt", tmp_path / "r234" / "gt"
    for n, (v, _) in gts.items():
        _rows(lasher / f"{n}.txt", v)
        _rows(tmp_path / "lasher" / "AttriSeqsTxt" / f"{n}.txt", [[0] * 19])
        _rows(r234 / n / "visible.txt", v)
        _rows(r234 / n / "infrared.txt", v)
    for a in ("BC", "CM", "DEF", "FM", "HO", "LI", "LR", "MB", "NO", "TC", "PO", "SC"):
        _rows(tmp_path / "r234" / "attr_txt" / f"{a}.txt", [[0]] * len(gts))
    (tmp_path / "seqs.txt").write_text("\n".join(gts) + "\n")
    return str(lasher) + "/", str(r234) + "/", str(tmp_path / "seqs.txt")


def test_rgbt_package_scores_our_files_identically(tmp_path, capsys):
    rgbt = pytest.importorskip("rgbt")
    gts = make_layout(tmp_path / "data", "lasher-unaligned")
    preds = _predictions(gts, seed=3)
    for fmt in RESULT_FORMATS:
        for n, p in preds.items():
            write_result(tmp_path / fmt, n, p, fmt)
    ours = _eval(capsys, tmp_path / "data", tmp_path / "lasher")[0]
    lasher_gt, r234_gt, seqs = _rgbt_gt(tmp_path, gts)
    lasher = rgbt.LasHeR(gt_path=lasher_gt, seq_name_path=seqs)
    for fmt in ("lasher", "official"):
        lasher(tracker_name=fmt, result_path=str(tmp_path / fmt), bbox_type="ltwh")
        theirs = dict(PR=lasher.PR(fmt)[0], NPR=lasher.NPR(fmt)[0], SR=lasher.SR(fmt)[0])
        assert theirs == pytest.approx(ours, abs=1e-9), fmt
    r234 = rgbt.RGBT234(gt_path=r234_gt, seq_name_path=seqs)
    r234(tracker_name="corners", result_path=str(tmp_path / "corners"), prefix="PMATrack_", bbox_type="corner")
    assert (r234.MPR("corners")[0], r234.MSR("corners")[0]) == pytest.approx((ours["PR"], ours["SR"]), abs=1e-9)
