"""TOCU: lifting the network's alignment to the image, the decision rule, and the tracker's outputs with it."""
import json

import numpy as np
import pytest

from pmatrack_mini.cli import main
from pmatrack_mini.data.crops import crop_matrix
from pmatrack_mini.geometry import homography_from_params
from pmatrack_mini.tracking.tocu import TOCU, TOCUConfig, change_at, lift_alignment, residual_px



def test_the_true_crop_residual_lifts_to_the_true_homography():
    """If the network found the exact residual of the crops it was fed, H' = H_t delta is the true H."""
    C = crop_matrix(150.0, 100.0, 112.0, 128)
    H_t = homography_from_params(20, -8, 1.05, 0.97, center=(160, 128))        # the running homography
    H_true = homography_from_params(31, -2, 1.12, 1.01, center=(160, 128), angle_deg=1.0)
    H_crop = C @ np.linalg.inv(H_t) @ H_true @ np.linalg.inv(C)               # what the stages should output
    delta = lift_alignment(H_crop, C)
    H_new = H_t @ delta
    np.testing.assert_allclose(H_new / H_new[2, 2], H_true / H_true[2, 2], atol=1e-9)
    assert residual_px(H_new, H_true, [140, 90, 20, 24]) < 1e-6 < residual_px(H_t, H_true, [140, 90, 20, 24])
    assert change_at(np.eye(3), (10, 10)) == 0


def _decider(ious):
    """A TOCU whose first-frame check returns boxes with the given IoUs (current H first, then proposals)."""
    first = np.array([100.0, 100.0, 20.0, 20.0])
    seen = []

    def first_frame_box(H):
        iou = ious[len(seen)]
        seen.append(H)
        w = 20 * iou                      # a box inside the first box: IoU = w * 20 / 400
        return np.array([100.0, 100.0, w, 20.0])

    return TOCU(TOCUConfig(), first, first_frame_box), seen


@pytest.mark.parametrize("score, shift, ious, accept, reason", [
    (0.3, 10.0, [], False, "low score"),
    (0.9, 0.5, [], False, "small change"),
    (0.9, 10.0, [0.9, 0.6], False, "below threshold"),
    (0.9, 10.0, [0.95, 0.8], False, "lower than the current"),
    (0.9, 10.0, [0.8, 0.78], True, "accepted"),               # within the tolerance
])
def test_decision_rule(score, shift, ious, accept, reason):
    tocu, seen = _decider(ious)
    H_t = np.eye(3)
    delta = homography_from_params(shift, 0.0)
    d = tocu.decide(H_t, delta, score, (110, 110))
    assert d["accept"] == accept and reason in d["reason"]
    assert np.allclose(d["H"], H_t @ delta if accept else H_t)
    assert len(seen) == len(ious)                             # the check runs only when needed


def test_current_iou_is_cached_until_the_homography_changes():
    tocu, seen = _decider([0.8, 0.85, 0.9])
    delta = homography_from_params(5.0, 0.0)
    assert tocu.decide(np.eye(3), delta, 0.9, (110, 110))["accept"]
    d = tocu.decide(np.eye(3), delta, 0.9, (110, 110))          # current IoU now the accepted 0.85: no re-run
    assert len(seen) == 3 and d["iou_current"] == pytest.approx(0.85)


def test_track_writes_alignment_csv_and_summary(stage2_checkpoint, tmp_path, capsys):
    stage2_ckpt = stage2_checkpoint
    lst = tmp_path / "list.txt"
    lst.write_text("large_fastmotion\n")
    out = tmp_path / "res"
    assert main(["track", "--checkpoint", str(stage2_ckpt), "--dataset", "data_samples", "--list", str(lst),
                 "--out", str(out), "--quiet"]) == 0
    import csv
    rows = list(csv.DictReader((out / "large_fastmotion.align.csv").open()))
    assert len(rows) == 39
    assert {"center_expert", "refine_log_sx", "tocu", "residual_crop_px", "residual_network_px", "macs"} <= set(rows[0])
    assert all(r["tocu"] in ("accepted", "rejected", "skipped") for r in rows)
    summary = json.loads((out / "track_summary.json").read_text())
    seq = summary["sequences"]["large_fastmotion"]
    assert summary["tocu"] is True and seq["frames"] == 39 and set(seq["expert_usage"]) == {"center", "scale", "refine"}
    assert summary["overall"]["macs_per_frame"] > 0 and 0 <= summary["overall"]["tocu"]["acceptance_per_frame"] <= 1
    # without TOCU the homography stays H0: the crop residual equals the first-frame residual of the sequence
    assert main(["track", "--checkpoint", str(stage2_ckpt), "--dataset", "data_samples", "--list", str(lst),
                 "--out", str(tmp_path / "off"), "--no-tocu", "--quiet"]) == 0
    off = list(csv.DictReader((tmp_path / "off" / "large_fastmotion.align.csv").open()))
    assert all(r["tocu"] == "off" for r in off)


def test_tocu_refused_for_stage1_and_oracle(stage1_checkpoint, tmp_path, capsys):
    ck = stage1_checkpoint
    assert main(["track", "--checkpoint", str(ck), "--dataset", "data_samples", "--out", str(tmp_path / "r"),
                 "--tocu", "--quiet"]) == 2
    assert "TOCU" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_decision_quality_sorts_proposals_by_their_true_gain():
    from pmatrack_mini.tracking.track_outputs import decision_quality

    rows = [dict(tocu="accepted", residual_crop_px=5.0, residual_network_px=1.0),      # better
            dict(tocu="accepted", residual_crop_px=1.0, residual_network_px=4.0),      # worse
            dict(tocu="rejected", residual_crop_px=3.0, residual_network_px=3.2),      # about the same
            dict(tocu="skipped", residual_crop_px=9.0, residual_network_px=2.0),       # better, never checked
            dict(tocu="off", residual_crop_px=9.0, residual_network_px=2.0),           # TOCU off: not counted
            dict(tocu="accepted")]                                                     # no ground truth
    q = decision_quality(rows)
    assert q == dict(accepted=dict(better=1, same=0, worse=1), rejected=dict(better=0, same=1, worse=0),
                     skipped=dict(better=1, same=0, worse=0))
