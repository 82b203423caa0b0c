"""Your own cameras: ``track --rgb --tir`` on videos or frame folders tracks exactly what ``track --dataset`` tracks on
the same frames, writes the side-by-side video, starts from a calibration file as from the first TIR box, and refuses
broken input (exit 2, the file and frame named, nothing half-written)."""
import shutil

import cv2
import numpy as np
import pytest

from pmatrack_mini.cli import main
from pmatrack_mini.data import load_dataset
from pmatrack_mini.data.dataset import load_sequence
from pmatrack_mini.data.videos import sequence_to_videos, write_video
from pmatrack_mini.geometry import fit_box_homography
from pmatrack_mini.tracking.calibrate import write_homography_file
from pmatrack_mini.tracking.tocu import TOCU, TOCUConfig

FRAMES = 8


@pytest.fixture(scope="module")
def short_sequence(tmp_path_factory, samples_dir):
    """The first 8 frames of a large-offset sample sequence (RGB 320x256, TIR 160x128) as a one-sequence dataset."""
    root = tmp_path_factory.mktemp("short")
    src, dst = samples_dir / "large_fastmotion", root / "large_fastmotion"
    for mod in ("visible", "infrared"):
        (dst / mod).mkdir(parents=True)
        for f in sorted((src / mod).iterdir())[:FRAMES]:
            shutil.copy(f, dst / mod / f.name)
        rows = (src / f"{mod}.txt").read_text().splitlines()[:FRAMES]
        (dst / f"{mod}.txt").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def videos(short_sequence, tmp_path_factory):
    seq = load_sequence(short_sequence / "large_fastmotion")
    rgb, tir = sequence_to_videos(seq, tmp_path_factory.mktemp("videos"))          # lossless FFV1
    return seq, rgb, tir


def _box(b) -> str:
    return ",".join(f"{v:g}" for v in b)


def _track(ck, out, *extra) -> int:
    return main(["track", "--checkpoint", str(ck), "--out", str(out), "--quiet", *map(str, extra)])


def test_videos_track_as_the_folder_does_and_the_video_shows_both(stage2_checkpoint, short_sequence, videos, tmp_path):
    seq, rgb, tir = videos
    assert _track(stage2_checkpoint, tmp_path / "ds", "--dataset", short_sequence) == 0
    assert _track(stage2_checkpoint, tmp_path / "vid", "--rgb", rgb, "--tir", tir, "--init", _box(seq.init_box),
                  "--init-tir", _box(seq.gt_infrared[0]), "--name", seq.name, "--video") == 0
    for f in (f"{seq.name}.txt", f"{seq.name}.align.csv"):
        assert (tmp_path / "vid" / f).read_bytes() == (tmp_path / "ds" / f).read_bytes(), f
    cap = cv2.VideoCapture(str(tmp_path / "vid" / f"{seq.name}.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    ok, frame = cap.read()
    assert ok and frame.shape == (256, 320 + 320, 3)           # RGB beside TIR scaled to the RGB height
    # the calibration file starts the tracker where the first-frame boxes do
    H = tmp_path / "H.txt"
    write_homography_file(H, fit_box_homography(seq.init_box, seq.gt_infrared[0]))
    assert _track(stage2_checkpoint, tmp_path / "cal", "--rgb", rgb, "--tir", tir, "--init", _box(seq.init_box),
                  "--homography", H, "--name", seq.name) == 0
    np.testing.assert_allclose(load_dataset_boxes(tmp_path / "cal" / f"{seq.name}.txt"),
                               load_dataset_boxes(tmp_path / "ds" / f"{seq.name}.txt"), atol=0.02)


def load_dataset_boxes(path):
    return np.loadtxt(path, delimiter=",")


def test_frame_counts_must_agree_unless_truncated(stage2_checkpoint, videos, short_sequence, tmp_path, capsys):
    seq, rgb, tir = videos
    folder = short_sequence / "large_fastmotion" / "infrared"                       # 8 frames
    longer = write_video([seq.rgb(t % FRAMES) for t in range(FRAMES + 2)], tmp_path / "rgb10.avi")
    args = ["--rgb", longer, "--tir", folder, "--init", _box(seq.init_box), "--init-tir", _box(seq.gt_infrared[0])]
    assert _track(stage2_checkpoint, tmp_path / "a", *args) == 2
    assert "has 10 frames but" in capsys.readouterr().err and not (tmp_path / "a").exists()
    assert _track(stage2_checkpoint, tmp_path / "b", *args, "--truncate") == 0
    assert len(np.loadtxt(tmp_path / "b" / "rgb10.txt", delimiter=",")) == FRAMES


@pytest.mark.parametrize("case, message", [
    ("no init", "need --init"),
    ("both", "exactly one of --init-tir"),
    ("zero box", "w and h must be > 0"),
    ("singular", "singular"),
    ("nan homography", "NaN"),
    ("missing video", "not found"),
    ("not a video", "unknown kind of file"),
    ("dataset and videos", "not both"),
])
def test_bad_own_camera_input(stage2_checkpoint, videos, tmp_path, capsys, case, message):
    seq, rgb, tir = videos
    H = tmp_path / "H.txt"
    H.write_text({"singular": "1 2 3 2 4 6 0 0 1", "nan homography": "1 0 0 0 1 nan 0 0 1"}.get(case, "1 0 0 0 1 0 0 0 1") + "\n")
    init, start = ["--init", _box(seq.init_box)], ["--init-tir", _box(seq.gt_infrared[0])]
    args = {"no init": ["--rgb", rgb, "--tir", tir, *start],
            "both": ["--rgb", rgb, "--tir", tir, *init, *start, "--homography", H],
            "zero box": ["--rgb", rgb, "--tir", tir, "--init", "1,2,0,5", *start],
            "singular": ["--rgb", rgb, "--tir", tir, *init, "--homography", H],
            "nan homography": ["--rgb", rgb, "--tir", tir, *init, "--homography", H],
            "missing video": ["--rgb", tmp_path / "nope.mp4", "--tir", tir, *init, *start],
            "not a video": ["--rgb", H, "--tir", tir, *init, *start],
            "dataset and videos": ["--dataset", "data_samples", "--rgb", rgb, "--tir", tir, *init, *start]}[case]
    assert _track(stage2_checkpoint, tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_video_broken_mid_sequence_names_the_frame_and_writes_nothing(stage2_checkpoint, videos, tmp_path, capsys):
    seq, rgb, tir = videos
    cut = tmp_path / "cut.avi"
    data = rgb.read_bytes()
    cut.write_bytes(data[: len(data) * 5 // 8])                   # the container still promises 8 frames
    assert _track(stage2_checkpoint, tmp_path / "out", "--rgb", cut, "--tir", tir, "--init", _box(seq.init_box),
                  "--init-tir", _box(seq.gt_infrared[0])) == 2
    err = capsys.readouterr().err
    assert "cut.avi: frame" in err and "unreadable" in err
    assert not list((tmp_path / "out").glob("*.txt")) if (tmp_path / "out").exists() else True


def test_an_unreadable_frame_in_a_folder_is_named(stage2_checkpoint, short_sequence, tmp_path, capsys):
    bad = tmp_path / "ds"
    shutil.copytree(short_sequence, bad)
    frame = sorted((bad / "large_fastmotion" / "visible").iterdir())[5]
    frame.write_bytes(b"not an image")
    assert _track(stage2_checkpoint, tmp_path / "out", "--dataset", bad) == 2
    assert f"{frame.name}: unreadable image" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("*.txt")) if (tmp_path / "out").exists() else True


def test_a_singular_homography_row_is_refused_naming_the_frame(short_sequence, tmp_path):
    from pmatrack_mini.errors import PMATrackError

    bad = tmp_path / "ds"
    shutil.copytree(short_sequence, bad)
    rows = ["1 0 0 0 1 0 0 0 1"] * FRAMES
    rows[3] = "0 0 0 0 0 0 0 0 0"
    (bad / "large_fastmotion" / "homography.txt").write_text("\n".join(rows) + "\n")
    with pytest.raises(PMATrackError, match="homography of frame 4 cannot be used: it is singular"):
        load_dataset(bad)


@pytest.mark.parametrize("delta", [np.full((3, 3), np.nan), np.zeros((3, 3)), np.array([[1, 2, 0], [2, 4, 0], [0, 0, 1.0]])])
def test_tocu_refuses_a_broken_proposal_and_keeps_its_homography(delta):
    H_t = np.array([[0.5, 0, 3], [0, 0.5, -2], [0, 0, 1.0]])
    tocu = TOCU(TOCUConfig(), np.array([10, 10, 20, 20.0]), first_frame_box=lambda H: pytest.fail("no check needed"))
    rec = tocu.decide(H_t, delta, raw_score=0.9, target_center=(20, 20))
    assert not rec["accept"] and rec["reason"].startswith("invalid proposal") and rec["H"] is H_t


def test_track_writes_each_toolkit_format_and_eval_reads_it(stage2_checkpoint, short_sequence, tmp_path, capsys):
    import json

    scores = {}
    for fmt in ("lasher", "official", "corners"):
        out = tmp_path / fmt
        assert _track(stage2_checkpoint, out, "--dataset", short_sequence, "--format", fmt) == 0
        name = {"corners": "PMATrack_large_fastmotion.txt"}.get(fmt, "large_fastmotion.txt")
        rows = (out / name).read_text().splitlines()
        assert len(rows) == FRAMES and len(rows[1].replace(",", " ").split()) == (8 if fmt == "corners" else 4)
        assert main(["eval", "--dataset", str(short_sequence), "--results", str(out), "--json", str(out / "s.json")]) == 0
        scores[fmt] = json.loads((out / "s.json").read_text())
    assert json.loads((tmp_path / "official" / "track_summary.json").read_text())["format"] == "official"
    pr = {fmt: s["PR"] if "PR" in s else s["overall"]["PR"] for fmt, s in scores.items()}
    assert pr["corners"] == pytest.approx(pr["lasher"], abs=1e-9)       # 2 decimals both
    assert abs(pr["official"] - pr["lasher"]) <= 1 / (FRAMES - 1)        # integer truncation moves at most a frame
