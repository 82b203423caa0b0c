import pytest
import timm
import torch

from pmatrack_mini.config import get_config
from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.models import build_model
from pmatrack_mini.models.backbone import convert_pretrained
from pmatrack_mini.models.head import CenterHead, decode


def _inputs(cfg, B=2):
    m = cfg.model
    z = torch.rand(B, 3, m.template_size, m.template_size)
    x = torch.rand(B, 3, m.search_size, m.search_size)
    return z, x, z.clone(), x.clone()


@pytest.mark.parametrize("modalities", ["rgbt", "rgb", "tir"])
def test_cpu_mini_shapes_states_and_gradients(modalities):
    torch.manual_seed(0)
    cfg = get_config("cpu-mini", model=dict(modalities=modalities, depth=2))
    net = build_model(cfg)
    out = net(*_inputs(cfg))
    F = cfg.model.feat_size
    M = 2 if modalities == "rgbt" else 1
    assert out["score_map"].shape == (2, 1, F, F) and out["size_map"].shape == (2, 2, F, F)
    assert out["boxes"].shape == (2, 4)
    assert len(out["states"]) == 2 and out["states"][0].shape == (2, M * (16 + 64), 192)
    loss = out["score_map"].sum() + out["size_map"].sum() + out["offset_map"].sum()
    loss.backward()
    assert all(p.grad is not None for n, p in net.named_parameters() if n.startswith("backbone.blocks"))


def test_modalities_really_used():
    torch.manual_seed(0)
    cfg = get_config("cpu-mini", model=dict(modalities="rgb", depth=1))
    net = build_model(cfg).eval()
    z, x, zt, xt = _inputs(cfg)
    a = net(z, x, zt, xt)["score_map"]
    b = net(z, x, torch.zeros_like(zt), torch.zeros_like(xt))["score_map"]
    assert torch.equal(a, b)  # RGB-only ignores TIR
    cfg2 = get_config("cpu-mini", model=dict(depth=1))
    net2 = build_model(cfg2).eval()
    assert not torch.equal(net2(z, x, zt, xt)["score_map"], net2(z, x, zt * 0, xt * 0)["score_map"])


def test_decode_by_hand():
    score = torch.zeros(1, 1, 4, 4)
    score[0, 0, 2, 1] = 1.0            # row 2, column 1
    size = torch.zeros(1, 2, 4, 4)
    size[0, :, 2, 1] = torch.tensor([0.25, 0.5])
    off = torch.zeros(1, 2, 4, 4)
    off[0, :, 2, 1] = torch.tensor([0.5, 0.25])
    box = decode(score, size, off)[0]
    assert torch.allclose(box, torch.tensor([(1 + 0.5) / 4, (2 + 0.25) / 4, 0.25, 0.5]))


def test_head_score_is_clamped():
    head = CenterHead(8, 16, 4)
    with torch.no_grad():
        head.score[-1].bias.fill_(100.0)
    out = head(torch.randn(1, 8, 4, 4))
    assert out["score_map"].max() <= 1 - 1e-4 + 1e-7


def test_config_is_strict():
    with pytest.raises(PMATrackError, match="unknown config key 'model.width'"):
        get_config("cpu-mini", model=dict(width=3))
    with pytest.raises(PMATrackError, match="unknown preset"):
        get_config("tiny")
    with pytest.raises(PMATrackError, match="multiple of patch_size"):
        get_config("cpu-mini", model=dict(search_size=100))


def test_checkpoint_mapping_mae_small():
    """A fabricated MAE-format ViT state dict maps onto the backbone; blocks equal, pos-embeds resampled."""
    cfg = get_config("cpu-mini", model=dict(depth=2))
    net = build_model(cfg)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=2, num_classes=0)  # width 192
    sd = {"model": vit.state_dict()}
    mapped = convert_pretrained(sd, net.backbone)
    assert mapped["pos_embed_z"].shape == (1, 16, 192) and mapped["pos_embed_x"].shape == (1, 64, 192)
    missing, unexpected = net.backbone.load_state_dict(mapped, strict=False)
    assert unexpected == [] and missing == ["modality_embed"]
    assert torch.equal(net.backbone.blocks[1].attn.qkv.weight, vit.blocks[1].attn.qkv.weight)


def test_paper_preset_forward_and_ostrack_mapping():
    torch.manual_seed(0)
    cfg = get_config("paper")
    assert (cfg.model.embed_dim, cfg.model.depth, cfg.model.search_size, cfg.model.template_size) == (768, 12, 256, 128)
    net = build_model(cfg).eval()
    # an OSTrack-format checkpoint: {"net": {"backbone.*": ..., "box_head.*": ...}}, 16x16 search / 8x8 template grids
    fake = {"backbone." + k: torch.randn_like(v) for k, v in net.backbone.state_dict().items() if k != "modality_embed"}
    fake["box_head.conv1_ctr.0.weight"] = torch.randn(256, 768, 3, 3)
    mapped = convert_pretrained({"net": fake}, net.backbone)
    missing, unexpected = net.backbone.load_state_dict(mapped, strict=False)
    assert missing == ["modality_embed"] and unexpected == []
    assert torch.equal(net.backbone.pos_embed_x, fake["backbone.pos_embed_x"])
    with torch.no_grad():
        out = net(*_inputs(cfg, B=1))
    assert out["score_map"].shape == (1, 1, 16, 16) and torch.isfinite(out["boxes"]).all()


def test_attention_maps_reproduce_the_block():
    from pmatrack_mini.models.backbone import attention_maps

    torch.manual_seed(0)
    net = build_model(get_config("cpu-mini", model=dict(depth=1))).eval()
    blk = net.backbone.blocks[0]
    x = torch.randn(2, 160, 192)
    A = attention_maps(blk, x)
    assert A.shape == (2, 3, 160, 160) and torch.allclose(A.sum(-1), torch.ones(2, 3, 160))
    # A @ V, then the projection, equals the block's attention branch
    B, N, C = x.shape
    v = blk.attn.qkv(blk.norm1(x)).reshape(B, N, 3, 3, C // 3).permute(2, 0, 3, 1, 4)[2]
    mine = blk.attn.proj((A @ v).transpose(1, 2).reshape(B, N, C))
    assert torch.allclose(mine, blk.attn(blk.norm1(x)), atol=1e-5)
