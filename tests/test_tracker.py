import numpy as np
import torch
import pytest

from pmatrack_mini.cli import main
from pmatrack_mini.data import load_dataset
from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.tracking.tracker import Tracker, clip_box, hann2d


@pytest.fixture(scope="module")
def ckpt(stage1_checkpoint):
    return stage1_checkpoint


def test_track_cli_writes_toolkit_files(ckpt, tmp_path, capsys):
    lst = tmp_path / "list.txt"
    lst.write_text("small_occlusion\n")
    out = tmp_path / "res"
    assert main(["track", "--checkpoint", str(ckpt), "--dataset", "data_samples", "--list", str(lst),
                 "--out", str(out), "--quiet"]) == 0
    rows = np.loadtxt(out / "small_occlusion.txt", delimiter=",")
    assert rows.shape == (40, 4) and np.all(rows[:, 2:] > 0)
    assert main(["eval", "--dataset", "data_samples", "--list", str(lst), "--results", str(out)]) == 0
    assert "FPS" in capsys.readouterr().out


def test_checkpoint_errors(ckpt, tmp_path, capsys):
    args = ["--dataset", "data_samples", "--out", str(tmp_path / "r"), "--quiet"]
    assert main(["track", "--checkpoint", str(tmp_path / "none.pt")] + args) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(ckpt.read_bytes()[:2000])
    assert main(["track", "--checkpoint", str(bad)] + args) == 2
    assert "truncated or foreign" in capsys.readouterr().err
    assert main(["track", "--checkpoint", str(ckpt), "--preset", "paper"] + args) == 2
    assert "preset is 'cpu-mini'" in capsys.readouterr().err


def test_mismatched_modalities_are_refused(ckpt, tmp_path, capsys):
    import shutil
    shutil.copytree("data_samples/small_occlusion", tmp_path / "ds" / "s")
    for p in sorted((tmp_path / "ds" / "s" / "infrared").iterdir())[-3:]:
        p.unlink()
    lines = (tmp_path / "ds" / "s" / "infrared.txt").read_text().splitlines()[:-3]
    (tmp_path / "ds" / "s" / "infrared.txt").write_text("\n".join(lines) + "\n")
    assert main(["track", "--checkpoint", str(ckpt), "--dataset", str(tmp_path / "ds"), "--out", str(tmp_path / "r"),
                 "--quiet"]) == 2
    assert "mismatched modalities" in capsys.readouterr().err


def test_tracker_api_errors_and_helpers(ckpt):
    from pmatrack_mini.models import model_from_checkpoint
    model, cfg, _ = model_from_checkpoint(ckpt)
    seq = load_dataset("data_samples")[0]
    tr = Tracker(model, cfg)
    with pytest.raises(PMATrackError, match="initialize"):
        tr.track(seq.rgb(1), seq.tir(1))
    with pytest.raises(PMATrackError, match="w, h > 0"):
        tr.initialize(seq.rgb(0), seq.tir(0), [1, 2, 0, 4])
    with pytest.raises(PMATrackError, match=r"\(H, W, 3\)"):
        tr.initialize(seq.rgb(0), seq.tir(0)[..., 0], seq.init_box)
    with pytest.raises(PMATrackError, match="needs the first-frame TIR box"):
        tr.initialize(seq.rgb(0), seq.tir(0), seq.init_box)
    with pytest.raises(PMATrackError, match="oracle"):
        Tracker(model, cfg, prealign="oracle").initialize(seq.rgb(0), seq.tir(0), seq.init_box)
    with pytest.raises(PMATrackError, match="prealign must be"):
        Tracker(model, cfg, prealign="gt")
    tr.initialize(seq.rgb(0), seq.tir(0), seq.init_box, seq.gt_infrared[0])
    box = tr.track(seq.rgb(1), seq.tir(1))
    assert box.shape == (4,) and box[0] >= 0 and box[0] + box[2] <= 320
    w = hann2d(8)
    assert w.shape == (8, 8) and w.min() > 0 and torch.isclose(w[3:5, 3:5].min(), w.max())
    np.testing.assert_allclose(clip_box(np.array([-50.0, 10, 30, 20]), (320, 256)), [0, 10, 10, 20])


def test_prealign_cli_modes_and_errors(ckpt, tmp_path, capsys):
    import shutil
    lst = tmp_path / "list.txt"
    lst.write_text("large_fastmotion\n")
    for mode in ("none", "first-frame", "oracle"):
        out = tmp_path / mode
        assert main(["track", "--checkpoint", str(ckpt), "--dataset", "data_samples", "--list", str(lst),
                     "--out", str(out), "--prealign", mode, "--quiet"]) == 0
        assert np.loadtxt(out / "large_fastmotion.txt", delimiter=",").shape == (40, 4)
    shutil.copytree("data_samples/large_fastmotion", tmp_path / "ds" / "s")
    (tmp_path / "ds" / "s" / "homography.txt").unlink()
    assert main(["track", "--checkpoint", str(ckpt), "--dataset", str(tmp_path / "ds"), "--out", str(tmp_path / "r"),
                 "--prealign", "oracle", "--quiet"]) == 2
    assert "needs homography.txt" in capsys.readouterr().err and not (tmp_path / "r").exists()
    assert main(["track", "--checkpoint", str(ckpt), "--dataset", "data_samples", "--out", str(tmp_path / "r"),
                 "--routing", "dpe", "--quiet"]) == 2
    assert "no alignment stages" in capsys.readouterr().err


def test_a_failing_sequence_keeps_the_finished_results_and_says_so(ckpt, tmp_path, capsys):
    import shutil
    for name in ("small_occlusion", "none_lowlight"):
        shutil.copytree(f"data_samples/{name}", tmp_path / "ds" / name)
    (tmp_path / "ds" / "list.txt").write_text("small_occlusion\nnone_lowlight\n")
    (tmp_path / "ds" / "none_lowlight" / "visible" / "v000005.jpg").write_bytes(b"no")
    out = tmp_path / "res"
    assert main(["track", "--checkpoint", str(ckpt), "--dataset", str(tmp_path / "ds"), "--out", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "v000005.jpg: unreadable image (sequence 2 of 2, none_lowlight)" in err
    assert "kept the 1 finished result (small_occlusion)" in err and "not tracked: 1 sequence (none_lowlight)" in err
    assert sorted(p.name for p in out.iterdir()) == ["small_occlusion.align.csv", "small_occlusion.txt"]   # complete
    assert np.loadtxt(out / "small_occlusion.txt", delimiter=",").shape == (40, 4)
    assert main(["eval", "--dataset", str(tmp_path / "ds"), "--results", str(out)]) == 2     # never scored partial
    assert "no result file for 1 sequence(s), e.g. none_lowlight.txt" in capsys.readouterr().err
