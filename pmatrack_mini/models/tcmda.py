"""TCMDA, Transformation-guided Cross-Modal Deformable Attention (PMATrack, Key Designs 3).

The stage's alignment H (RGB search crop px -> TIR search crop px) becomes the geometric prior of a deformable
attention between the modalities. On the token grid (cell coordinates, token j at j; ``geometry.homography_in_cells``)
each query position p_t of one modality is projected into the other modality,

    p_s = H p_t,            dH = p_s - p_t                       (geometric prior)

a small network on the query token predicts, for each of h heads and K points, a local offset dL and a weight A,

    G_{h,k} = p_t + dH + dL_{h,k},        v_h = sum_k A_{h,k} S(V_h, G_{h,k})      (A: softmax over k)

S samples the other modality's values bilinearly (``grid_sample``, zero outside the map). The heads' outputs are
concatenated, projected, and added to the query tokens as a residual.

Bi-directional: RGB search tokens sample TIR with H, TIR search tokens sample RGB with H^-1 (the exact inverse).
Template tokens are not fused (as the official code).

Initialisation (after Deformable DETR's ``MSDeformAttn``): the offset layer has zero weights and biases that
spread the K points of head h around the prior in direction 2 pi h / heads, at 0.5, 1, ... cells; the weight layer
is zero (uniform A); the **output projection is zero**, so an untrained TCMDA adds nothing and a stage-2 model
built from a stage-1 checkpoint tracks exactly as the stage-1 tracker (tested).

Pixel convention: cell centres at integers and ``grid_sample(align_corners=True)``
(``geometry.cell_grid_to_normalized``): an identity H with zero dL samples each token at itself, and a shift of k
cells moves the sampled features by k cells (tested). The official code builds its reference grid with the
align_corners=False convention but samples with align_corners=True, half a token off.
Letters: B batch, N tokens (G x G grid), C channels, h heads, K points, d = C / h.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..geometry import apply_homography_torch, cell_grid_to_normalized, homography_in_cells, pixel_grid

MODS = ("rgb", "tir")


def sample_at(values: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """S(V, G): bilinear samples of value maps (b, d, G, G) at points (b, N, K, 2) in cell coordinates (x, y),
    zero outside the map -> (b, d, N, K)."""
    g = cell_grid_to_normalized(points, values.shape[-1])
    return F.grid_sample(values, g, mode="bilinear", padding_mode="zeros", align_corners=True)


class TCMDA(nn.Module):
    def __init__(self, dim: int, grid: int, patch: int, heads: int = 4, points: int = 4):
        super().__init__()
        if dim % heads:
            raise ValueError(f"TCMDA: dim {dim} is not divisible by heads {heads}")
        self.dim, self.grid, self.patch, self.heads, self.points = dim, grid, patch, heads, points
        self.norm = nn.ModuleDict({m: nn.LayerNorm(dim) for m in MODS})
        self.offsets = nn.ModuleDict({m: nn.Linear(dim, heads * points * 2) for m in MODS})   # dL, per query modality
        self.attn = nn.ModuleDict({m: nn.Linear(dim, heads * points) for m in MODS})         # A, per query modality
        self.value = nn.ModuleDict({m: nn.Linear(dim, dim) for m in MODS})                  # V, per source modality
        self.out = nn.ModuleDict({m: nn.Linear(dim, dim) for m in MODS})                    # per query modality
        self.register_buffer("ref", pixel_grid(grid, grid).reshape(1, grid * grid, 2), persistent=False)  # (1, N, 2)
        self.reset_parameters()

    def reset_parameters(self):
        h, K = self.heads, self.points
        ang = torch.arange(h, dtype=torch.float32) * (2 * math.pi / h)
        ring = torch.stack([ang.cos(), ang.sin()], -1)                                    # (h, 2)
        radius = 0.5 * torch.arange(1, K + 1, dtype=torch.float32)                        # (K,) cells
        bias = (ring[:, None, :] * radius[None, :, None]).flatten()                      # (h K 2,)
        for m in MODS:
            nn.init.zeros_(self.offsets[m].weight)
            with torch.no_grad():
                self.offsets[m].bias.copy_(bias)
            nn.init.zeros_(self.attn[m].weight)
            nn.init.zeros_(self.attn[m].bias)
            nn.init.xavier_uniform_(self.value[m].weight)
            nn.init.zeros_(self.value[m].bias)
            nn.init.zeros_(self.out[m].weight)
            nn.init.zeros_(self.out[m].bias)

    def sampling_points(self, query: str, q: torch.Tensor, H_cell: torch.Tensor) -> dict:
        """Where the queries of modality ``query`` (normalised tokens (B, N, C)) sample the other modality.

        Returns prior dH (B, N, 2), offsets dL (B, N, h, K, 2), points G (B, N, h, K, 2) in cells, weights A
        (B, N, h, K)."""
        B, N, _ = q.shape
        h, K = self.heads, self.points
        p_t = self.ref.to(q.dtype).expand(B, N, 2)                                      # (B, N, 2)
        p_s = apply_homography_torch(H_cell, p_t)                                       # p_s = H p_t
        prior = p_s - p_t                                                                # dH
        local = self.offsets[query](q).view(B, N, h, K, 2)                              # dL
        points = p_t[:, :, None, None] + prior[:, :, None, None] + local                # G = p_t + dH + dL
        weights = torch.softmax(self.attn[query](q).view(B, N, h, K), dim=-1)           # A
        return dict(prior=prior, offsets=local, points=points, weights=weights)

    def attend(self, query: str, x_q: torch.Tensor, x_s: torch.Tensor, H_cell: torch.Tensor):
        """Queries x_q (B, N, C) of modality ``query`` gather the other modality's x_s (B, N, C). -> (residual, info)."""
        B, N, C = x_q.shape
        h, K, G, d = self.heads, self.points, self.grid, C // self.heads
        source = MODS[1 - MODS.index(query)]
        info = self.sampling_points(query, self.norm[query](x_q), H_cell)
        v = self.value[source](self.norm[source](x_s))                                  # (B, N, C)
        v = v.transpose(1, 2).reshape(B * h, d, G, G)                                   # (B h, d, G, G)
        pts = info["points"].permute(0, 2, 1, 3, 4).reshape(B * h, N, K, 2)              # (B h, N, K, 2)
        s = sample_at(v, pts)                                                           # (B h, d, N, K)
        a = info["weights"].permute(0, 2, 1, 3).reshape(B * h, 1, N, K)                 # (B h, 1, N, K)
        fused = (s * a).sum(-1).view(B, h * d, N).transpose(1, 2)                       # (B, N, C): v_h concatenated
        return self.out[query](fused), info

    def forward(self, x_rgb: torch.Tensor, x_tir: torch.Tensor, H: torch.Tensor):
        """Search tokens (B, N, C) of both modalities, H (B, 3, 3) RGB crop px -> TIR crop px.

        Returns (x_rgb', x_tir', {"rgb": info, "tir": info}) with info as :meth:`sampling_points`."""
        H_cell = homography_in_cells(H.to(x_rgb.dtype), self.patch)                    # RGB cells -> TIR cells
        H_inv = torch.linalg.inv(H_cell)                                                 # TIR cells -> RGB cells
        d_rgb, info_rgb = self.attend("rgb", x_rgb, x_tir, H_cell)                      # RGB queries sample TIR
        d_tir, info_tir = self.attend("tir", x_tir, x_rgb, H_inv / H_inv[:, 2:3, 2:3])  # TIR queries sample RGB
        return x_rgb + d_rgb, x_tir + d_tir, {"rgb": info_rgb, "tir": info_tir}
