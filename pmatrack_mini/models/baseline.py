"""The RGBT baseline (the paper's "Baseline" row): one-stream ViT + centre head, no alignment.

RGB and TIR search tokens are concatenated along channels (B, 2C, H, W) and read by the head.
The RGB-only and TIR-only variants run one modality through the same code.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..config import ModelConfig
from .backbone import OneStreamViT
from .head import CenterHead


class BaselineNet(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.modalities = ["rgb", "tir"] if cfg.modalities == "rgbt" else [cfg.modalities]
        self.backbone = OneStreamViT(cfg, num_modalities=len(self.modalities))
        self.head = CenterHead(cfg.embed_dim * len(self.modalities), cfg.head_channels, cfg.feat_size)

    def forward(self, z_rgb, x_rgb, z_tir, x_tir) -> dict:
        """Crops in [0, 1], (B, 3, H, W) each. Returns the head's maps and boxes, plus ``states``."""
        pick = {"rgb": (z_rgb, x_rgb), "tir": (z_tir, x_tir)}
        zs = [pick[m][0] for m in self.modalities]
        xs = [pick[m][1] for m in self.modalities]
        tokens, states = self.backbone(zs, xs)
        out = self.predict(tokens)
        out["states"] = states
        return out

    def predict(self, tokens: torch.Tensor) -> dict:
        """Final tokens (after the backbone's norm) -> the head's maps and boxes."""
        maps = [self.backbone.search_map(x) for _, x in self.backbone.split(tokens)]   # M x (B, C, H, W)
        return self.head(torch.cat(maps, dim=1))                                         # (B, M C, H, W) in
