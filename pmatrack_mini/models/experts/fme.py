"""FME, the Feature Matching Expert: low / high frequency split + cross-modal correlation + pyramid head.

Frequency split of each modality's search map X (average pooling A_k with a k x k window, stride 1):

    X_l = A_5(X)                 (low band: layout, blobs)
    X_h = X - A_3(X)             (high band: edges; their magnitude agrees across RGB / TIR in sign more reliably
                                  than intensity does)

For each band, a local correlation volume between the modalities over displacements delta in [-D, D]^2:

    V(delta, i) = softmax_delta(<X^rgb(i), X^tir(i + delta)> / sqrt(c))

pooled over the RGB positions i with the RGB template response w_i (where the target is), giving a
(2D + 1)^2 map per band. Per-modality band gates (from pooled features) mix the two bands; a three-scale
pyramid of convolutions reads the result. Costlier than TRE, cheaper than DPE at cpu-mini size (at paper width the
three nearly tie: ``cost_context.cost_context_table``).

How much the bands agree across the modalities on aligned crops is measured by :func:`band_correlations`
(``reference.band_agreement`` over whole sequences, notebook 03): the sign of the intensity (and low band)
correlation depends on the scene, the magnitude of the high band correlates weakly but positively on most frames.

Where this departs from, or goes beyond, the paper and the official code's description (low band = 5 x 5 average
pool, high band = X - 3 x 3 average pool, per-modality band gates, softmax correlations of each band mixed by the
gates, a 3-scale pyramid head): each modality's gate pair is computed from its own pooled features and the two are
averaged into one weight per band, g = (g_rgb + g_tir) / 2 (both pairs are returned: ``gates_rgb``,
``gates_tir``); the volume is pooled over the RGB positions with the RGB template response before the pyramid reads
it, so the head sees one (2D + 1)^2 map per band (neither source says how positions are pooled). The local
correlation is one all-pairs product plus a gather (the same numbers as unfolding the TIR map, cheaper here).
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
    token_projections = ("reduce", "tmpl")     # the modules that read the backbone's C-channel tokens (profile)

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
        gm = self.band_gates(f_r, f_t)                                                  # per modality (B, 2)
        g = 0.5 * (gm["rgb"] + gm["tir"])                                               # g = (g_rgb + g_tir) / 2
        K = 2 * self.max_disp + 1
        vol = torch.stack([g[:, 0:1] * bands[0], g[:, 1:2] * bands[1]], 1).view(B, 2, K, K)
        p1 = self.level1(vol * K * K)
        p2 = self.level2(p1)
        p3 = self.level3(p2)
        feats = torch.cat([p1.mean((2, 3)), p2.mean((2, 3)), p3.mean((2, 3)), vol.flatten(1) * K * K], 1)
        return dict(params=self.finish(self.out(feats)), volume=vol, gates=g, gates_rgb=gm["rgb"], gates_tir=gm["tir"],
                    template_weights=w)

    def band_gates(self, f_r: torch.Tensor, f_t: torch.Tensor) -> dict:
        """Each modality's weights of the (low, high) bands from its reduced search map (B, c, H, W), pooled:
        {"rgb": (B, 2), "tir": (B, 2)}, each a softmax over the two bands."""
        return {m: torch.softmax(self.gate[m](f.mean((2, 3))), 1) for m, f in (("rgb", f_r), ("tir", f_t))}
