"""FME, the Feature Matching Expert: low / high frequency split + cross-modal correlation + pyramid head.

Each modality's search tokens are projected (P^M: Linear C -> d, no bias, the official shape) and split into two
bands by average pooling A_k (a k x k window, stride 1) over the token map X:

    X_l = A_5(X)                 (low band: layout, blobs)
    X_h = X - A_3(X)             (high band: edges; their magnitude agrees across RGB / TIR more reliably than
                                  intensity does)

For each band, the correlation of every RGB position i with every TIR position j, normalised over j:

    V_b(i, j) = softmax_j(<LN(X_b^rgb(i)), LN(X_b^tir(j))> / sqrt(d))        (N x N, one LayerNorm for all)

Per-modality band gates (an MLP over the pooled bands) weigh the two bands into one N x N matrix, which a
three-scale pyramid of convolutions reads **as an image** (the official head: Conv 1 -> c, Conv c -> c at N x N,
N/2 and N/4, upsampled, fused by a 1 x 1 Conv 3c -> c). At the paper preset (N = 256, c = 64) that head is 4.03 of
FME's 4.33 G multiply-adds: FME is the middle expert because its matcher runs at the resolution of position pairs.

Read-out. Entry (i, j) of the matrix is the displacement p_j - p_i; a shift of the TIR crop by delta lights up the
diagonal band of the pairs displaced by delta. The pyramid's features are averaged per displacement (the bins of
TRE's displacement histogram) and a Linear reads the (2H - 1)^2 bins, so it knows which displacement they describe.

How much the bands agree across the modalities on aligned crops is measured by :func:`band_correlations`
(``reference.band_agreement`` over whole sequences, notebook 03): the sign of the intensity (and low band)
correlation depends on the scene, the magnitude of the high band correlates weakly but positively on most frames.

Departures from the official code: the read-out averages the pyramid's features per displacement (the official
code takes their global mean, blind to which diagonal carries the mass; kept because a position-blind read-out
cannot regress a shift, not yet measured against it on trained networks); the correlation is scaled by 1 / sqrt(d)
(without it, dot products of layer-normed 768-channel vectors make the softmax one-hot); each modality's gate pair
is averaged, g = (g_rgb + g_tir) / 2 (official: the geometric mean), both pairs are returned (``gates_rgb``,
``gates_tir``); the pooling windows ignore the zero padding at the map's border.
Speed: the pyramid's convolutions run about 2x faster on a CPU (oneDNN) with their weights channels-last
(:func:`pyramids_channels_last`: the same arithmetic, float sums in another order; outputs and gradients equal to
1e-5 relative, tested). An FME-only training step is about 20 % shorter, one with all experts mixed about 12 %
(``benchmarks/bench_train_step.py``). Opt-in (``models.inference.fast_kernels_for_inference``): tracking amplifies
float rounding (notebook 08's 12 tracked sequences move by up to 4.4 PR points with it), and the stored tables'
networks were trained and tracked with the reference layout, which the defaults must reproduce.
Letters: B batch, N = H W search tokens, d projected channels, c pyramid channels, K = 2 H - 1.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import AlignmentExpert, displacement_index


def frequency_split(x: torch.Tensor, low_k: int = 5, high_k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) -> (low, high): A_low_k(X) and X - A_high_k(X) (average pools, stride 1, same size)."""
    low = F.avg_pool2d(x, low_k, stride=1, padding=low_k // 2, count_include_pad=False)
    high = x - F.avg_pool2d(x, high_k, stride=1, padding=high_k // 2, count_include_pad=False)
    return low, high


def _erode(mask: torch.Tensor, r: int) -> torch.Tensor:
    """(B, H, W) bool -> the pixels whose (2r + 1)^2 neighbourhood (clipped at the map's border) is all set."""
    out = mask.clone()
    for dim in (1, 2):                                                       # separable: rows, then columns
        src = out.clone()
        n = src.shape[dim]
        for d in range(1, r + 1):
            out.narrow(dim, d, n - d).logical_and_(src.narrow(dim, 0, n - d))
            out.narrow(dim, 0, n - d).logical_and_(src.narrow(dim, d, n - d))
    return out


def _pearson(u: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pearson correlation over the pixels where ``mask`` is set: (B, H, W) x 3 -> (B,)."""
    w = mask.to(u.dtype)
    n = w.sum((1, 2)).clamp_min(1)
    du = (u - (u * w).sum((1, 2), keepdim=True) / n[:, None, None]) * w
    dv = (v - (v * w).sum((1, 2), keepdim=True) / n[:, None, None]) * w
    return (du * dv).sum((1, 2)) / (du.pow(2).sum((1, 2)).sqrt() * dv.pow(2).sum((1, 2)).sqrt() + 1e-12)


def band_correlations(rgb: torch.Tensor, tir: torch.Tensor, valid: torch.Tensor | None = None, low_k: int = 5,
                      high_k: int = 3, shifts=(0,)) -> dict:
    """How well one modality predicts the other, band by band: grey images (B, 1, H, W) of the same place (TIR
    cut through the true homography) -> {"raw", "low", "high_abs", "high"}: (B, len(shifts)) Pearson correlations
    across pixels of the intensity, the low band, the high band's magnitude |X_h| and the signed high band.

    ``valid`` (B, 2, H, W) bool: the pixels inside the RGB and the TIR image (crops are black outside); only pixels
    valid in both and at least ``low_k // 2`` away from an invalid one count, so no band sees a crop border.
    ``shifts`` (px): the TIR maps also moved right by each amount (a misalignment control; columns that wrap
    around do not count)."""
    B, _, H, W = rgb.shape
    if valid is None:
        valid = torch.ones(B, 2, H, W, dtype=torch.bool, device=rgb.device)
    r = low_k // 2
    maps = []
    for x in (rgb, tir):
        low, high = frequency_split(x, low_k, high_k)
        maps.append(dict(raw=x[:, 0], low=low[:, 0], high_abs=high[:, 0].abs(), high=high[:, 0]))   # (B, H, W)
    out = {k: [] for k in maps[0]}
    for d in shifts:
        both = valid[:, 0] & torch.roll(valid[:, 1], d, dims=-1)
        both[..., :d] = False                                                   # wrapped columns
        inner = _erode(both, r)
        for k in out:
            out[k].append(_pearson(maps[0][k], torch.roll(maps[1][k], d, dims=-1), inner))
    return {k: torch.stack(v, 1) for k, v in out.items()}


class CorrelationPyramid(nn.Module):
    """(B, 1, N, N) correlation image -> (B, c, N, N): at each of ``scales`` resolutions (the image average-pooled
    by 2^s) Conv 1 -> c, ReLU, Conv c -> c, ReLU; upsampled back, concatenated, fused by a 1 x 1 Conv 3c -> c."""

    def __init__(self, channels: int, scales: int = 3):
        super().__init__()
        self.levels = nn.ModuleList(nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(inplace=True),
                                                  nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))
                                    for _ in range(scales))
        self.fuse = nn.Sequential(nn.Conv2d(scales * channels, channels, 1), nn.ReLU(inplace=True))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        size = image.shape[-2:]
        outs = []
        for s, level in enumerate(self.levels):
            y = level(image if s == 0 else F.avg_pool2d(image, 2 ** s, ceil_mode=True))   # (B, c, N / 2^s, N / 2^s)
            outs.append(y if s == 0 else F.interpolate(y, size=size, mode="bilinear", align_corners=False))
        return self.fuse(torch.cat(outs, 1))                                               # (B, c, N, N)


def pyramids_channels_last(net: nn.Module, on: bool = True) -> nn.Module:
    """Every FME pyramid of ``net`` with its convolution weights channels-last (``on``; the features follow), about
    2x faster on a CPU for these few-channel convolutions, or back in the contiguous layout, the reference (and the
    default, what the stored results ran). Returns ``net``."""
    layout = torch.channels_last if on else torch.contiguous_format
    for module in net.modules():
        if isinstance(module, CorrelationPyramid):
            module.to(memory_format=layout)
    return net


class FME(AlignmentExpert):
    token_projections = ("proj",)     # the modules that read the backbone's C-channel tokens (profile)

    def __init__(self, dim: int, grid: int, search_size: int, stage: str = "center", proj_dim: int = 192,
                 gate_hidden: int = 64, channels: int = 24):
        super().__init__(dim, grid, search_size, stage)
        self.proj = nn.ModuleDict({m: nn.Linear(dim, proj_dim, bias=False) for m in ("rgb", "tir")})   # P^M
        self.norm = nn.LayerNorm(proj_dim)                                                      # shared
        self.gate = nn.ModuleDict({m: nn.Sequential(nn.Linear(2 * proj_dim, gate_hidden), nn.ReLU(inplace=True),
                                                    nn.Linear(gate_hidden, 2)) for m in ("rgb", "tir")})
        self.pyramid = CorrelationPyramid(channels)
        index = displacement_index(grid)
        self.register_buffer("disp_index", index, persistent=False)                             # (N N,)
        self.register_buffer("disp_count", torch.bincount(index).float(), persistent=False)     # (K K,) pairs per bin
        K = 2 * grid - 1
        self.regress = nn.Linear(channels * K * K, 5)
        self.start_at_identity(self.regress)

    def correlation(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Band maps (B, d, H, W) of RGB and TIR -> V (B, N, N) = softmax_j(<LN a_i, LN b_j> / sqrt(d))."""
        d = a.shape[1]
        A = self.norm(a.flatten(2).transpose(1, 2))                      # (B, N, d)
        Bt = self.norm(b.flatten(2).transpose(1, 2))                     # (B, N, d)
        return torch.softmax(A @ Bt.transpose(1, 2) / d ** 0.5, dim=-1)  # (B, N, N)

    def by_displacement(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, c, N, N) features of position pairs -> (B, c, K, K): their mean over the pairs of each displacement."""
        B, c = feats.shape[:2]
        K = 2 * self.grid - 1
        sums = feats.new_zeros(B, c, K * K).index_add_(2, self.disp_index, feats.flatten(2))
        return (sums / self.disp_count).view(B, c, K, K)

    def forward(self, rgb, tir) -> dict:
        (_, x_r), (_, x_t) = rgb, tir
        bands_r = frequency_split(self.maps(self.proj["rgb"](x_r)))        # (low, high), (B, d, H, W) each
        bands_t = frequency_split(self.maps(self.proj["tir"](x_t)))
        gm = self.band_gates(bands_r, bands_t)                            # per modality (B, 2)
        g = 0.5 * (gm["rgb"] + gm["tir"])                                 # g = (g_rgb + g_tir) / 2
        corr = sum(g[:, k, None, None] * self.correlation(bands_r[k], bands_t[k]) for k in (0, 1))   # (B, N, N)
        N = corr.shape[-1]
        feats = self.pyramid(corr[:, None] * N)                           # rescaled: a uniform row is 1
        raw = self.regress(self.by_displacement(feats).flatten(1))
        return dict(params=self.finish(raw), correlation=corr, gates=g, gates_rgb=gm["rgb"], gates_tir=gm["tir"])

    def band_gates(self, bands_r: tuple, bands_t: tuple) -> dict:
        """Each modality's weights of the (low, high) bands from its pooled bands ((B, d, H, W) x 2):
        {"rgb": (B, 2), "tir": (B, 2)}, each a softmax over the two bands."""
        return {m: torch.softmax(self.gate[m](torch.cat([b.mean((2, 3)) for b in bands], 1)), 1)
                for m, bands in (("rgb", bands_r), ("tir", bands_t))}
