"""Tracking losses (OSTrack): focal on a Gaussian centre heatmap, GIoU and L1 on the decoded box.

    L_track = w_giou * L_GIoU + w_l1 * L_1 + w_focal * L_focal        (2, 5, 1 in OSTrack)

GIoU is torchvision's; the CenterNet focal loss and the heatmap target are written here.
Letters: B batch, H/W feature map side.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss

from .geometry import cxcywh_to_xyxy


def gaussian_heatmap(boxes: torch.Tensor, feat_size: int) -> torch.Tensor:
    """Target heatmap (B, 1, H, W) for normalised cx, cy, w, h boxes.

    The peak (exactly 1) sits on the cell holding the centre; sigma = max(size in cells / 6, 0.5):
        Y_xy = exp(-((x - x_c)^2 / (2 sigma_x^2) + (y - y_c)^2 / (2 sigma_y^2)))
    """
    B = boxes.shape[0]
    ys, xs = torch.meshgrid(torch.arange(feat_size, device=boxes.device, dtype=boxes.dtype),
                            torch.arange(feat_size, device=boxes.device, dtype=boxes.dtype), indexing="ij")
    c = (boxes[:, :2] * feat_size).floor().clamp(0, feat_size - 1)          # (B, 2) centre cell (x, y)
    sig = (boxes[:, 2:] * feat_size / 6).clamp(min=0.5)                       # (B, 2)
    dx = (xs[None] - c[:, 0, None, None]) / sig[:, 0, None, None]             # (B, H, W)
    dy = (ys[None] - c[:, 1, None, None]) / sig[:, 1, None, None]
    return torch.exp(-0.5 * (dx ** 2 + dy ** 2)).view(B, 1, feat_size, feat_size)


def focal_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet focal loss on probabilities ``pred`` (already sigmoid-clamped), summed / number of peaks.

        pos (Y = 1):  -(1 - p)^alpha log p
        neg (Y < 1):  -(1 - Y)^beta p^alpha log(1 - p)
    """
    pos = target.eq(1).to(pred.dtype)
    neg = 1.0 - pos
    pos_loss = (torch.log(pred) * (1 - pred) ** alpha * pos).sum()
    neg_loss = (torch.log(1 - pred) * pred ** alpha * (1 - target) ** beta * neg).sum()
    num_pos = pos.sum().clamp(min=1.0)
    return -(pos_loss + neg_loss) / num_pos


def tracking_loss(out: dict, gt_boxes: torch.Tensor, weights=(2.0, 5.0, 1.0)):
    """out: the network's dict; gt_boxes (B, 4) normalised cx, cy, w, h in the search crop.

    Returns (loss, stats) with stats = floats for logging (giou, l1, focal, mean IoU).
    """
    w_giou, w_l1, w_focal = weights
    pred = out["boxes"]                                                       # (B, 4)
    pred_xyxy, gt_xyxy = cxcywh_to_xyxy(pred), cxcywh_to_xyxy(gt_boxes)
    valid = (pred_xyxy[:, 2:] > pred_xyxy[:, :2]).all(dim=1)
    l_giou = generalized_box_iou_loss(pred_xyxy, gt_xyxy, reduction="mean")
    l_l1 = F.l1_loss(pred, gt_boxes)
    heat = gaussian_heatmap(gt_boxes, out["score_map"].shape[-1])
    l_focal = focal_loss(out["score_map"], heat)
    loss = w_giou * l_giou + w_l1 * l_l1 + w_focal * l_focal
    with torch.no_grad():
        iou = 1 - generalized_box_iou_loss(pred_xyxy, gt_xyxy, reduction="none")  # GIoU, a proxy for IoU
    stats = dict(loss=float(loss.detach()), giou=float(l_giou.detach()), l1=float(l_l1.detach()), focal=float(l_focal.detach()),
                 giou_score=float(iou.mean()), valid=float(valid.float().mean()))
    return loss, stats
