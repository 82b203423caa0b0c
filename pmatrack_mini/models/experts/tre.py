"""TRE, the Target Response Expert: response maps + optimal transport (PMATrack, Key Designs 2).

Per modality M, a response over the search grid (phi: max over template tokens of the scaled similarities, then a
softmax over search positions; the BCE loss L_r uses the logits before the softmax):

    R^M = phi(P^M(LN(Z^M)) P^M(LN(X^M))^T)    a = R^rgb, b = R^tir  (each sums to 1)

with P^M a two-layer projection per modality (Linear C -> d, ReLU, Linear d -> d; the official shape with d = C)
and one LayerNorm shared by both modalities.

Optimal transport moves the RGB response onto the TIR response with cost C_ij = ||p_i - p_j||^2 (cells^2):

    T* = argmin_{T 1 = a, T^T 1 = b} <T, C> - eps H(T)       (log-domain Sinkhorn, ``pmatrack_mini.ot``)

For evaluation, :func:`scaling_transport` switches to the scaling form of the same updates (``ot.sinkhorn_scaling``:
matrix-vector products on exp(-C / eps) in float64, the same plans to float32 rounding; at cpu-mini a TRE call 1.4 ms
instead of 3.2 on two cores; the paper preset's grid falls back to the log domain); the log-domain solver stays the
default (training, and the stored results).

Read-out. For any feasible plan, sum_ij T_ij (p_j - p_i) = centroid(b) - centroid(a): a *mean* read-out makes
OT pointless. We scatter the plan into a histogram of displacements (dy, dx) in [-(H-1), H-1]^2 and let a small
CNN read it (the official shapes: Conv 1 -> 8, Conv 8 -> 16, 3 x 3); its mode is the teaching read-out
(:func:`plan_mode_offset`). A hot distractor seen in TIR only moves little mass far, so the mode ignores it where
the centroid does not.

Departures from the official code:

* eps is in cells^2 (default 0.5) and the solver works in the log domain; the official eps = 0.02 with costs in
  whole cells underflows (exp(-50) at one cell) to a near-diagonal plan.
* 30 Sinkhorn iterations (official: 50), a fixed count so that the cost and the gradient path are fixed. Measured
  with :func:`sinkhorn_truncation` on held-out pairs (notebook 02): on the responses L_r trains toward
  (:func:`target_responses`) the 30-iteration displacement histogram is within ~1e-2 (total variation) of the
  converged one, with the same mode; on the responses of the trained TRE it is off by 3e-02 at the 90th percentile
  (up to 0.2) and the mode differs on 7 % of the pairs (22 % after 400 stage-2 steps); on sharp responses whose
  peaks lie >= 5 cells apart (the scale and refine stages of a network trained ~900 steps) by up to ~0.4. Mass
  that must travel d cells needs more iterations as d^2 / eps grows. 100 iterations bring the 90th percentile of all
  of these below ~1e-2 (the sharp, far-apart pairs to at most ~0.1), at about 3 x the solver's cost (TRE 8.73 -> 9.30
  M MACs per call at cpu-mini). The read-out CNN is trained on the same truncated plans it sees at inference.
* The read-out's features are flattened into the final Linear (``readout="displacement"``, default), so it knows
  *which* displacement holds the mass; the official code averages them over the histogram first (``"pooled"``), which
  leaves 3 x 3 convolutions to guess a shift of up to H - 1 cells from local patterns alone. Kept because a
  position-blind read-out cannot regress a shift; not yet measured against the pooled one on trained networks.
* phi takes the max over template tokens of the logits, then one softmax over search positions (a distribution, as
  OT needs); the official code takes a softmax over search positions per template token, then the max, then
  normalises. L_r is a BCE on these max-logits per modality at the feature-cell resolution (the official code
  compares the mean over template tokens, upsampled, with the box mask).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ...ot import grid_cost, sinkhorn, sinkhorn_scaling
from . import AlignmentExpert, cell_mask, displacement_index  # noqa: F401 (displacement_index: re-exported)


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


def target_responses(box: torch.Tensor, tir_box: torch.Tensor, grid: int, floor: float = 0.1) -> tuple:
    """The responses L_r trains TRE toward, as distributions: (B, 4) normalised cx, cy, w, h boxes of the target in the
    RGB and the TIR search crop -> (a, b) (B, grid * grid); the target's cells (``cell_mask``) share 1 - ``floor`` of
    the mass, every cell gets floor / N (a softmax never gives exact zeros)."""
    out = []
    for boxes in (box, tir_box):
        m = cell_mask(boxes, grid)                                              # (B, N) 0 / 1
        out.append((1 - floor) * m / m.sum(1, keepdim=True) + floor / m.shape[1])
    return tuple(out)


def peak_distance(a: torch.Tensor, b: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, N) x 2 -> (B,) distance in cells between the arg-max cells of a and b."""
    ia, ib = a.argmax(1), b.argmax(1)
    return torch.hypot((ia % grid - ib % grid).to(a.dtype), (ia // grid - ib // grid).to(a.dtype))


@torch.no_grad()
def sinkhorn_truncation(a: torch.Tensor, b: torch.Tensor, grid: int, epsilon: float, iters=(10, 30, 100),
                        reference_tol: float = 1e-6, reference_iters: int = 2000) -> dict:
    """How far Sinkhorn stopped after k iterations is from its converged plan, as TRE reads the plan.

    a, b (B, N) responses over a grid x grid map. For each k in ``iters``: the L1 row-marginal error |T 1 - a|_1
    (the column marginal is exact after the last update), the total variation between the displacement histograms
    of the k-iteration and the converged plan (float64, row error below ``reference_tol``), and whether their modes
    agree. Returns {"iters": list, "row_error": (I, B), "hist_tv": (I, B), "mode_agrees": (I, B) bool,
    "peak_distance": (B,) cells between the peaks of a and b (:func:`peak_distance`)}."""
    cost = grid_cost(grid, grid, device=a.device).expand(a.shape[0], -1, -1)
    ref = sinkhorn(a.double(), b.double(), cost.double(), epsilon, n_iters=reference_iters, tol=reference_tol)
    h_ref = displacement_histogram(ref.float(), grid)
    mode_ref = plan_mode_offset(h_ref)
    rows = {"row_error": [], "hist_tv": [], "mode_agrees": []}
    for k in iters:
        plan = sinkhorn(a.float(), b.float(), cost, epsilon, n_iters=k)
        h = displacement_histogram(plan, grid)
        rows["row_error"].append((plan.sum(2) - a).abs().sum(1))
        rows["hist_tv"].append(0.5 * (h - h_ref).abs().flatten(1).sum(1))
        rows["mode_agrees"].append((plan_mode_offset(h) == mode_ref).all(1))
    out = {k: torch.stack(v) for k, v in rows.items()}
    return dict(iters=list(iters), peak_distance=peak_distance(a, b, grid), **out)


def scaling_transport(net: nn.Module, on: bool = True) -> nn.Module:
    """Every TRE of ``net`` solving its transport by scaling updates (``on``: ``ot.sinkhorn_scaling``, the same
    plans to float32 rounding) or in the log domain (the reference and the default). Returns ``net``."""
    for module in net.modules():
        if isinstance(module, TRE):
            module.scaling = on
    return net


class TRE(AlignmentExpert):
    token_projections = ("norm", "proj")     # the modules that read the backbone's C-channel tokens (profile)

    def __init__(self, dim: int, grid: int, search_size: int, stage: str = "center", proj_dim: int = 144,
                 readout: str = "displacement", epsilon: float = 0.5, iters: int = 30, temperature: float = 1.0):
        super().__init__(dim, grid, search_size, stage)
        if readout not in ("displacement", "pooled"):
            raise ValueError(f"TRE readout must be 'displacement' or 'pooled', got {readout!r}")
        self.norm = nn.LayerNorm(dim)                                                        # shared by RGB and TIR
        self.proj = nn.ModuleDict({m: nn.Sequential(nn.Linear(dim, proj_dim), nn.ReLU(inplace=True),
                                                    nn.Linear(proj_dim, proj_dim)) for m in ("rgb", "tir")})  # P^M
        self.epsilon, self.iters, self.temperature, self.readout = epsilon, iters, temperature, readout
        self.scaling = False                          # ot.sinkhorn_scaling instead of the log domain (same plans)
        self.register_buffer("cost", grid_cost(grid, grid), persistent=False)               # (N, N) cells^2
        self.register_buffer("disp_index", displacement_index(grid), persistent=False)
        K = 2 * grid - 1
        self.reader = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True))
        self.regress = nn.Linear(16 * K * K if readout == "displacement" else 16, 5)
        self.start_at_identity(self.regress)

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, iters={self.iters}, temperature={self.temperature}, readout={self.readout}"

    def response_logits(self, z: torch.Tensor, x: torch.Tensor, m: str) -> torch.Tensor:
        """max over template tokens of P(LN Z) P(LN X)^T / sqrt(d): (B, Nx) logits over search positions."""
        Z, X = self.proj[m](self.norm(z)), self.proj[m](self.norm(x))  # (B, Nz, d), (B, Nx, d)
        S = Z @ X.transpose(1, 2) / Z.shape[-1] ** 0.5                  # (B, Nz, Nx)
        return S.max(dim=1).values                                      # (B, Nx)

    def forward(self, rgb, tir) -> dict:
        (z_r, x_r), (z_t, x_t) = rgb, tir
        logit_r = self.response_logits(z_r, x_r, "rgb")                 # (B, N)
        logit_t = self.response_logits(z_t, x_t, "tir")
        a = torch.softmax(logit_r / self.temperature, dim=1)            # RGB response, sums to 1
        b = torch.softmax(logit_t / self.temperature, dim=1)            # TIR response
        solve = sinkhorn_scaling if self.scaling else sinkhorn
        plan = solve(a.float(), b.float(), self.cost.expand(a.shape[0], -1, -1), self.epsilon, n_iters=self.iters)
        hist = displacement_histogram(plan, self.grid, self.disp_index)  # (B, K, K)
        feats = self.reader(hist[:, None] * hist.shape[-1] ** 2)         # (B, 16, K, K); rescaled: mean cell ~ 1
        feats = feats.flatten(1) if self.readout == "displacement" else feats.mean((2, 3))
        return dict(params=self.finish(self.regress(feats)), response_rgb=logit_r, response_tir=logit_t, plan=plan,
                    hist=hist)
