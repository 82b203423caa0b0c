"""One-stream ViT backbone (OSTrack, ECCV 2022) for two modalities, built from timm's blocks.

OSTrack concatenates template tokens z and search tokens x and runs them through one ViT, so that
feature extraction and template-search relation modelling happen in the same attention layers.
For RGBT we concatenate both modalities' tokens as well:

    tokens = [z_rgb ; x_rgb ; z_tir ; x_tir]      (B, M * (Nz + Nx), C)

Letters: B batch, C channels, M modalities, Nz / Nx template / search tokens, L layers.

Every token gets a position embedding (one for template positions, one for search positions,
shared by the modalities) and a modality embedding. The forward exposes the token states after
every block. PMATrack's network (``models.pmatrack``) runs the blocks itself, with its alignment stages
between them; :meth:`OneStreamViT.tokens` is its entry point.

Departure from OSTrack: no candidate elimination, and the modality embedding is ours (OSTrack is
RGB only). Blocks, patch embedding and position-embedding resampling are timm's.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import PatchEmbed, resample_abs_pos_embed, trunc_normal_
from timm.models.vision_transformer import Block

from ..config import ModelConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def tokens_to_map(tokens: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, grid * grid, C) row-major tokens -> (B, C, grid, grid)."""
    B, N, C = tokens.shape
    return tokens.transpose(1, 2).reshape(B, C, grid, grid)


class OneStreamViT(nn.Module):
    def __init__(self, cfg: ModelConfig, num_modalities: int = 2):
        super().__init__()
        C, p = cfg.embed_dim, cfg.patch_size
        self.cfg = cfg
        self.num_modalities = num_modalities
        self.grid_z = cfg.template_size // p
        self.grid_x = cfg.search_size // p
        self.num_z, self.num_x = self.grid_z ** 2, self.grid_x ** 2
        self.patch_embed = PatchEmbed(img_size=None, patch_size=p, in_chans=3, embed_dim=C, strict_img_size=False)
        self.pos_embed_z = nn.Parameter(torch.zeros(1, self.num_z, C))
        self.pos_embed_x = nn.Parameter(torch.zeros(1, self.num_x, C))
        self.modality_embed = nn.Parameter(torch.zeros(num_modalities, 1, C))
        dpr = torch.linspace(0, cfg.drop_path, cfg.depth).tolist()
        self.blocks = nn.ModuleList(
            Block(C, cfg.num_heads, cfg.mlp_ratio, qkv_bias=True, drop_path=dpr[i]) for i in range(cfg.depth))
        self.norm = nn.LayerNorm(C, eps=1e-6)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        for pe in (self.pos_embed_z, self.pos_embed_x, self.modality_embed):
            trunc_normal_(pe, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def embed(self, z: torch.Tensor, x: torch.Tensor, m: int) -> torch.Tensor:
        """Images in [0, 1]: z (B, 3, Hz, Wz), x (B, 3, Hx, Wx) -> tokens (B, Nz + Nx, C)."""
        z = self.patch_embed((z - self.mean) / self.std) + self.pos_embed_z    # (B, Nz, C)
        x = self.patch_embed((x - self.mean) / self.std) + self.pos_embed_x    # (B, Nx, C)
        return torch.cat([z, x], dim=1) + self.modality_embed[m]                # (B, Nz + Nx, C)

    def tokens(self, templates: list, searches: list) -> torch.Tensor:
        """templates / searches: one image batch per modality -> embedded tokens (B, M (Nz + Nx), C)."""
        if len(templates) != self.num_modalities or len(searches) != self.num_modalities:
            raise ValueError(f"expected {self.num_modalities} modalities, got {len(templates)} / {len(searches)}")
        return torch.cat([self.embed(z, x, m) for m, (z, x) in enumerate(zip(templates, searches))], dim=1)

    def forward(self, templates: list, searches: list, upto: int | None = None):
        """templates / searches: one image batch per modality.

        Returns (tokens (B, M (Nz + Nx), C) after the final norm, [token states after each block]).
        ``upto=k`` stops after block k and returns (None, states[: k + 1]) (shallow features only).
        """
        tokens = self.tokens(templates, searches)
        states = []
        for i, blk in enumerate(self.blocks):
            tokens = blk(tokens)                                                # (B, M (Nz + Nx), C)
            states.append(tokens)
            if upto is not None and i == upto:
                return None, states
        return self.norm(tokens), states

    def split(self, tokens: torch.Tensor) -> list:
        """(B, M (Nz + Nx), C) -> per modality (z (B, Nz, C), x (B, Nx, C))."""
        per = tokens.split(self.num_z + self.num_x, dim=1)
        return [(t[:, : self.num_z], t[:, self.num_z:]) for t in per]

    @staticmethod
    def join(parts: list) -> torch.Tensor:
        """The inverse of :meth:`split`: per modality (z, x) -> (B, M (Nz + Nx), C)."""
        return torch.cat([t for z, x in parts for t in (z, x)], dim=1)

    def search_map(self, x_tokens: torch.Tensor) -> torch.Tensor:
        """(B, Nx, C) -> (B, C, H, W) feature map of the search region."""
        return tokens_to_map(x_tokens, self.grid_x)


# ----------------------------------------------------------------------------- checkpoints


MAPPED_PREFIXES = ("patch_embed.", "blocks.", "norm.")       # copied as they are
POS_EMBEDS = ("pos_embed", "pos_embed_z", "pos_embed_x")     # resampled to the template / search grids


def unwrap_state(state: dict) -> tuple[dict, str]:
    """(the state dict inside a checkpoint, the prefix of its backbone keys): MAE keeps it under ``model``,
    OSTrack under ``net`` with keys ``backbone.*``, other trainers under ``state_dict``."""
    for key in ("net", "model", "state_dict"):
        if key in state and isinstance(state[key], dict):
            state = state[key]
            break
    prefix = "backbone." if any(k.startswith("backbone.") for k in state) else ""
    return state, prefix


def _maps(key: str) -> bool:
    return key.startswith(MAPPED_PREFIXES) or key in POS_EMBEDS


def unmapped_keys(state: dict) -> list:
    """Keys of a checkpoint that :func:`convert_pretrained` does not use (class token, classifier, box head)."""
    sd, prefix = unwrap_state(state)
    return [k for k in sd if not (k.startswith(prefix) and _maps(k[len(prefix):]))]


def convert_pretrained(state: dict, backbone: OneStreamViT) -> dict:
    """Map an MAE/timm ViT or an OSTrack checkpoint onto this backbone's state-dict keys.

    * MAE / timm ViT (``model`` or bare): ``patch_embed.*``, ``blocks.*``, ``norm.*`` copy over;
      ``pos_embed`` (1, 1 + G*G, C) loses its class token and is resampled (bicubic, timm) to the
      template and search grids; ``cls_token`` and classifier weights are dropped.
    * OSTrack (``net``): keys under ``backbone.`` copy over, ``pos_embed_z`` / ``pos_embed_x`` are
      resampled if the grids differ; the box head is not mapped (its input width differs for RGBT).
    The modality embedding has no counterpart and keeps its initialisation.
    """
    sd, prefix = unwrap_state(state)
    state = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    out = {k: v for k, v in state.items() if k.startswith(MAPPED_PREFIXES)}
    C = backbone.cfg.embed_dim
    if "pos_embed" in state:  # MAE / timm: one grid with a class token
        pe = state["pos_embed"]
        n = pe.shape[1]
        side = int(round((n - 1) ** 0.5))
        n_cls = n - side * side
        for name, g in (("pos_embed_z", backbone.grid_z), ("pos_embed_x", backbone.grid_x)):
            out[name] = resample_abs_pos_embed(pe[:, n_cls:], [g, g], old_size=[side, side], num_prefix_tokens=0)
    for name, g in (("pos_embed_z", backbone.grid_z), ("pos_embed_x", backbone.grid_x)):
        if name in state:
            pe = state[name]
            side = int(round(pe.shape[1] ** 0.5))
            out[name] = pe if side == g else resample_abs_pos_embed(pe, [g, g], old_size=[side, side], num_prefix_tokens=0)
    if out and next(iter(out.values())).shape[-1] != C and "patch_embed.proj.weight" in out:
        if out["patch_embed.proj.weight"].shape[0] != C:
            raise ValueError(f"checkpoint width {out['patch_embed.proj.weight'].shape[0]} != model width {C}")
    return out


def attention_maps(block, tokens: torch.Tensor) -> torch.Tensor:
    """The attention weights a timm ``Block`` computes for ``tokens`` (B, N, C): (B, heads, N, N).

    timm calls the fused scaled_dot_product_attention, which does not return its weights, so we
    recompute them from the block's own projections: A = softmax(Q K^T / sqrt(d)).
    """
    attn = block.attn
    B, N, C = tokens.shape
    qkv = attn.qkv(block.norm1(tokens)).reshape(B, N, 3, attn.num_heads, C // attn.num_heads)
    q, k, _ = qkv.permute(2, 0, 3, 1, 4)                              # each (B, h, N, d)
    q, k = attn.q_norm(q), attn.k_norm(k)
    return torch.softmax(q @ k.transpose(-2, -1) * attn.scale, dim=-1)  # (B, h, N, N)
