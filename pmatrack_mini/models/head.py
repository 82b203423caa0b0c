"""OSTrack's centre head: three small conv branches over the search feature map.

* score  (B, 1, H, W): where the target centre is; sigmoid clamped to [1e-4, 1 - 1e-4]
* size   (B, 2, H, W): normalised (w, h) of the box; sigmoid
* offset (B, 2, H, W): sub-cell offset of the centre inside its cell
Each branch: four 3x3 conv-BN-ReLU layers halving the width, then a 1x1 conv.
Decoding takes the arg-max cell k = (i, j): cx = (j + off_x) / W, cy = (i + off_y) / H, (w, h) = size[:, k].
"""
from __future__ import annotations

import torch
import torch.nn as nn


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _branch(cin: int, ch: int, cout: int) -> nn.Sequential:
    widths = [cin, ch, ch // 2, ch // 4, ch // 8]
    layers = [conv_bn_relu(a, b) for a, b in zip(widths[:-1], widths[1:])]
    return nn.Sequential(*layers, nn.Conv2d(widths[-1], cout, 1))


class CenterHead(nn.Module):
    def __init__(self, in_channels: int, channels: int, feat_size: int):
        super().__init__()
        self.feat_size = feat_size
        self.score = _branch(in_channels, channels, 1)
        self.size = _branch(in_channels, channels, 2)
        self.offset = _branch(in_channels, channels, 2)

    def forward(self, feat: torch.Tensor) -> dict:
        """feat (B, C, H, W) -> score (B,1,H,W), size (B,2,H,W), offset (B,2,H,W), boxes (B,4) cxcywh in [0,1]."""
        score = torch.clamp(torch.sigmoid(self.score(feat)), 1e-4, 1 - 1e-4)
        size = torch.sigmoid(self.size(feat))
        offset = self.offset(feat)
        return dict(score_map=score, size_map=size, offset_map=offset, boxes=decode(score, size, offset))


def decode(score: torch.Tensor, size: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Arg-max decoding -> (B, 4) normalised cx, cy, w, h."""
    B, _, H, W = score.shape
    idx = score.flatten(1).argmax(dim=1)                                  # (B,)
    i, j = idx // W, idx % W
    pick = lambda m: m.flatten(2).gather(2, idx.view(B, 1, 1).expand(B, m.shape[1], 1)).squeeze(2)  # (B, K)
    wh = pick(size)
    off = pick(offset)
    cx = (j.to(score.dtype) + off[:, 0]) / W
    cy = (i.to(score.dtype) + off[:, 1]) / H
    return torch.stack([cx, cy, wh[:, 0], wh[:, 1]], dim=1)
