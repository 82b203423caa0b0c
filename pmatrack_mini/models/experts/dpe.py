"""DPE, the Detail-aware Expert: a tiny U-Net over both modalities' feature maps, then one transformer block
and a pooled regressor. The most expensive expert and, by design, the most robust.

Input: the RGB and TIR search maps (B, C, H, W) each, plus one template-similarity channel per modality
(cosine similarity of each search token to the mean template token), concatenated and reduced to c0 channels.
Each U-Net level is a "multi-receptive-field" block: cascaded depthwise 3x3 convolutions with dilations 1, 2, 3
(each adds to the running sum), then a pointwise conv, BN and GELU. Four levels (H, H/2, H/4, H/8), skip
connections, bilinear upsampling.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import Block

from . import AlignmentExpert


class MRFBlock(nn.Module):
    """x -> x + dw_d1(x) -> ... + dw_d3(.) -> pointwise -> BN -> GELU (cascaded receptive fields 3, 7, 13)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.dw = nn.ModuleList(nn.Conv2d(cin, cin, 3, padding=d, dilation=d, groups=cin) for d in (1, 2, 3))
        self.pw = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.GELU())

    def forward(self, x):
        for dw in self.dw:
            x = x + dw(x)
        return self.pw(x)


class TinyUNet(nn.Module):
    def __init__(self, cin: int, widths=(48, 64, 96, 128)):
        super().__init__()
        self.inp = MRFBlock(cin, widths[0])
        self.down = nn.ModuleList(nn.Sequential(nn.Conv2d(a, b, 3, stride=2, padding=1), MRFBlock(b, b))
                                  for a, b in zip(widths[:-1], widths[1:]))
        self.up = nn.ModuleList(MRFBlock(b + a, a) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x) -> tuple[torch.Tensor, list]:
        skips = [self.inp(x)]                                               # level 0: (B, w0, H, W)
        for down in self.down:
            skips.append(down(skips[-1]))                                   # level k: (B, wk, H / 2^k, W / 2^k)
        y = skips[-1]
        for k in range(len(self.up) - 1, -1, -1):
            y = F.interpolate(y, size=skips[k].shape[-2:], mode="bilinear", align_corners=False)
            y = self.up[k](torch.cat([skips[k], y], 1))
        return y, skips


class DPE(AlignmentExpert):
    token_projections = ("reduce",)     # the modules that read the backbone's C-channel tokens (profile)

    def __init__(self, dim: int, grid: int, search_size: int, stage: str = "center", widths=(48, 64, 96, 128)):
        super().__init__(dim, grid, search_size, stage)
        self.reduce = nn.Conv2d(2 * dim + 2, widths[0], 1)
        self.unet = TinyUNet(widths[0], widths)
        self.block = Block(widths[0], num_heads=4, mlp_ratio=2.0, qkv_bias=True)
        self.pos = nn.Parameter(torch.zeros(1, grid * grid, widths[0]))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.head = nn.Sequential(nn.LayerNorm(widths[0]), nn.Linear(widths[0], 5))
        self.start_at_identity(self.head[-1])

    @staticmethod
    def template_similarity(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """cos(x_i, mean_z): (B, Nx)."""
        return F.cosine_similarity(x, z.mean(1, keepdim=True), dim=-1)

    def forward(self, rgb, tir) -> dict:
        (z_r, x_r), (z_t, x_t) = rgb, tir
        B = x_r.shape[0]
        sims = [self.template_similarity(z, x).view(B, 1, self.grid, self.grid) for z, x in ((z_r, x_r), (z_t, x_t))]
        feat = torch.cat([self.maps(x_r), self.maps(x_t)] + sims, 1)        # (B, 2C + 2, H, W)
        y, skips = self.unet(self.reduce(feat))                              # (B, w0, H, W)
        tokens = self.block(y.flatten(2).transpose(1, 2) + self.pos)         # (B, H W, w0)
        return dict(params=self.finish(self.head(tokens.mean(1))), unet_levels=skips)
