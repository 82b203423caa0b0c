"""Alignment metrics: the inputs ``stage_inputs`` hands back are exactly what the network's stages read."""
import torch

from pmatrack_mini.alignment_metrics import stage_inputs
from pmatrack_mini.config import get_config
from pmatrack_mini.data import load_dataset
from pmatrack_mini.data.sampler import PairSampler
from pmatrack_mini.models import build_model
from pmatrack_mini.models.pmatrack import warp_tokens

TINY = dict(embed_dim=64, depth=3, num_heads=2, head_channels=32)


def test_stage_inputs_are_what_the_stages_read(samples_dir):
    torch.manual_seed(0)
    cfg = get_config("cpu-mini", stage=2, model=TINY, align=dict(stages=("center", "scale"), layers=(0, 1, 2),
                                                                  experts=("tre", "fme"), tcmda=False))
    net = build_model(cfg)
    for p in net.stages.parameters():            # move the experts away from their identity start
        torch.nn.init.normal_(p, std=0.05)
    b = PairSampler(load_dataset(samples_dir), cfg.model, cfg.train).batch(0, 3)
    images = [b[n] for n in ("z_rgb", "x_rgb", "z_tir", "x_tir")]
    # stage 0 reads the backbone's tokens after its block, as they are
    rgb, tir, out = stage_inputs(net, b, stage=0, routing="fme")
    (z_r, x_r), (z_t, x_t) = net.backbone.split(net.backbone(images[::2], images[1::2], upto=0)[1][-1])
    for got, ref in zip(rgb + tir, (z_r, x_r, z_t, x_t)):
        torch.testing.assert_close(got, ref)
    torch.testing.assert_close(net.stages[0].dmae.experts["fme"](rgb, tir)["params"], out["align"][0]["params"])
    # stage 1 reads the TIR search tokens through the alignment of stage 0: not the raw tokens
    rgb, tir, out = stage_inputs(net, b, stage=1, routing="tre")
    x_t1 = net.backbone.split(net.backbone(images[::2], images[1::2], upto=1)[1][-1])[1][1]
    torch.testing.assert_close(tir[1], warp_tokens(x_t1, out["align"][0]["H"], cfg.model.feat_size, cfg.model.patch_size))
    assert not torch.allclose(tir[1], x_t1)
    torch.testing.assert_close(net.stages[1].dmae.experts["tre"](rgb, tir)["params"], out["align"][1]["params"])
    assert not net.training                      # left in eval mode, no hook left behind
    assert not net.stages[1].dmae._forward_pre_hooks
