"""Losses. Stage 1, tracking (OSTrack): focal on a Gaussian centre heatmap, GIoU and L1 on the decoded box,

    L_track = w_giou * L_GIoU + w_l1 * L_1 + w_focal * L_focal        (2, 5, 1 in OSTrack)

Stage 2 adds PMATrack's alignment losses (Loss & Training):

    L_total = L_track + lambda_p L_p + lambda_r L_r + L_CPESL

* L_p: smooth L1 of every stage's parameters, and of each expert's, against the stage's ground-truth residual
  (translation in feature cells, log scales as they are; the centre stage has no scale term; quadratic below
  ``align.param_beta``, 1 by default: there a residual's pull is proportional to its size);
* L_r: BCE of TRE's response logits against the target's cells, per modality;
* L_CPESL = sum_e r_e l_e + lambda_cost sum_e r_e c_e, per sample, when the stage ran all its experts, with l_e in
  the official code's units (translation as a fraction of the search crop, log scales; ``expert_error``): in feature
  cells, as L_p, the errors would be 64-256 x larger squared and lambda_cost = 0.01 could never weigh against them.

The ground-truth residual of stage k is what is left after the stages before it: with H the exact RGB crop ->
TIR crop homography (``batch["H_crop"]``) and H_{k-1} the alignment so far, R_k = H_{k-1}^-1 H, read as parameters
at the search-crop centre (``geometry.alignment_params``); the centre stage's pure shift is read at the target
(``stage_residual``).
GIoU is torchvision's; the CenterNet focal loss and the heatmap target are written here.
Letters: B batch, H/W feature map side, E experts.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss

from ..geometry import (alignment_params, apply_homography_torch, crop_center, cxcywh_to_xyxy, invert_homography_torch,
                        normalized_to_crop_px)


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


# ----------------------------------------------------------------------------- stage 2: alignment


def param_loss(pred: torch.Tensor, target: torch.Tensor, patch: int, with_scale: bool,
               beta: float = 1.0) -> torch.Tensor:
    """Per-sample smooth L1 (B,): translation in feature cells (px / patch), plus log scales when ``with_scale``.
    ``beta``: the error below which the loss is quadratic (``align.param_beta``); with 1, every residual under a
    whole cell gets a gradient proportional to its size, so small residuals weigh little against large ones."""
    loss = F.smooth_l1_loss(pred[:, :2] / patch, target[:, :2] / patch, reduction="none", beta=beta).sum(1)
    if with_scale:
        loss = loss + F.smooth_l1_loss(pred[:, 2:4], target[:, 2:4], reduction="none", beta=beta).sum(1)
    return loss


def expert_error(pred: torch.Tensor, target: torch.Tensor, search_size: int, with_scale: bool) -> torch.Tensor:
    """CPESL's per-sample expert error l_e (B,) in the official code's units: smooth L1 (beta 1) of the translation
    as a fraction of the search crop, plus the log scales when ``with_scale``. (In token cells, as ``param_loss``
    measures L_p, the same errors are 64-256 x larger squared, and lambda_cost = 0.01 could never outweigh them.)"""
    loss = F.smooth_l1_loss(pred[:, :2] / search_size, target[:, :2] / search_size, reduction="none").sum(1)
    if with_scale:
        loss = loss + F.smooth_l1_loss(pred[:, 2:4], target[:, 2:4], reduction="none").sum(1)
    return loss


def cpesl(weights: torch.Tensor, expert_losses: torch.Tensor, costs: torch.Tensor, lambda_cost: float) -> torch.Tensor:
    """Cost-penalty expert-selection loss, averaged over the batch.

    weights r (B, E), expert_losses l (B, E) (:func:`expert_error`), costs c (E,):
        L = sum_e r_e l_e + lambda_cost sum_e r_e c_e
    """
    return ((weights * expert_losses).sum(1) + lambda_cost * (weights * costs).sum(1)).mean()


def break_even_px(cost_cheap: float, cost_dear: float, lambda_cost: float, search_size: int) -> float:
    """How many pixels of error (per axis, crop px) a dearer expert must save over a cheaper one to be worth its cost
    under CPESL: choosing it lowers the loss when l_cheap - l_dear > lambda_cost (c_dear - c_cheap). For a cheap
    expert off by e px on both axes and a dear one exact, l_cheap = 2 x 0.5 (e / S)^2 (smooth L1 below 1), so
    e = S sqrt(lambda_cost (c_dear - c_cheap)). Official units at the paper preset: TRE vs DPE, lambda 0.01,
    c = 0.10 / 1.0, S = 256 -> about 24 px."""
    return float(search_size * max(lambda_cost * (cost_dear - cost_cheap), 0.0) ** 0.5)


def cell_mask_at(center_px: torch.Tensor, size_px: torch.Tensor, grid: int, search_size: int) -> torch.Tensor:
    """(B, grid * grid) target mask of a box given by its centre and size in crop px (pixel-centre coordinates)."""
    from ..models.experts import cell_mask

    c = (center_px + 0.5) / search_size                                        # -> normalised edge coordinates
    return cell_mask(torch.cat([c, size_px / search_size], dim=1), grid)


def stage_residual(record: dict, H_true: torch.Tensor, center: float, target: torch.Tensor) -> torch.Tensor:
    """Ground-truth parameters (B, 4) of a stage from its residual R_k = H_{k-1}^-1 H_true.

    Scale and refine stages: R_k's parameters at the crop centre (exact for the stages' family). The centre stage
    predicts a pure shift, for which the anchor is immaterial (T(c + d) T(-c) = T(d)); the shift that a translation
    can get right is the one that aligns the target, so its ground truth is R_k's displacement at the RGB target
    centre ``target`` (B, 2), with zero log scales. (At the crop centre it would differ from what the target shows
    by (s - 1)(c_target - c): up to ~5 px for a 10 % residual scale and a target 48 px off centre.)"""
    R = invert_homography_torch(record["H_prev"].detach()) @ H_true
    if record["role"] == "center":
        shift = alignment_params(R, target)[:, :2]
        return torch.cat([shift, torch.zeros_like(shift)], dim=1)
    return alignment_params(R, center)


def alignment_loss(records: list, batch: dict, cfg) -> tuple[torch.Tensor, dict]:
    """lambda_p L_p + lambda_r L_r + L_CPESL over the stages; stats hold each stage's median alignment error at the
    target (RGB image px) before and after it, and the mean routing weight of each expert."""
    m, a = cfg.model, cfg.align
    S, P, G = m.search_size, m.patch_size, m.feat_size
    c = crop_center(S)
    H_true = batch["H_crop"]                                                     # (B, 3, 3) RGB crop -> TIR crop
    target_c = normalized_to_crop_px(batch["box"][:, :2], S)                     # (B, 2) RGB target centre, crop px
    px = batch["px_per_crop_px"]
    l_p = l_r = l_cpesl = H_true.new_zeros(())
    true_at_target = apply_homography_torch(H_true, target_c[:, None])[:, 0]    # (B, 2)
    stats = {"err_before": float(((true_at_target - target_c).norm(dim=1) * px).median())}
    for k, rec in enumerate(records):
        gt = stage_residual(rec, H_true, c, target_c)                             # (B, 4)
        scale = rec["role"] != "center"
        l_p = l_p + param_loss(rec["params"], gt, P, scale, a.param_beta).mean()
        outs = rec["outputs"]
        per_expert = {n: param_loss(o["params"], gt, P, scale, a.param_beta) for n, o in outs.items()}   # (B,) each
        l_p = l_p + sum(v.mean() for v in per_expert.values())
        if len(outs) == len(rec["names"]) > 1:                                    # all experts ran: CPESL
            l_e = torch.stack([expert_error(outs[n]["params"], gt, S, scale) for n in rec["names"]], dim=1)  # (B, E)
            l_cpesl = l_cpesl + cpesl(rec["weights"], l_e, rec["costs"], a.lambda_cost)
        if "tre" in outs:                                                        # L_r on both responses
            R = invert_homography_torch(rec["H_prev"].detach()) @ H_true
            at = alignment_params(R, target_c)                                    # residual at the target
            size = batch["box"][:, 2:] * S
            l_r = l_r + F.binary_cross_entropy_with_logits(outs["tre"]["response_rgb"], cell_mask_at(target_c, size, G, S))
            l_r = l_r + F.binary_cross_entropy_with_logits(
                outs["tre"]["response_tir"], cell_mask_at(target_c + at[:, :2], size * at[:, 2:].exp(), G, S))
        after = apply_homography_torch(rec["H"].detach(), target_c[:, None])[:, 0]
        stats[f"err_{k}_{rec['role']}"] = float(((after - true_at_target).norm(dim=1) * px).median())
        for e, n in enumerate(rec["names"]):
            stats[f"use_{k}_{n}"] = float(rec["weights"][:, e].detach().mean())
    loss = a.lambda_p * l_p + a.lambda_r * l_r + l_cpesl
    stats.update(l_p=float(l_p.detach()), l_r=float(l_r.detach()), l_cpesl=float(l_cpesl.detach()))
    return loss, stats
