"""Batched, differentiable, log-domain Sinkhorn (entropic optimal transport) in torch.

Solves, for each batch element, the entropic OT problem that POT's ``ot.sinkhorn(a, b, M, reg)`` solves:

    T* = argmin_{T >= 0, T 1 = a, T^T 1 = b}  <T, C> + eps * sum_ij T_ij (log T_ij - 1)

whose solution has the form T_ij = exp((f_i + g_j - C_ij) / eps). The dual potentials are updated in the
log domain (numerically safe for small eps, where exp(-C / eps) underflows in float32):

    f_i <- eps log a_i - eps LSE_j((g_j - C_ij) / eps)
    g_j <- eps log b_j - eps LSE_i((f_i - C_ij) / eps)

``epsilon`` is in the units of the cost (as POT's ``reg``). POT stays the reference in the tests.
Letters: B batch, N source points, M target points.
"""
from __future__ import annotations

import torch


def sinkhorn(a: torch.Tensor, b: torch.Tensor, cost: torch.Tensor, epsilon: float,
             n_iters: int | None = None, tol: float | None = None) -> torch.Tensor:
    """Entropic OT plans. a (B, N), b (B, M) non-negative with equal sums; cost (B, N, M) -> plan (B, N, M).

    ``n_iters`` alone: exactly that many iterations (fixed cost, differentiable end to end).
    ``tol``: stop once every row-marginal error max_i |T 1 - a| is below it (checked every 10 iterations),
    after at most ``n_iters`` (default 1000). Neither given: tol = 1e-6, n_iters = 1000.
    """
    if a.ndim != 2 or b.ndim != 2 or cost.shape != (a.shape[0], a.shape[1], b.shape[1]):
        raise ValueError(f"sinkhorn wants a (B,N), b (B,M), cost (B,N,M); got {tuple(a.shape)}, {tuple(b.shape)}, "
                         f"{tuple(cost.shape)}")
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    if n_iters is None and tol is None:
        tol = 1e-6
    max_iters = n_iters if n_iters is not None else 1000
    log_a = torch.log(a.clamp_min(0))                     # -inf where a_i = 0: that row carries no mass
    log_b = torch.log(b.clamp_min(0))
    f = torch.zeros_like(a)
    g = torch.zeros_like(b)
    C = cost / epsilon                                    # (B, N, M)
    for it in range(max_iters):
        # f_i = eps log a_i - eps LSE_j (g_j / eps - C_ij)
        f = epsilon * (log_a - torch.logsumexp(g[:, None, :] / epsilon - C, dim=2))
        # g_j = eps log b_j - eps LSE_i (f_i / eps - C_ij)
        g = epsilon * (log_b - torch.logsumexp(f[:, :, None] / epsilon - C, dim=1))
        if tol is not None and it % 10 == 9:
            plan = torch.exp(f[:, :, None] / epsilon + g[:, None, :] / epsilon - C)
            if (plan.sum(2) - a).abs().max() < tol:
                break
    # T_ij = exp((f_i + g_j - C_ij) / eps); rows / columns with zero mass give exp(-inf) = 0
    plan = torch.exp(f[:, :, None] / epsilon + g[:, None, :] / epsilon - C)
    return torch.nan_to_num(plan, nan=0.0)


def grid_cost(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Squared Euclidean distance between cells of an h x w grid, in cells^2: (h w, h w)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype),
                            indexing="ij")
    p = torch.stack([xs.flatten(), ys.flatten()], dim=1)   # (N, 2)
    return torch.cdist(p, p) ** 2
