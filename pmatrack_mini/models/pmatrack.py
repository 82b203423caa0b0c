"""PMATrack's network: the stage-1 tracker with progressive, routed alignment stages between its blocks.

PMATrack, Overall Architecture and Key Designs 1. Alignment is estimated in three steps, from shallow to deep:

    centre  (shallow): P_center = [dx, dy]                       scale fixed to 1
    scale   (middle):  P_scale  = [d dx, d dy, log sx, log sy]    a residual on the centre stage
    refine  (deep):    P_refine = the same four, a residual       what is left (occlusion, modality gaps)

Each stage k reads the token states after its block (``align.layers``): the RGB template and search tokens, the
TIR template tokens, and the TIR search tokens **seen through the alignment so far** (warped into the RGB crop by
H_{k-1}), so that what it measures is exactly the residual it must predict. A DMAE (``models.router``: router +
TRE / FME / DPE) predicts the stage's parameters, anchored at the search-crop centre c = (S - 1) / 2
(``geometry.params_to_homography``); stages compose by homography products, never by adding parameters:

    D_k = T(c + d_k) diag(s_k) T(-c),        H_k = H_{k-1} D_k,        H_0 = I

(H_k maps RGB search-crop px to TIR search-crop px; the tracker cut the TIR crop through a pre-alignment, so H_0 = I
means "the crops already agree".) Then TCMDA (``models.tcmda``) fuses the two modalities' search tokens guided by
H_k, and the blocks continue. The head reads the final RGB and TIR search maps, as in stage 1.

The one-shot ablation (``align.one_shot``): a single stage after the centre block regresses all four parameters at
once (a "refine"-role DMAE: shift and log scales, supervised with the whole residual), and TCMDA modules after the
scale and refine blocks (``fusions``) fuse with that one estimate: the same number of TCMDA modules as the
progressive network, so that "progressive beats one-shot" is not confounded with extra fusion.

Stage 2 trains the stages with the tracker frozen (the paper; ``train.freeze_tracker``): the frozen backbone and
head stay in eval mode (no drop-path, no batch-norm statistics updates), gradients still flow through the frozen
blocks to the earlier stages. When ``align.routing`` names one expert of several, training runs that expert alone,
so the routers and the other experts are frozen too: they would never receive a gradient, which multi-process
training (DDP) does not allow for a trainable parameter. Departures from the official code: composition by products instead of adding
parameters (exact only at scale 1); later stages see the TIR tokens through the current alignment; the centre stage
keeps its scale at 1 in training too.
Letters: B batch, N tokens, C channels.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..config import EXPERT_NAMES, Config
from ..geometry import apply_homography_torch, crop_center, homography_in_cells, params_to_homography, pixel_grid
from .backbone import tokens_to_map
from .baseline import BaselineNet
from .router import DMAE
from .tcmda import TCMDA, sample_at


def warp_tokens(x: torch.Tensor, H: torch.Tensor, grid: int, patch: int) -> torch.Tensor:
    """TIR search tokens (B, N, C) seen in the RGB crop through H (RGB crop px -> TIR crop px): token p of the
    result is the TIR map sampled at H p (bilinear, zero outside)."""
    B, N, C = x.shape
    p = pixel_grid(grid, grid, device=x.device, dtype=x.dtype).reshape(1, N, 2).expand(B, N, 2)
    src = apply_homography_torch(homography_in_cells(H.to(x.dtype), patch), p)            # (B, N, 2) TIR cells
    return sample_at(tokens_to_map(x, grid), src[:, :, None])[..., 0].transpose(1, 2)     # (B, N, C)


class AlignmentStage(nn.Module):
    """One box of the figure: DMAE (router + experts) -> homography -> TCMDA."""

    def __init__(self, role: str, cfg: Config):
        super().__init__()
        m, a = cfg.model, cfg.align
        self.role, self.grid, self.patch = role, m.feat_size, m.patch_size
        self.center = crop_center(m.search_size)
        self.dmae = DMAE(a.experts, m.embed_dim, m.feat_size, m.search_size, role, a.router_channels,
                         a.router_hidden, a.gumbel_tau, sizes={n: a.expert_sizes(n) for n in a.experts},
                         router_input=a.router_input)
        self.tcmda = TCMDA(m.embed_dim, m.feat_size, m.patch_size, a.tcmda_heads, a.tcmda_points) if a.tcmda else None

    def forward(self, parts: list, H_prev: torch.Tensor | None, routing: str):
        """parts: [(z_rgb, x_rgb), (z_tir, x_tir)] token tensors; H_prev (B, 3, 3) or None (= identity).

        Returns (parts after fusion, H_k, record)."""
        (z_r, x_r), (z_t, x_t) = parts
        x_t_seen = x_t if H_prev is None else warp_tokens(x_t, H_prev, self.grid, self.patch)
        mix = self.dmae((z_r, x_r), (z_t, x_t_seen), routing)
        delta = params_to_homography(mix["params"][:, :4], self.center)                 # D_k (B, 3, 3)
        if H_prev is None:
            H_prev = torch.eye(3, dtype=delta.dtype, device=delta.device).expand_as(delta)
        H = H_prev @ delta                                                                  # H_k = H_{k-1} D_k
        fusion = None
        if self.tcmda is not None:
            x_r, x_t, fusion = self.tcmda(x_r, x_t, H)
        record = dict(role=self.role, H_prev=H_prev, H=H, fusion=fusion, **mix)
        return [(z_r, x_r), (z_t, x_t)], H, record


class PMATrackNet(BaselineNet):
    """Backbone + head of stage 1 (same parameter names, so stage-1 weights load as they are) + alignment stages."""

    def __init__(self, cfg: Config):
        super().__init__(cfg.model)
        a = cfg.align
        self.roles = ("refine",) if a.one_shot else tuple(a.stages)
        self.stage_after = {a.layer_of(r): k for k, r in enumerate(a.stages[:len(self.roles)])}   # block -> stage
        self.stages = nn.ModuleList(AlignmentStage(r, cfg) for r in self.roles)
        fused = [a.layer_of(r) for r in a.stages[1:]] if a.one_shot and a.tcmda else []
        self.fusion_after = {i: k for k, i in enumerate(fused)}                      # block index -> fusion index
        self.fusions = nn.ModuleList(TCMDA(cfg.model.embed_dim, cfg.model.feat_size, cfg.model.patch_size,
                                           a.tcmda_heads, a.tcmda_points) for _ in fused)
        self.routing = a.routing
        self.frozen_tracker = cfg.train.freeze_tracker
        if self.frozen_tracker:
            for p in list(self.backbone.parameters()) + list(self.head.parameters()):
                p.requires_grad_(False)
        if a.routing in EXPERT_NAMES and len(a.experts) > 1:   # one named expert: nothing else is ever reached
            for stage in self.stages:
                idle = [stage.dmae.router] + [m for n, m in stage.dmae.experts.items() if n != a.routing]
                for p in (p for m in idle for p in m.parameters()):
                    p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen_tracker:          # frozen parts behave as at inference: no drop-path, fixed BN statistics
            self.backbone.eval()
            self.head.eval()
        return self

    def forward(self, z_rgb, x_rgb, z_tir, x_tir, routing: str | None = None) -> dict:
        """Crops in [0, 1], (B, 3, H, W) each. Returns the head's maps and boxes, ``H`` (B, 3, 3), the final
        alignment (RGB crop px -> TIR crop px), and ``align``: one record per stage (see AlignmentStage)."""
        bb = self.backbone
        tokens = bb.tokens([z_rgb, z_tir], [x_rgb, x_tir])                    # (B, 2 (Nz + Nx), C)
        H, records = None, []
        for i, block in enumerate(bb.blocks):
            tokens = block(tokens)
            k = self.stage_after.get(i)
            if k is not None:
                parts, H, rec = self.stages[k](bb.split(tokens), H, routing or self.routing)
                tokens = bb.join(parts)
                records.append(rec)
            elif i in self.fusion_after:                                       # one-shot: fusion with the one H
                (z_r, x_r), (z_t, x_t) = bb.split(tokens)
                x_r, x_t, _ = self.fusions[self.fusion_after[i]](x_r, x_t, H)
                tokens = bb.join([(z_r, x_r), (z_t, x_t)])
        out = self.predict(bb.norm(tokens))
        out["H"], out["align"] = H, records
        return out

    def set_router_warmup(self, active: bool) -> None:
        """While active, training mixes each stage's experts uniformly and the routers do not learn."""
        for stage in self.stages:
            stage.dmae.warmup = active

    def trainable_parameters(self):
        """(alignment parameters, tracker parameters that train) for the optimiser's two groups."""
        align = [p for p in list(self.stages.parameters()) + list(self.fusions.parameters()) if p.requires_grad]
        tracker = [p for n, p in self.named_parameters() if not n.startswith(("stages.", "fusions."))
                   and p.requires_grad]
        return align, tracker

