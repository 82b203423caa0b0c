"""Alignment experts: given one backbone layer's template and search tokens of both modalities, how is the TIR
search crop displaced (and, after the centre stage, scaled) relative to the RGB search crop?

Common interface (every expert)::

    out = expert((z_rgb, x_rgb), (z_tir, x_tir))     # tokens: z (B, Nz, C), x (B, Nx, C)
    out["params"]                                     # (B, 5): dx, dy, log sx, log sy, confidence logit

* dx, dy: the displacement in **search-crop pixels**, anchored at the crop centre (``geometry.params_to_homography``),
  bounded by tanh to +-search_size / 2;
* log sx, log sy: log scales bounded by tanh * ln 4; zero at the ``center`` stage (as the official code);
* confidence: a logit, free (not used by the losses).
Inside PMATrack's network the TIR search tokens an expert sees are already warped by the stages before it, so the
parameters are a residual (``models.pmatrack``).

Costs rise TRE < FME < DPE (see ``pmatrack_mini.profile.expert_costs``). Their sizes are config fields
(``config.AlignConfig``: ``tre_dim``, ``fme_dim``, ``fme_gate_hidden``, ``fme_channels``, ``dpe_base``,
``dpe_levels``, ``dpe_heads``, ``dpe_mlp_ratio``). At the paper preset they take the official code's shapes, so that
each call costs what the official expert costs (linear + conv multiply-adds: TRE 0.756 G, FME 4.33 G, DPE 7.555 G);
at cpu-mini the same proportions of the stage-1 tracker (TRE about 1.3 %, FME 7.7 %, DPE 13.4 % of its MACs).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ...config import EXPERT_NAMES, STAGE_ROLES
from ..backbone import tokens_to_map

STAGES = STAGE_ROLES          # an expert serves one stage role
EXPERTS = EXPERT_NAMES        # in order of rising cost


class AlignmentExpert(nn.Module):
    def __init__(self, dim: int, grid: int, search_size: int, stage: str = "center"):
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.dim, self.grid, self.search_size, self.stage = dim, grid, search_size, stage

    def finish(self, raw: torch.Tensor) -> torch.Tensor:
        """(B, 5) unbounded -> params: dx, dy = tanh * S / 2; dlog s = tanh * ln 4 (0 at the centre stage)."""
        shift = torch.tanh(raw[:, :2]) * (self.search_size / 2)
        log_s = torch.tanh(raw[:, 2:4]) * math.log(4.0)
        if self.stage == "center":
            log_s = log_s * 0.0
        return torch.cat([shift, log_s, raw[:, 4:5]], dim=1)

    @staticmethod
    def start_at_identity(regressor: nn.Linear) -> None:
        """Zero the final regressor: an untrained expert predicts no correction (the identity alignment), so a new
        stage starts from the pre-alignment instead of from noise of up to half a crop."""
        nn.init.zeros_(regressor.weight)
        nn.init.zeros_(regressor.bias)

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Nx, C) search tokens -> (B, C, H, W)."""
        return tokens_to_map(x, self.grid)


def cell_mask(boxes: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, 4) normalised cx, cy, w, h -> (B, grid * grid) 1 where a cell centre lies inside the box."""
    c = (torch.arange(grid, device=boxes.device, dtype=boxes.dtype) + 0.5) / grid
    x1, x2 = boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 0] + boxes[:, 2] / 2
    y1, y2 = boxes[:, 1] - boxes[:, 3] / 2, boxes[:, 1] + boxes[:, 3] / 2
    inx = (c[None] >= x1[:, None]) & (c[None] <= x2[:, None])          # (B, W)
    iny = (c[None] >= y1[:, None]) & (c[None] <= y2[:, None])          # (B, H)
    m = (iny[:, :, None] & inx[:, None, :]).flatten(1).to(boxes.dtype)  # (B, H W)
    # a target smaller than a cell still marks the cell holding its centre
    idx = ((boxes[:, 1] * grid).long().clamp(0, grid - 1) * grid + (boxes[:, 0] * grid).long().clamp(0, grid - 1))
    return m.scatter(1, idx[:, None], 1.0)


def displacement_index(grid: int) -> torch.Tensor:
    """(N * N,) bin of the displacement p_j - p_i in a (2 grid - 1)^2 map (dy rows, dx columns), for each pair
    (i, j) of grid positions (row-major i * N + j): how TRE's transport plan and FME's correlation matrix are read
    by displacement."""
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    p = torch.stack([xs.flatten(), ys.flatten()], 1)                # (N, 2) (x, y)
    d = p[None, :, :] - p[:, None, :]                                # (N, N, 2): p_j - p_i
    K = 2 * grid - 1
    return ((d[..., 1] + grid - 1) * K + (d[..., 0] + grid - 1)).flatten()


def build_expert(name: str, dim: int, grid: int, search_size: int, stage: str = "center",
                 **sizes) -> AlignmentExpert:
    """An expert by name; ``sizes`` are its width arguments (``AlignConfig.expert_sizes(name)``), the class's
    defaults (cpu-mini) otherwise."""
    from .dpe import DPE
    from .fme import FME
    from .tre import TRE

    table = {"tre": TRE, "fme": FME, "dpe": DPE}
    if name not in table:
        raise ValueError(f"unknown expert {name!r}; choose from {sorted(table)}")
    return table[name](dim, grid, search_size, stage, **sizes)

