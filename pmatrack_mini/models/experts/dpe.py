"""DPE, the Detail-aware Expert: a tiny U-Net over each modality's feature map, one transformer block over both,
and a pooled regressor. The most expensive expert and, by design, the most robust.

    U = UNet(X^M)            per modality, one U-Net shared by RGB and TIR:  (B, C, H, W) -> (B, C, H, W)
    T = Block([U^rgb ; U^tir] + pos)        one transformer block over the N tokens of width 2C
    P = MLP(mean_N T)                       Linear 2C -> 128, ReLU, Linear 128 -> 5

U-Net (the official shapes): ``levels`` encoder blocks of widths base, 2 base, 4 base, ... (each followed by a 2 x 2
max-pool), a bottleneck block, as many decoder blocks (upsample, concatenate the skip, block), and a 1 x 1 conv back
to C channels. Each block is a multi-receptive-field block: a 1 x 1 conv to m = c_out / 8 channels; one half of them
runs through a cascade of seven depthwise 3 x 3 convs (receptive fields 3, 5, ..., 15), every step kept; the pieces
(8 x m / 2 = c_out / 2 channels) are fused by a 1 x 1 conv to c_out (a residual when c_in = c_out). The grid must
halve ``levels`` times: 16 x 16 (paper) takes 4 levels, the 8 x 8 grid of cpu-mini 3 (one fewer than the official
code; ``align.dpe_levels``). At the paper preset the transformer block (width 1536, MLP ratio 4) is 7.25 of DPE's
7.555 G multiply-adds; at cpu-mini the block's MLP ratio is 2 (``align.dpe_mlp_ratio``) so that DPE keeps the
official share of the tracker (13.4 %).

Departures from the official code: the U-Net and the block see the tokens as a spatial map (the official code
reshapes the token matrix to (C, H, W) without permuting, so its "image" mixes positions and channels); a learned
position embedding before the block (the regressor pools over positions); bilinear instead of bicubic upsampling.
The template-similarity channels an earlier version fed in are gone: once trained, the network did not use them
(notebook 04, zeroing them changed no error by more than 0.1 px).
Letters: B batch, C channels, H W grid, N = H W tokens.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import Block

from . import AlignmentExpert


def conv_bn(cin: int, cout: int, k: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.GELU()) if act else nn.Sequential(*layers)


class MultiReceptiveBlock(nn.Module):
    """(B, c_in, H, W) -> (B, c_out, H, W): 1 x 1 conv to m = c_out / 8; split into halves a, b; features
    [a + b, D1(b), D2(D1(b)), ..., D7(...)] (D: depthwise 3 x 3); concatenated (c_out / 2) and fused by a
    1 x 1 conv to c_out; plus the input when c_in = c_out."""

    def __init__(self, cin: int, cout: int, cascade: int = 7):
        super().__init__()
        if cout % 16:
            raise ValueError(f"a multi-receptive-field block needs c_out divisible by 16, got {cout}")
        mid = cout // 8
        self.reduce = conv_bn(cin, mid)
        self.cascade = nn.ModuleList(conv_bn(mid // 2, mid // 2, 3, groups=mid // 2, act=False)
                                     for _ in range(cascade))
        self.fuse = conv_bn((cascade + 1) * (mid // 2), cout)
        self.residual = cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.reduce(x).chunk(2, dim=1)                     # (B, m / 2, H, W) each
        feats = [a + b]
        for dw in self.cascade:
            b = dw(b)                                             # receptive field grows by 2 per step
            feats.append(b)
        y = self.fuse(torch.cat(feats, 1))                        # (B, c_out, H, W)
        return x + y if self.residual else y


class TinyUNet(nn.Module):
    """(B, C, H, W) -> ((B, C, H, W), the encoder's levels): widths base * 2^k for k < ``levels``."""

    def __init__(self, channels: int, base: int, levels: int):
        super().__init__()
        widths = [base * 2 ** k for k in range(levels)]
        self.enc = nn.ModuleList(MultiReceptiveBlock(a, b) for a, b in zip([channels] + widths[:-1], widths))
        self.bottleneck = MultiReceptiveBlock(widths[-1], widths[-1])
        deeper = widths[1:] + widths[-1:]                          # what arrives from below each level
        self.dec = nn.ModuleList(MultiReceptiveBlock(d + w, w) for w, d in zip(widths, deeper))
        self.head = conv_bn(widths[0], channels, act=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list]:
        skips = []
        for enc in self.enc:
            x = enc(x)
            skips.append(x)                                       # level k: (B, base 2^k, H / 2^k, W / 2^k)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)                                    # (B, base 2^(L-1), H / 2^L, W / 2^L)
        for k in range(len(self.dec) - 1, -1, -1):
            x = F.interpolate(x, size=skips[k].shape[-2:], mode="bilinear", align_corners=False)
            x = self.dec[k](torch.cat([x, skips[k]], 1))
        return self.head(x), skips                                # (B, C, H, W)


class DPE(AlignmentExpert):
    token_projections = ("unet.enc.0.reduce", "unet.head")   # the modules that read or write C-channel maps (profile)

    def __init__(self, dim: int, grid: int, search_size: int, stage: str = "center", base: int = 64,
                 levels: int = 3, heads: int = 4, mlp_ratio: float = 2.0):
        super().__init__(dim, grid, search_size, stage)
        if grid % 2 ** levels:
            raise ValueError(f"DPE: a {grid} x {grid} grid cannot halve {levels} times (U-Net levels)")
        self.unet = TinyUNet(dim, base, levels)
        self.pos = nn.Parameter(torch.zeros(1, grid * grid, 2 * dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.block = Block(2 * dim, num_heads=heads, mlp_ratio=mlp_ratio, qkv_bias=False)
        self.regress = nn.Sequential(nn.Linear(2 * dim, 128), nn.ReLU(inplace=True), nn.Linear(128, 5))
        self.start_at_identity(self.regress[-1])

    def forward(self, rgb, tir) -> dict:
        (_, x_r), (_, x_t) = rgb, tir
        B = x_r.shape[0]
        u, levels = self.unet(torch.cat([self.maps(x_r), self.maps(x_t)]))   # both modalities, one pass: (2B, C, H, W)
        u = torch.cat([u[:B], u[B:]], 1)                                    # (B, 2C, H, W)
        tokens = self.block(u.flatten(2).transpose(1, 2) + self.pos)         # (B, N, 2C)
        return dict(params=self.finish(self.regress(tokens.mean(1))), unet_levels=[lv[:B] for lv in levels])
