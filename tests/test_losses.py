import math

import pytest

import torch
from torchvision.ops import generalized_box_iou_loss

from pmatrack_mini.training.losses import focal_loss, gaussian_heatmap, tracking_loss


def test_heatmap_peak_on_centre_cell():
    h = gaussian_heatmap(torch.tensor([[0.3, 0.6, 0.25, 0.25]]), 8)
    assert h.shape == (1, 1, 8, 8)
    assert h[0, 0, 4, 2] == 1.0 and (h == 1).sum() == 1      # cx 0.3 * 8 = 2.4 -> column 2; cy 4.8 -> row 4
    assert h[0, 0, 4, 3] < 1 and h[0, 0, 4, 3] > h[0, 0, 4, 5]


def test_focal_by_hand():
    target = torch.tensor([[[[1.0, 0.5]]]])
    pred = torch.tensor([[[[0.8, 0.3]]]])
    # pos: -(1 - 0.8)^2 log 0.8; neg: -(1 - 0.5)^4 0.3^2 log 0.7; one positive
    expect = -(0.2 ** 2 * math.log(0.8)) - (0.5 ** 4 * 0.3 ** 2 * math.log(0.7))
    assert abs(float(focal_loss(pred, target)) - expect) < 1e-6


def test_tracking_loss_zero_box_terms_for_perfect_box_and_grad():
    gt = torch.tensor([[0.5, 0.5, 0.2, 0.3]])
    size = torch.full((1, 2, 8, 8), 0.5, requires_grad=True)
    out = dict(boxes=gt.clone().requires_grad_(True), score_map=gaussian_heatmap(gt, 8).clamp(1e-4, 1 - 1e-4),
               size_map=size)
    loss, stats = tracking_loss(out, gt)
    assert stats["giou"] < 1e-5 and stats["l1"] < 1e-6 and stats["giou_score"] > 0.999
    worse = dict(out, boxes=torch.tensor([[0.6, 0.5, 0.2, 0.3]], requires_grad=True))
    loss2, s2 = tracking_loss(worse, gt)
    assert loss2 > loss
    loss2.backward()
    assert worse["boxes"].grad.abs().sum() > 0
    # weights: GIoU x2 and L1 x5, as OSTrack
    from pmatrack_mini.geometry import cxcywh_to_xyxy
    g = float(generalized_box_iou_loss(cxcywh_to_xyxy(worse["boxes"].detach()), cxcywh_to_xyxy(gt)))
    assert abs(s2["giou"] - g) < 1e-6 and abs(s2["l1"] - 0.1 / 4) < 1e-6


def test_param_beta_sets_where_small_residuals_stop_counting_less():
    """L_p's smooth-L1 beta (align.param_beta, cells): with beta 1 a residual of a quarter cell pulls a quarter as
    hard as one of two cells; with beta 0.1 both pull alike. beta 1 is torch's default smooth L1."""
    from pmatrack_mini.config import get_config
    from pmatrack_mini.errors import PMATrackError
    from pmatrack_mini.training.losses import param_loss

    target = torch.tensor([[4.0, 0.0, 0.0, 0.0], [32.0, 0.0, 0.0, 0.0]])    # px: 0.25 and 2 cells of 16 px
    grads = {}
    for beta in (1.0, 0.1):
        pred = torch.zeros(2, 4, requires_grad=True)
        param_loss(pred, target, 16, with_scale=True, beta=beta).sum().backward()
        grads[beta] = pred.grad[:, 0].abs() * 16                           # d loss / d cells
    assert torch.allclose(grads[1.0], torch.tensor([0.25, 1.0])) and torch.allclose(grads[0.1], torch.ones(2))
    pred = torch.randn(2, 4)
    smooth_l1 = torch.nn.functional.smooth_l1_loss
    assert torch.allclose(param_loss(pred, target, 16, True),
                          smooth_l1(pred[:, :2] / 16, target[:, :2] / 16, reduction="none").sum(1)
                          + smooth_l1(pred[:, 2:], target[:, 2:], reduction="none").sum(1))
    with pytest.raises(PMATrackError, match="align.param_beta"):
        get_config("cpu-mini", stage=2, align=dict(param_beta=0.0))
