"""TRE, the Target Response Expert: response maps + optimal transport (PMATrack, Key Designs 2).

Per modality M, a response over the search grid (phi: softmax over search positions, then max over
template tokens; the BCE loss L_r uses the logits before the softmax):

    R^M = phi((Z^M W^M) (X^M W^M)^T)          a = R^rgb, b = R^tir  (each sums to 1)

Optimal transport moves the RGB response onto the TIR response with cost C_ij = ||p_i - p_j||^2 (cells^2):

    T* = argmin_{T 1 = a, T^T 1 = b} <T, C> - eps H(T)       (log-domain Sinkhorn, ``pmatrack_mini.ot``)

Read-out. For any feasible plan, sum_ij T_ij (p_j - p_i) = centroid(b) - centroid(a): a *mean* read-out makes
OT pointless. We scatter the plan into a histogram of displacements (dy, dx) in [-(H-1), H-1]^2 and let a small
CNN read it (as the official code); its mode is the teaching read-out (:func:`plan_mode_offset`). A hot
distractor seen in TIR only moves little mass far, so the mode ignores it where the centroid does not.

Departure from the official code: eps is in cells^2 (default 0.5) and the solver works in the log domain; the
official eps = 0.02 with costs in whole cells underflows (exp(-50) at one cell) to a near-diagonal plan.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ...ot import grid_cost, sinkhorn
from . import AlignmentExpert


def displacement_index(grid: int) -> torch.Tensor:
    """(N * N,) index of the displacement p_j - p_i in a (2 grid - 1)^2 histogram, for each pair (i, j)."""
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    p = torch.stack([xs.flatten(), ys.flatten()], 1)                # (N, 2) (x, y)
    d = p[None, :, :] - p[:, None, :]                                # (N, N, 2): p_j - p_i
    K = 2 * grid - 1
    return ((d[..., 1] + grid - 1) * K + (d[..., 0] + grid - 1)).flatten()


def displacement_histogram(plan: torch.Tensor, grid: int, index: torch.Tensor | None = None) -> torch.Tensor:
    """plan (B, N, N) -> (B, 2 grid - 1, 2 grid - 1) mass moved by each displacement (dy rows, dx columns)."""
    B = plan.shape[0]
    K = 2 * grid - 1
    index = displacement_index(grid).to(plan.device) if index is None else index
    hist = plan.new_zeros(B, K * K).index_add_(1, index, plan.flatten(1))
    return hist.view(B, K, K)


def plan_mode_offset(hist: torch.Tensor) -> torch.Tensor:
    """(B, K, K) histogram -> (B, 2) displacement (dx, dy) in cells with the most mass."""
    B, K, _ = hist.shape
    idx = hist.flatten(1).argmax(1)
    g = (K - 1) // 2
    return torch.stack([(idx % K) - g, (idx // K) - g], 1).to(hist.dtype)


def centroid_offset(a: torch.Tensor, b: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, N) distributions -> (B, 2) centroid(b) - centroid(a) in cells: what any mean read-out of a plan gives."""
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=a.dtype, device=a.device),
                            torch.arange(grid, dtype=a.dtype, device=a.device), indexing="ij")
    p = torch.stack([xs.flatten(), ys.flatten()], 1)                # (N, 2)
    return b @ p - a @ p


class TRE(AlignmentExpert):
    def __init__(self, dim: int, grid: int, search_size: int, stage: str = "center", proj_dim: int = 64,
                 epsilon: float = 0.5, iters: int = 30, temperature: float = 1.0):
        super().__init__(dim, grid, search_size, stage)
        self.proj = nn.ModuleDict({m: nn.Linear(dim, proj_dim) for m in ("rgb", "tir")})   # W^M
        self.epsilon, self.iters, self.temperature = epsilon, iters, temperature
        self.register_buffer("cost", grid_cost(grid, grid), persistent=False)               # (N, N) cells^2
        self.register_buffer("disp_index", displacement_index(grid), persistent=False)
        K = 2 * grid - 1
        self.reader = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU(inplace=True),
            nn.Flatten(), nn.Linear(8 * ((K + 1) // 2) ** 2, 5))
        self.start_at_identity(self.reader[-1])

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, iters={self.iters}, temperature={self.temperature}"

    def response_logits(self, z: torch.Tensor, x: torch.Tensor, m: str) -> torch.Tensor:
        """max over template tokens of (Z W)(X W)^T / sqrt(d): (B, Nx) logits over search positions."""
        Z, X = self.proj[m](z), self.proj[m](x)                         # (B, Nz, d), (B, Nx, d)
        S = Z @ X.transpose(1, 2) / Z.shape[-1] ** 0.5                  # (B, Nz, Nx)
        return S.max(dim=1).values                                      # (B, Nx)

    def forward(self, rgb, tir) -> dict:
        (z_r, x_r), (z_t, x_t) = rgb, tir
        logit_r = self.response_logits(z_r, x_r, "rgb")                 # (B, N)
        logit_t = self.response_logits(z_t, x_t, "tir")
        a = torch.softmax(logit_r / self.temperature, dim=1)            # RGB response, sums to 1
        b = torch.softmax(logit_t / self.temperature, dim=1)            # TIR response
        B = a.shape[0]
        plan = sinkhorn(a.float(), b.float(), self.cost.expand(B, -1, -1), self.epsilon, n_iters=self.iters)
        hist = displacement_histogram(plan, self.grid, self.disp_index)  # (B, K, K)
        raw = self.reader(hist[:, None] * hist.shape[-1] ** 2)          # rescaled: mean cell ~ 1
        return dict(params=self.finish(raw), response_rgb=logit_r, response_tir=logit_t, plan=plan, hist=hist)
