import torch
from timm.models.vision_transformer import Block

from pmatrack_mini.config import get_config
from pmatrack_mini.models import build_model
from pmatrack_mini.profile import count_macs


def test_fused_attention_is_counted_like_a_hand_count():
    B, N, C, h = 1, 20, 48, 4
    blk = Block(C, h, mlp_ratio=4.0, qkv_bias=True).eval()
    assert blk.attn.fused_attn  # timm calls F.scaled_dot_product_attention
    macs = count_macs(blk, (torch.randn(B, N, C),))
    hand = (N * C * 3 * C          # qkv projection
            + 2 * N * N * C        # Q K^T and (softmax) V over all heads: h * N * N * (C / h) each
            + N * C * C            # output projection
            + 2 * N * C * 4 * C)   # MLP fc1 + fc2
    assert macs["by_operator"]["scaled_dot_product_attention"] == 2 * N * N * C
    # layer norms / GELU add a few element-wise MACs at most; matmuls must match exactly
    assert hand <= macs["total"] <= hand + 10 * N * C
    # the explicit (unfused) attention path gives the same matmul count
    blk.attn.fused_attn = False
    explicit = count_macs(blk, (torch.randn(B, N, C),))
    assert abs(explicit["total"] - macs["total"]) <= 10 * N * C


def test_model_count_scales_with_depth():
    m1 = build_model(get_config("cpu-mini", model=dict(depth=1)))
    m2 = build_model(get_config("cpu-mini", model=dict(depth=2)))
    z, x = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 128, 128)
    c1, c2 = count_macs(m1, (z, x, z, x)), count_macs(m2, (z, x, z, x))
    per_block = c2["total"] - c1["total"]
    N, C = 160, 192
    assert per_block == count_macs(m2.backbone.blocks[0], (torch.randn(1, N, C),))["total"]
