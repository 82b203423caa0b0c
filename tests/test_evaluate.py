import dataclasses
import json

import numpy as np
import pytest

from pmatrack_mini.cli import main
from pmatrack_mini.data.dataset import Sequence, load_dataset
from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.evaluation import evaluate as E
from pmatrack_mini.utils import write_boxes


def test_iou_pixel_inclusive_by_hand():
    a = np.array([[1.0, 1.0, 10.0, 10.0]])
    b = np.array([[6.0, 6.0, 10.0, 10.0]])
    # pixels 6..10 overlap: 5 x 5 = 25; union 100 + 100 - 25 = 175
    assert E.iou_inclusive(a, b)[0] == pytest.approx(25 / 175)
    # boxes covering x 1..10 and 10..19 share one pixel column under the +1 convention
    c = np.array([[10.0, 1.0, 10.0, 10.0]])
    assert E.iou_inclusive(a, c)[0] == pytest.approx(10 / 190)
    # a GT row with x = 0 is invalid under the toolkit's rule (any of x, y, w, h <= 0)
    assert E.iou_inclusive(a, np.array([[0.0, 1.0, 10.0, 10.0]]))[0] == -1
    assert E.iou_inclusive(a, np.array([[1.0, 1.0, 0.0, 5.0]]))[0] == -1  # invalid GT


def test_centre_errors_by_hand():
    gt = np.array([[10.0, 10.0, 20.0, 10.0]])  # centre (19.5, 14.5)
    pred = np.array([[13.0, 14.0, 20.0, 10.0]])  # centre (22.5, 18.5): shift 3, 4
    assert E.center_errors(pred, gt)[0] == pytest.approx(5.0)
    assert E.normalized_center_errors(pred, gt)[0] == pytest.approx(np.hypot(3 / 20, 4 / 10))


def test_thresholds_and_scores_on_a_worked_sequence():
    gt = np.tile([[10.0, 10.0, 20.0, 20.0]], (5, 1))
    gt[4] = [0, 0, 0, 0]                                # invalid GT frame
    pred = gt.copy()
    pred[4] = [50, 50, 20, 20]
    pred[1] = [30, 10, 20, 20]                          # err 20 px exactly, IoU 0
    pred[2] = [10, 10, 20, 20]                          # perfect
    pred[3] = [np.nan, 1, 1, 1]                         # repaired from frame 2 -> perfect
    pred[0] = [100, 100, 5, 5]                          # frame 1 is replaced by the GT
    c = E.sequence_curves(pred, [gt])
    # errors: 0, 20, 0, 0, -1 -> PR(20) counts all 5 (<= is inclusive), PR(19) 4/5
    assert c["PR"][20] == 1.0 and c["PR"][19] == pytest.approx(0.8)
    assert c["PR"][0] == pytest.approx(0.8)             # the invalid frame succeeds even at 0
    # IoU: 1, 0, 1, 1, -1. SR(0) = 3/5 (strict >), SR(1.0) = 0 (IoU > 1 never)
    assert c["SR"][0] == pytest.approx(0.6) and c["SR"][-1] == 0.0
    s = E.scores(c)
    assert s["SR"] == pytest.approx((20 * 0.6 + 0.0) / 21)
    assert s["NPR"] == pytest.approx(0.8)               # 20/20 = 1.0 > 0.2 fails; others pass


def test_repair_rules():
    gt = np.tile([[1.0, 1.0, 4.0, 4.0]], (4, 1))
    pred = np.array([[9, 9, 9, 9], [2, 2, 4, 4], [3, 3, -1, 4], [4, 4, 0, 4], [7, 7, 7, 7]], dtype=float)
    out = E.repair_predictions(pred, gt)
    np.testing.assert_allclose(out, [[1, 1, 4, 4], [2, 2, 4, 4], [2, 2, 4, 4], [2, 2, 4, 4]])
    with pytest.raises(PMATrackError, match="3 prediction rows, but the ground truth has 4"):
        E.repair_predictions(pred[:3], gt)


def _seq(name, gt, attrs=None):
    return Sequence(name=name, path=None, rgb_files=[None] * len(gt), tir_files=[None] * len(gt),
                    gt_visible=gt, gt_infrared=gt + [2, 0, 0, 0], init_box=gt[0], attributes=attrs or {})


def test_dataset_mean_of_sequence_curves_and_attributes():
    g = np.tile([[10.0, 10.0, 10.0, 10.0]], (4, 1))
    s1 = _seq("a", g, {"occlusion": np.array([0, 1, 0, 0], bool)})
    s2 = _seq("b", np.tile([[10.0, 10.0, 10.0, 10.0]], (2, 1)))
    preds = {"a": g.copy(), "b": np.array([[10, 10, 10, 10], [40, 10, 10, 10]], float)}
    rep = E.evaluate_predictions([s1, s2], preds)
    # per sequence PR: a = 1, b = 1/2 -> mean 0.75 (not the frame-pooled 5/6)
    assert rep["PR"] == pytest.approx(0.75)
    assert rep["attributes"]["occlusion"]["sequences"] == 1 and rep["attributes"]["occlusion"]["PR"] == 1.0
    # RGBT234 mode takes the better of the two GTs per frame; infrared GT is 2 px off here (registered
    # cameras, separate annotations: no homography, so the GTs can only be compared when told they are aligned)
    both = E.evaluate_predictions([s1], {"a": g + [1, 0, 0, 0]}, gt="both", aligned=True)
    assert both["sequences"]["a"]["PR"] == 1.0
    with pytest.raises(PMATrackError, match="no homography.txt to map the predictions"):
        E.evaluate_predictions([s1], {"a": g}, gt="both")
    json.dumps(rep, allow_nan=False)


def test_cli_eval_json_plot_and_errors(tiny_dataset, tmp_path, capsys):
    seqs = load_dataset(tiny_dataset)
    res = tmp_path / "res"
    for s in seqs:
        write_boxes(res / f"{s.name}.txt", s.gt_visible)
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    assert main(["eval", "--dataset", str(tiny_dataset), "--results", str(res),
                 "--json", str(out_json), "--plot", str(out_png)]) == 0
    rep = json.loads(out_json.read_text())
    assert rep["PR"] == 1.0 and rep["NPR"] == 1.0 and 0.9 < rep["SR"] <= 20 / 21 + 1e-9
    assert {"PR", "NPR", "SR", "sequences", "attributes", "curves"} <= set(rep)
    assert out_png.read_bytes()[:4] == b"\x89PNG"
    # malformed results: a clear error, exit 2, no traceback, no JSON written
    bad = res / f"{seqs[0].name}.txt"
    bad.write_text("1,2,3,4\n1,2,oops,4\n")
    out_json.unlink()
    assert main(["eval", "--dataset", str(tiny_dataset), "--results", str(res), "--json", str(out_json)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "non-numeric" in err and "Traceback" not in err
    assert not out_json.exists()
    bad.write_text("1,2,3,4\n")
    assert main(["eval", "--dataset", str(tiny_dataset), "--results", str(res)]) == 2
    assert "1 prediction rows, but the ground truth has 20" in capsys.readouterr().err
    bad.unlink()
    assert main(["eval", "--dataset", str(tiny_dataset), "--results", str(res)]) == 2
    assert "no result file" in capsys.readouterr().err


def test_nan_results_are_repaired_not_fatal(tiny_dataset, tmp_path):
    seqs = load_dataset(tiny_dataset)
    res = tmp_path / "res"
    for s in seqs:
        p = s.gt_visible.copy()
        p[3] = np.nan
        write_boxes(res / f"{s.name}.txt", p)
    rep = E.evaluate(tiny_dataset, res)
    assert np.isfinite(rep["PR"]) and rep["PR"] > 0.9


@pytest.fixture
def unaligned_copy(tmp_path, samples_dir):
    """Two large-offset sample sequences (TIR at half the resolution, 40+ px apart) with perfect RGB results."""
    import shutil

    names = ["large_fastmotion", "large_occlusion_lowlight"]
    for n in names:
        shutil.copytree(samples_dir / n, tmp_path / "data" / n)
    (tmp_path / "data" / "list.txt").write_text("\n".join(names) + "\n")
    for s in load_dataset(tmp_path / "data"):
        write_boxes(tmp_path / "res" / f"{s.name}.txt", s.gt_visible)
    return tmp_path / "data", tmp_path / "res"


def test_infrared_gt_maps_rgb_predictions_through_the_homography(unaligned_copy, capsys):
    data, res = unaligned_copy
    seqs = load_dataset(data)
    rep = E.evaluate(data, res, gt="infrared")
    # the RGB GT mapped into TIR pixels is the TIR GT (to the 2-decimal rounding of infrared.txt)
    assert rep["PR"] == 1.0 and rep["NPR"] == 1.0 and rep["SR"] > 0.9
    # without the mapping the same predictions miss the TIR target: what the old comparison scored
    unmapped = [dataclasses.replace(s, homography=None) for s in seqs]
    raw = E.evaluate_predictions(unmapped, {s.name: s.gt_visible for s in seqs}, gt="infrared", aligned=True)
    assert raw["PR"] < 0.2
    assert E.evaluate(data, res, gt="both")["PR"] == 1.0
    assert main(["eval", "--dataset", str(data), "--results", str(res), "--gt", "infrared"]) == 0
    assert "gt=infrared" in capsys.readouterr().out


def test_infrared_gt_refused_without_homography_on_unaligned_sets(unaligned_copy, capsys, tmp_path):
    data, res = unaligned_copy
    (data / "large_fastmotion" / "homography.txt").unlink()
    out = tmp_path / "r.json"
    for gt in ("infrared", "both"):
        assert main(["eval", "--dataset", str(data), "--results", str(res), "--gt", gt, "--json", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and "large_fastmotion: infrared.txt is in TIR pixels" in err
        assert "no homography.txt" in err and not out.exists()
    # aligned sets (identical GT files, as LasHeR) need no mapping and score as against the visible GT
    seq = data / "large_fastmotion"
    (seq / "infrared.txt").write_text((seq / "visible.txt").read_text())
    lst = tmp_path / "one.txt"
    lst.write_text("large_fastmotion\n")
    assert E.evaluate(data, res, gt="infrared", list_file=lst)["PR"] == 1.0
