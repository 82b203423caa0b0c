"""FME, the Feature Matching Expert: low / high frequency split + cross-modal correlation + pyramid head.

Frequency split of each modality's search map X (average pooling A_k with a k x k window, stride 1):

    X_l = A_5(X)                 (low band: layout, blobs)
    X_h = X - A_3(X)             (high band: edges, which survive the RGB / TIR gap better than intensity)

For each band, a local correlation volume between the modalities over displacements delta in [-D, D]^2:

    V(delta, i) = softmax_delta(<X^rgb(i), X^tir(i + delta)> / sqrt(c))

pooled over the RGB positions i with the RGB template response w_i (where the target is), giving a
(2D + 1)^2 map per band. Per-modality band gates (from pooled features) mix the two bands; a three-scale
pyramid of convolutions reads the result. Costlier than TRE, cheaper than DPE.
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import AlignmentExpert


def frequency_split(x: torch.Tensor, low_k: int = 5, high_k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) -> (low, high): A_low_k(X) and X - A_high_k(X) (average pools, stride 1, same size)."""
    low = F.avg_pool2d(x, low_k, stride=1, padding=low_k // 2, count_include_pad=False)
    high = x - F.avg_pool2d(x, high_k, stride=1, padding=high_k // 2, count_include_pad=False)
    return low, high


@functools.lru_cache(maxsize=None)
def displacement_gather_index(H: int, W: int, max_disp: int) -> torch.Tensor:
    """(K K, H W) index into the H W + 1 columns of a padded all-pairs matrix: column j = i + delta for each
    displacement delta = (dy, dx) in [-D, D]^2 (row-major) and position i, or H W (a zero column) outside the map."""
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    d = torch.arange(-max_disp, max_disp + 1)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    ty = ys.flatten()[None] + dy.flatten()[:, None]                    # (K K, H W)
    tx = xs.flatten()[None] + dx.flatten()[:, None]
    inside = (ty >= 0) & (ty < H) & (tx >= 0) & (tx < W)
    return torch.where(inside, ty * W + tx, torch.full_like(ty, H * W))


def local_correlation(f_a: torch.Tensor, f_b: torch.Tensor, max_disp: int) -> torch.Tensor:
    """(B, c, H, W) x 2 -> (B, (2D+1)^2, H W): V(delta, i) = <f_a(i), f_b(i + delta)> / sqrt(c), zero outside the map.

    Computed as one all-pairs product f_a^T f_b (B, H W, H W), a small matmul, from which each position's
    (2D + 1)^2 window is gathered: cheaper than unfolding f_b into (B, c (2D + 1)^2, H W) columns."""
    B, c, H, W = f_a.shape
    pairs = f_a.flatten(2).transpose(1, 2) @ f_b.flatten(2) / c ** 0.5   # (B, H W, H W): <f_a(i), f_b(j)>
    pairs = F.pad(pairs, (0, 1))                                          # (B, H W, H W + 1), last column 0
    idx = displacement_gather_index(H, W, max_disp).to(f_a.device)       # (K K, H W)
    rows = torch.arange(H * W, device=f_a.device)                         # i
    return pairs[:, rows[None, :], idx]                                   # (B, K K, H W)


class FME(AlignmentExpert):
    def __init__(self, dim: int, grid: int, search_size: int, stage: str = "center", red: int = 64,
                 max_disp: int = 5):
        super().__init__(dim, grid, search_size, stage)
        self.max_disp = max_disp
        self.reduce = nn.ModuleDict({m: nn.Conv2d(dim, red, 1) for m in ("rgb", "tir")})
        self.tmpl = nn.Linear(dim, red)
        self.gate = nn.ModuleDict({m: nn.Sequential(nn.Linear(red, 32), nn.ReLU(inplace=True), nn.Linear(32, 2))
                                   for m in ("rgb", "tir")})
        ch = 24
        self.level1 = nn.Sequential(nn.Conv2d(2, ch, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(inplace=True))
        self.level2 = nn.Sequential(nn.AvgPool2d(2, ceil_mode=True), nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(inplace=True))
        self.level3 = nn.Sequential(nn.AvgPool2d(2, ceil_mode=True), nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(inplace=True))
        self.out = nn.Linear(3 * ch + 2 * (2 * max_disp + 1) ** 2, 5)
        self.start_at_identity(self.out)

    def forward(self, rgb, tir) -> dict:
        (z_r, x_r), (_, x_t) = rgb, tir
        f_r = self.reduce["rgb"](self.maps(x_r))                          # (B, c, H, W)
        f_t = self.reduce["tir"](self.maps(x_t))
        B, c, H, W = f_r.shape
        # where the target is in RGB: template response over search positions
        q = self.tmpl(z_r).mean(1)                                        # (B, c)
        w = torch.softmax((f_r.flatten(2) * q[:, :, None]).sum(1) / c ** 0.5, dim=1)   # (B, H W)
        bands = []
        for a, b in zip(frequency_split(f_r), frequency_split(f_t)):     # low, high
            vol = torch.softmax(local_correlation(a, b, self.max_disp), dim=1)         # (B, K K, H W)
            bands.append((vol * w[:, None]).sum(2))                                     # (B, K K)
        # band gates, one pair per modality, averaged: g = (g_rgb + g_tir) / 2
        g = 0.5 * (torch.softmax(self.gate["rgb"](f_r.mean((2, 3))), 1)
                   + torch.softmax(self.gate["tir"](f_t.mean((2, 3))), 1))             # (B, 2)
        K = 2 * self.max_disp + 1
        vol = torch.stack([g[:, 0:1] * bands[0], g[:, 1:2] * bands[1]], 1).view(B, 2, K, K)
        p1 = self.level1(vol * K * K)
        p2 = self.level2(p1)
        p3 = self.level3(p2)
        feats = torch.cat([p1.mean((2, 3)), p2.mean((2, 3)), p3.mean((2, 3)), vol.flatten(1) * K * K], 1)
        return dict(params=self.finish(self.out(feats)), volume=vol, gates=g, template_weights=w)
