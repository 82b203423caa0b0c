"""``calibrate``: the RGB -> TIR homography from point pairs or two boxes, its file, its figure, its errors."""
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from pmatrack_mini.cli import main
from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.geometry import apply_homography, fit_box_homography
from pmatrack_mini.tracking.calibrate import (fit_homography, read_homography_file, read_point_pairs,
                                              write_homography_file)

RGB_WH, TIR_WH = (320, 256), (160, 128)
# a realistic rig: scale ~0.48, a shift, 1.5 degrees of rotation and a little perspective (RGB px -> TIR px)
H_TRUE = np.array([[0.4775, 0.0129, 27.77], [-0.0091, 0.4716, -9.17], [3.27e-5, 2.34e-5, 1.0]])
CORNERS = np.array([[-0.5, -0.5], [RGB_WH[0] - 0.5, -0.5], [RGB_WH[0] - 0.5, RGB_WH[1] - 0.5],
                    [-0.5, RGB_WH[1] - 0.5]])                                   # (4, 2) RGB image corners


def corner_error(H, worst: bool = False) -> float:
    """Mean (``worst``: largest) distance, in TIR px, between where H and H_TRUE put the RGB image's four corners:
    the average corner error of the homography-estimation literature. The corners lie beyond the points, so this
    measures the extrapolation a tracker relies on at the frame's edges."""
    d = np.linalg.norm(apply_homography(H, CORNERS) - apply_homography(H_TRUE, CORNERS), axis=1)   # (4,)
    return float(d.max() if worst else d.mean())


def make_pairs(n: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """(n, 4) pairs: RGB points spread over the frame, their TIR images under H_TRUE plus Gaussian noise (px)."""
    rng = np.random.default_rng(seed)
    rgb = rng.uniform([10, 10], [RGB_WH[0] - 10, RGB_WH[1] - 10], size=(n, 2))
    tir = apply_homography(H_TRUE, rgb) + rng.normal(0.0, noise, size=(n, 2))
    return np.concatenate([rgb, tir], axis=1)


def write_pairs(path: Path, pairs, sep=" ") -> Path:
    path.write_text("".join(sep.join(f"{v:.4f}" for v in row) + "\n" for row in pairs))
    return path


@pytest.fixture()
def frames(tmp_path):
    """A textured RGB frame and the TIR frame the rig would see (grey, warped by H_TRUE), as PNG files."""
    rng = np.random.default_rng(1)
    rgb = cv2.resize(rng.integers(0, 255, (16, 20, 3), dtype=np.uint8), RGB_WH, interpolation=cv2.INTER_NEAREST)
    cv2.rectangle(rgb, (100, 80), (180, 160), (255, 255, 255), 3)
    tir = cv2.warpPerspective(cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY), H_TRUE, TIR_WH)
    cv2.imwrite(str(tmp_path / "rgb.png"), rgb)
    cv2.imwrite(str(tmp_path / "tir.png"), tir)
    return tmp_path / "rgb.png", tmp_path / "tir.png"


def test_four_exact_pairs_recover_h():
    pairs = np.concatenate([CORNERS + [[40, 30], [-40, 30], [-40, -30], [40, -30]], np.zeros((4, 2))], axis=1)
    pairs[:, 2:] = apply_homography(H_TRUE, pairs[:, :2])
    H, errors, inliers = fit_homography(pairs)
    assert corner_error(H) < 1e-4 and errors.max() < 1e-4 and inliers.all()


def test_twenty_noisy_pairs_recover_h():
    """1-px Gaussian noise on the TIR points: the mean corner error averaged over 20 seeded draws is ~1.4 px (a single
    draw exceeds 2 px about one time in eight, and the worst corner of a draw is ~2 px typically)."""
    fits = [fit_homography(make_pairs(20, noise=1.0, seed=seed)) for seed in range(20)]
    assert np.mean([corner_error(H) for H, _, _ in fits]) < 2.0
    assert np.median([corner_error(H, worst=True) for H, _, _ in fits]) < 3.0
    assert all(0.3 < errors.mean() < 2.0 for _, errors, _ in fits)   # ~ the noise: not zero, not blown up


def test_ransac_rejects_a_gross_outlier():
    pairs = make_pairs(20, noise=0.5, seed=2)
    pairs[7, 2:] += [40.0, -25.0]                          # one wrongly clicked pair
    H_lsq, _, _ = fit_homography(pairs)
    H_clean, _, _ = fit_homography(np.delete(pairs, 7, axis=0))
    H, errors, inliers = fit_homography(pairs, ransac_px=3.0)
    assert not inliers[7] and inliers.sum() == 19 and errors[7] > 30
    moved = lambda A, B: np.abs(apply_homography(A, CORNERS) - apply_homography(B, CORNERS)).max()   # noqa: E731
    assert moved(H, H_clean) < 0.05 and moved(H_lsq, H_clean) > 5.0   # RANSAC = the fit without the outlier


@pytest.mark.parametrize("rgb", [
    [[0, 0], [10, 10], [20, 20], [30, 30]],                                  # all on a line
    [[0, 0], [100, 50], [200, 100], [50, 200]],                              # three of four on a line
    [[i * 10.0, i * 5.0] for i in range(19)] + [[50, 200]],                  # all but one on a line
])
@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_degenerate_points_are_refused(rgb, noise):
    """OpenCV returns a finite, invertible and wrong H for these; the DLT rank check refuses them, also when noise
    (or rounding) in the TIR points hides the degeneracy from a check on the pairs as given."""
    rgb = np.asarray(rgb, dtype=np.float64)
    tir = apply_homography(H_TRUE, rgb) + np.random.default_rng(0).normal(0, noise, (len(rgb), 2))
    with pytest.raises(PMATrackError, match="do not fix a homography|degenerate points"):
        fit_homography(np.concatenate([rgb, np.round(tir, 3)], axis=1))


def test_file_round_trip(tmp_path):
    write_homography_file(tmp_path / "H.txt", H_TRUE * 3.0)          # any scale; written as H[2, 2] = 1
    text = (tmp_path / "H.txt").read_text()
    assert text.count("\n") == 1 and len(text.split()) == 9
    np.testing.assert_allclose(read_homography_file(tmp_path / "H.txt"), H_TRUE, rtol=1e-9)
    (tmp_path / "c.txt").write_text("\n" + ",".join(f"{v:.10g}" for v in H_TRUE.reshape(-1)) + "\n")
    np.testing.assert_allclose(read_homography_file(tmp_path / "c.txt"), H_TRUE, rtol=1e-9)


@pytest.mark.parametrize("text, message", [
    ("1 0 0 0 1 0 0 0\n", "expected 9 values"),
    ("1 0 0 0 1 0 0 0 x\n", "non-numeric"),
    ("1 0 0 0 1 0 0 0 nan\n", "NaN or infinite"),
    ("0 0 0 0 0 0 0 0 0\n", "all zero"),
    ("\n1 2 3 2 4 6 0 0 1\n", ":2: the homography cannot be used: it is singular"),
    ("1 0 0 0 1 0 0 0 1\n1 0 0 0 1 0 0 0 1\n", "2 homography lines"),
])
def test_bad_homography_file(tmp_path, text, message):
    (tmp_path / "H.txt").write_text(text)
    with pytest.raises(PMATrackError, match=message):
        read_homography_file(tmp_path / "H.txt")


def test_cli_points_writes_h_and_figure(tmp_path, frames, capsys):
    rgb, tir = frames
    points = write_pairs(tmp_path / "pairs.txt", make_pairs(20, noise=1.0, seed=0), sep=", ")
    assert main(["calibrate", "--rgb", str(rgb), "--tir", str(tir), "--points", str(points),
                 "--out", str(tmp_path / "cal" / "H.txt")]) == 0
    out = capsys.readouterr().out
    assert "reprojection error: mean" in out and "over 20 pairs" in out
    np.testing.assert_allclose(read_homography_file(tmp_path / "cal" / "H.txt"),
                               fit_homography(read_point_pairs(points))[0], rtol=1e-8, atol=1e-12)
    png = cv2.imread(str(tmp_path / "cal" / "H.png"))
    assert png is not None and png.shape[1] > png.shape[0]
    assert sorted(p.name for p in (tmp_path / "cal").iterdir()) == ["H.png", "H.txt"]   # no temporaries left
    bad = make_pairs(20, noise=1.0, seed=0)
    bad[7, 2:] += [40.0, -25.0]
    write_pairs(points, bad)
    assert main(["calibrate", "--rgb", str(rgb), "--tir", str(tir), "--points", str(points), "--ransac", "3",
                 "--out", str(tmp_path / "cal" / "H.txt")]) == 0
    out = capsys.readouterr().out
    assert "19 of 20 inliers" in out and "line 8" in out


def test_cli_boxes_give_the_box_homography(tmp_path, frames):
    rgb, tir = frames
    fig = tmp_path / "fig.png"
    assert main(["calibrate", "--rgb", str(rgb), "--tir", str(tir), "--boxes", "100,80,60,40", "70,30,30,20",
                 "--out", str(tmp_path / "H.txt"), "--figure", str(fig)]) == 0
    expected = fit_box_homography(np.array([100, 80, 60, 40.0]), np.array([70, 30, 30, 20.0]))
    np.testing.assert_allclose(read_homography_file(tmp_path / "H.txt"), expected, rtol=1e-9, atol=1e-9)
    assert fig.is_file()


def _bad_inputs(tmp_path, rgb, tir):
    """(arguments, what the message must say) of each bad input."""
    good = make_pairs(6, seed=3)
    line = np.linspace(10, 200, 6)
    collinear = np.stack([line, line * 0.5 + 10, *apply_homography(H_TRUE, np.stack([line, line * 0.5 + 10], 1)).T],
                         axis=1)
    repeated = good.copy()
    repeated[4] = repeated[1]
    files = {
        "three": write_pairs(tmp_path / "three.txt", good[:3]),
        "five_values": Path(write_pairs(tmp_path / "five.txt", good)),
        "word": tmp_path / "word.txt",
        "nan": tmp_path / "nan.txt",
        "collinear": write_pairs(tmp_path / "collinear.txt", collinear),
        "repeated": write_pairs(tmp_path / "repeated.txt", repeated),
    }
    files["five_values"].write_text(files["five_values"].read_text() + "1 2 3 4 5\n")
    files["word"].write_text("1 2 3 4\n5 6 7 8\nnine 10 11 12\n13 14 15 16\n")
    files["nan"].write_text("1 2 3 4\n5 6 7 nan\n9 10 11 12\n13 14 15 16\n")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    ok = ["--rgb", str(rgb), "--tir", str(tir)]
    pts = lambda name: ok + ["--points", str(files[name])]   # noqa: E731
    return [
        (pts("three"), r"three.txt: 3 point pair\(s\); a homography needs at least 4"),
        (pts("five_values"), "five.txt:7: expected 4 values"),
        (pts("word"), "word.txt:3: non-numeric"),
        (pts("nan"), "nan.txt:2: NaN or infinite"),
        (pts("collinear"), "do not fix a homography"),
        (pts("repeated"), "repeated.txt:5: RGB point .* repeats line 2"),
        (ok + ["--boxes", "10,10,0,20", "5,5,8,8"], "zero size"),
        (ok + ["--boxes", "10,10,20,20", "5,5,8"], "expected 4 finite numbers"),
        (["--rgb", str(tmp_path / "broken.png"), "--tir", str(tir), "--points", str(files["three"])],
         "broken.png: unreadable image"),
        (["--rgb", str(rgb), "--tir", str(tmp_path / "none.png"), "--points", str(files["three"])], "none.png"),
        (ok + ["--points", str(files["three"]), "--ransac", "0"], "threshold"),
    ]


def test_bad_inputs_exit_2_and_write_nothing(tmp_path, frames, capsys):
    rgb, tir = frames
    out = tmp_path / "out"
    for args, message in _bad_inputs(tmp_path, rgb, tir):
        assert main(["calibrate", *args, "--out", str(out / "H.txt")]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and re.search(message, err), (message, err)
        assert not out.exists(), args
