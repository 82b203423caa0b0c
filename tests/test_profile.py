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


def _tiny_stage2():
    torch.manual_seed(0)
    cfg = get_config("cpu-mini", stage=2, model=dict(embed_dim=64, depth=3, num_heads=2, head_channels=32),
                     align=dict(stages=("center", "scale"), layers=(0, 1, 2)))
    net = build_model(cfg).eval()
    with torch.no_grad():                       # a router whose choice depends on the sample
        for st in net.stages:
            st.dmae.router.mlp[-1].weight.normal_(std=5.0)
    m = cfg.model
    g = torch.Generator().manual_seed(1)
    z, x = torch.rand(4, 3, m.template_size, m.template_size, generator=g), torch.rand(4, 3, m.search_size, m.search_size, generator=g)
    return net, (z, x, z.flip(-1), x.flip(-1))


def test_expert_calls_count_what_hard_routing_runs():
    from pmatrack_mini.profile import expert_calls

    net, inputs = _tiny_stage2()
    calls = expert_calls(net, inputs, "router")
    assert sum(len(c) for c in calls["center"].values()) > 1              # the batch really is split
    with torch.no_grad():
        recs = net(*inputs)["align"]
    for rec in recs:
        chosen = rec["choice"].tolist()
        for e, n in enumerate(rec["names"]):
            k = chosen.count(e)
            assert calls[rec["role"]][n] == ([k] if k else [])          # once on its samples, or never
    assert expert_calls(net, inputs, "soft") == {r: {n: [4] for n in ("tre", "fme", "dpe")} for r in ("center", "scale")}
    assert expert_calls(net, inputs, "fme")["scale"] == {"tre": [], "fme": [4], "dpe": []}
    assert not net.training and not net.stages[0].dmae.experts["tre"]._forward_hooks


def test_mean_frame_macs_is_the_usage_weighted_frame_cost():
    from pmatrack_mini.profile import mean_frame_macs, network_cost_table

    net, inputs = _tiny_stage2()
    one = tuple(t[:1] for t in inputs)
    table = network_cost_table(net)
    hard = count_macs(net, one)["total"]                                     # hard routing at batch 1
    with torch.no_grad():
        chosen = [rec["names"][int(rec["choice"][0])] for rec in net(*one)["align"]]
    roles = ("center", "scale")
    usage = {r: {n: float(n == c) for n in ("tre", "fme", "dpe")} for r, c in zip(roles, chosen)}
    assert mean_frame_macs(table, usage) == hard                             # one-hot usage: that frame's cost
    net.routing = "tre"
    only_tre = count_macs(net, one)["total"]
    net.routing = "dpe"
    only_dpe = count_macs(net, one)["total"]
    half = {r: {"tre": 0.5, "fme": 0.0, "dpe": 0.5} for r in roles}
    assert mean_frame_macs(table, half) == (only_tre + only_dpe) / 2
    assert not net.training


def test_component_seconds_cover_the_forward():
    from pmatrack_mini.config import get_config
    from pmatrack_mini.models import build_model
    from pmatrack_mini.profile import component_macs, component_seconds

    cfg = get_config("cpu-mini", stage=2, model=dict(embed_dim=64, depth=3, num_heads=2, head_channels=32),
                     align=dict(layers=(0, 1, 2), tcmda_heads=2, tcmda_points=2))
    torch.manual_seed(0)
    model = build_model(cfg)
    m = cfg.model
    inputs = (torch.rand(1, 3, m.template_size, m.template_size), torch.rand(1, 3, m.search_size, m.search_size)) * 2
    t = component_seconds(model, inputs, routing="tre", repeats=3)
    macs = component_macs(model, inputs, ("tre",))["tre"]["components"]
    assert set(t["components"]) == set(macs) | {"other"}
    assert all(v >= 0 for v in t["components"].values())
    assert sum(t["components"].values()) >= 0.99 * t["total"] and t["components"]["backbone"] > 0
    assert all(t["components"][f"{role}.{e}"] == 0 for role in model.roles for e in ("fme", "dpe"))   # never ran
