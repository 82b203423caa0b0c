"""DMAE, the Difficulty-aware Multi-cue Alignment Expert: at each stage a router picks one of the stage's experts.

PMATrack, Key Designs 2. A router R reads both modalities' search tokens and gives selection weights

    r_e = R([X^V ; X^I]),        P = sum_e r_e P_e,        e in {TRE, FME, DPE}

and the cost-penalty expert-selection loss (CPESL) teaches it to send easy frames to cheap experts:

    L_CPESL = sum_e r_e l_e  +  lambda_cost * sum_e r_e c_e

with l_e the expert's error on the sample in the official code's units (smooth L1 of the translation as a fraction
of the search crop, plus the log scales: ``losses.expert_error``) and c_e its cost (``losses.cpesl``). In these
units a dearer expert pays only when it saves about S sqrt(lambda_cost (c_dear - c_cheap)) px per axis
(``losses.break_even_px``: 12 px TRE -> DPE at cpu-mini, 24 px at the paper preset).

Router (``align.router_input``). It reads the stage's RGB search tokens and the TIR search tokens seen through the
alignment so far (``models.pmatrack``), so what it sees is the residual the stage must remove:

* ``tokens`` (default): each token projected to a few channels (``router_channels``), all RGB and TIR projections
  concatenated, so the spatial layout survives (a misaligned pair shows as the same pattern in two places); an MLP
  maps them to one logit per expert;
* ``agreement``: the same, plus per token the cosine similarity of the RGB token and the TIR token at the same
  place, and the best such similarity over the 8 TIR tokens one cell away: aligned pairs agree in place, a pair off
  by about a cell agrees better next door, a pair off by more agrees nowhere; a direct cue of how hard the frame is;
* ``official``: the official router, channel 0 of every RGB and TIR search token, MLP 2N -> 128 -> 64 -> E (about
  74 k multiply-adds at the paper preset).

Routing (``align.routing``; the model returns per sample the weights, the router's probabilities and the choice):

* training, ``router`` or ``soft``: Gumbel-softmax weights (temperature ``gumbel_tau``, soft): every expert runs
  and the parameters are mixed, so every expert and the router get gradients. During the first
  ``align.router_warmup`` of the steps the weights are uniform instead and the router does not learn: untrained
  experts all predict the identity, so their losses are equal and the cost term alone would drive the router to
  the cheapest expert, where its softmax saturates and never recovers (seen here: routing collapsed to TRE at
  every stage within 80 steps);
* inference, ``router`` (default): hard arg-max per sample, no noise; the batch is grouped by choice and **only
  the chosen expert runs** on its samples (:func:`dispatch`), so cheap choices really cost less;
* inference, ``soft``: softmax weights without noise, all experts run and are mixed;
* ``tre`` / ``fme`` / ``dpe``: that expert alone, for every sample (ablations).

c_e is each expert's MACs at this stage, measured with fvcore when the model is built
(``profile.expert_cost_table``) and divided by the largest of the stage's experts.

Departures from the official code: there the stage's forward mixes softly with fresh Gumbel noise at inference too
and always runs all three experts, and its separate hard-routing path defaults to forcing expert 0 (TRE) for every
sample, so the FLOPs saving the paper reports never happens as the router would decide; and c_e are hard-coded
GFLOPs constants. Here inference routes hard by the router's arg-max and the costs are measured.
Letters: B batch, N search tokens, C channels, E experts.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import EXPERT_NAMES
from ..errors import PMATrackError
from .experts import build_expert


class Router(nn.Module):
    """Logits over experts from both modalities' search tokens (B, N, C) -> (B, E); ``inputs``: see the module
    docstring (tokens | agreement | official)."""

    def __init__(self, dim: int, num_tokens: int, num_experts: int, channels: int = 4, hidden: int = 64,
                 inputs: str = "tokens"):
        super().__init__()
        self.inputs, self.grid = inputs, int(round(num_tokens ** 0.5))
        if inputs == "official":
            self.reduce = None
            self.mlp = nn.Sequential(nn.Linear(2 * num_tokens, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                                     nn.Linear(64, num_experts))
            return
        self.reduce = nn.Linear(dim, channels)                       # per token: keeps the spatial layout
        width = 2 * num_tokens * channels + (2 * num_tokens if inputs == "agreement" else 0)
        self.mlp = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, num_experts))

    def forward(self, x_rgb: torch.Tensor, x_tir: torch.Tensor) -> torch.Tensor:
        if self.inputs == "official":
            return self.mlp(torch.cat([x_rgb[..., 0], x_tir[..., 0]], dim=1))         # (B, 2N) -> (B, E)
        r = torch.cat([self.reduce(x_rgb), self.reduce(x_tir)], dim=1).flatten(1)    # (B, 2N channels)
        if self.inputs == "agreement":
            r = torch.cat([r, *token_agreement(x_rgb, x_tir, self.grid)], dim=1)     # + (B, N), (B, N)
        return self.mlp(r)                                                            # (B, E)


def token_agreement(x_rgb: torch.Tensor, x_tir: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token (B, N): the cosine similarity of the RGB and TIR tokens at the same place, and the best cosine
    similarity of the RGB token with the 8 TIR tokens one cell away (border tokens repeated)."""
    B, N, C = x_rgb.shape
    r = x_rgb.transpose(1, 2).reshape(B, C, grid, grid)
    t = x_tir.transpose(1, 2).reshape(B, C, grid, grid)
    here = F.cosine_similarity(r, t, dim=1).flatten(1)                                 # (B, N)
    padded = F.pad(t, (1, 1, 1, 1), mode="replicate")
    near = torch.stack([F.cosine_similarity(r, padded[:, :, 1 + dy:1 + dy + grid, 1 + dx:1 + dx + grid], dim=1)
                        for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx], dim=1)  # (B, 8, G, G)
    return here, near.amax(1).flatten(1)


def mixing_weights(logits: torch.Tensor, names: tuple, routing: str, training: bool, tau: float = 1.0,
                   warmup: bool = False):
    """Routing rule -> (weights (B, E), choice (B,) long or None when every expert runs).

    See the module docstring for the rules; ``choice`` is given for hard routing and single-expert modes."""
    B, E = logits.shape
    if routing in EXPERT_NAMES:
        if routing not in names:
            raise PMATrackError(f"routing {routing!r}: this stage's experts are {names}")
        choice = torch.full((B,), names.index(routing), dtype=torch.long, device=logits.device)
        return F.one_hot(choice, E).to(logits.dtype), choice
    if routing not in ("router", "soft"):
        raise PMATrackError(f"unknown routing {routing!r}; choose from router, soft, {', '.join(EXPERT_NAMES)}")
    if E == 1:
        return logits.new_ones(B, 1), torch.zeros(B, dtype=torch.long, device=logits.device)
    if training and warmup:
        return logits.new_full((B, E), 1.0 / E), None                     # uniform: the router waits
    if training:
        return F.gumbel_softmax(logits, tau=tau, hard=False, dim=-1), None
    if routing == "soft":
        return torch.softmax(logits, dim=-1), None
    choice = logits.argmax(dim=-1)                                        # hard: arg-max, no noise
    return F.one_hot(choice, E).to(logits.dtype), choice


def _take(inputs, idx: torch.Tensor):
    """Select the samples ``idx`` from ((z_rgb, x_rgb), (z_tir, x_tir))."""
    return tuple(tuple(t.index_select(0, idx) for t in pair) for pair in inputs)


def dispatch(experts: nn.ModuleDict, names: tuple, choice: torch.Tensor, rgb, tir) -> torch.Tensor:
    """Hard routing: run each chosen expert once on the samples that chose it; scatter back. -> params (B, 5)."""
    params = None
    for e, name in enumerate(names):
        idx = (choice == e).nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            continue                                                      # an expert nobody chose costs nothing
        sub_rgb, sub_tir = _take((rgb, tir), idx)
        p = experts[name](sub_rgb, sub_tir)["params"]                    # (b_e, 5)
        if params is None:
            params = p.new_zeros(choice.shape[0], p.shape[1])
        params = params.index_copy(0, idx, p)
    return params


class DMAE(nn.Module):
    """One stage's experts, router and measured costs."""

    def __init__(self, names: tuple, dim: int, grid: int, search_size: int, role: str, channels: int = 4,
                 hidden: int = 64, tau: float = 1.0, sizes: dict | None = None, router_input: str = "tokens"):
        """``sizes``: {expert: its size arguments} (``AlignConfig.expert_sizes``); missing: the class defaults."""
        super().__init__()
        from ..profile import expert_cost_table, sizes_key

        self.names, self.tau = tuple(names), tau
        self.warmup = False                    # set by the trainer during the router warm-up
        sizes = {n: dict((sizes or {}).get(n, {})) for n in self.names}
        self.experts = nn.ModuleDict({n: build_expert(n, dim, grid, search_size, stage=role, **sizes[n])
                                      for n in self.names})
        self.router = (Router(dim, grid * grid, len(self.names), channels, hidden, router_input)
                       if len(self.names) > 1 else None)
        # the same at every stage (a stage differs only in an element-wise zeroing, no MACs; notebook 05 checks),
        # so one count per size serves all three
        macs = expert_cost_table(self.names, dim, grid, search_size, sizes=sizes_key(sizes))
        self.register_buffer("macs", torch.tensor([float(macs[n]) for n in self.names]), persistent=False)
        self.register_buffer("costs", self.macs / self.macs.max(), persistent=False)   # c_e, the largest is 1

    def forward(self, rgb, tir, routing: str) -> dict:
        """rgb, tir: (z (B, Nz, C), x (B, Nx, C)). Returns params (B, 5) and the routing record."""
        x_r, x_t = rgb[1], tir[1]
        B = x_r.shape[0]
        logits = self.router(x_r, x_t) if self.router is not None else x_r.new_zeros(B, 1)   # (B, E)
        weights, choice = mixing_weights(logits, self.names, routing, self.training, self.tau, self.warmup)
        outputs = {}
        if choice is not None and not self.training:
            params = dispatch(self.experts, self.names, choice, rgb, tir)              # chosen experts only
        elif choice is not None:                                                      # training one named expert
            name = self.names[int(choice[0])]
            outputs[name] = self.experts[name](rgb, tir)
            params = outputs[name]["params"]
        else:                                                                         # every expert, mixed
            outputs = {n: self.experts[n](rgb, tir) for n in self.names}
            stacked = torch.stack([outputs[n]["params"] for n in self.names], dim=1)  # (B, E, 5)
            params = (weights[:, :, None] * stacked).sum(1)                           # P = sum_e r_e P_e
        if choice is None:
            choice = weights.argmax(dim=-1)
        return dict(params=params, weights=weights, probs=torch.softmax(logits, dim=-1), choice=choice,
                    outputs=outputs, names=self.names, costs=self.costs)
