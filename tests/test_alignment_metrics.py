"""Alignment metrics: the inputs ``stage_inputs`` hands back are exactly what the network's stages read."""
import torch

from pmatrack_mini.config import get_config
from pmatrack_mini.data import load_dataset
from pmatrack_mini.data.sampler import PairSampler
from pmatrack_mini.evaluation.alignment_metrics import stage_inputs
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


def _errs():
    """Hand-made errors of 4 pairs through 2 stages with 3 experts (the layout of ``alignment_errors``)."""
    import numpy as np

    probs = np.array([[[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]],
                      [[0.4, 0.4, 0.2], [0.1, 0.1, 0.8]],
                      [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
                      [[0.0, 0.0, 1.0], [0.5, 0.5, 0.0]]])
    return {"before": np.array([10.0, 20.0, 2.0, 40.0]),
            "attributes": {"occlusion": np.array([True, False, False, True]), "distractor": np.zeros(4, bool)},
            "router": {"after": np.array([[5.0, 4.0], [8.0, 9.0], [3.0, 3.0], [30.0, 10.0]]), "probs": probs,
                       "choice": np.array([["tre", "dpe"], ["tre", "dpe"], ["tre", "fme"], ["dpe", "tre"]])}}


def test_stage_residuals_are_what_each_stage_faced():
    import numpy as np

    from pmatrack_mini.evaluation.alignment_metrics import stage_residuals

    res = stage_residuals(_errs(), "router")
    np.testing.assert_array_equal(res, [[10, 5], [20, 8], [2, 3], [40, 30]])


def test_router_probability_tables_by_attribute_and_by_residual():
    import numpy as np

    from pmatrack_mini.evaluation.alignment_metrics import router_probability_by_residual, router_probability_table

    names, roles = ("tre", "fme", "dpe"), ("center", "scale")
    t = router_probability_table(_errs(), "router", roles, names)
    assert set(t) == {"all", "occlusion"}                                   # no distractor pair: left out
    assert t["all"]["n"] == 4 and t["occlusion"]["n"] == 2
    assert t["all"]["center"]["tre"] == 0.5                                 # (0.6 + 0.4 + 1 + 0) / 4
    assert np.isclose(t["occlusion"]["scale"]["dpe"], 0.3)                  # (0.6 + 0) / 2
    b = router_probability_by_residual(_errs(), "router", roles, names, edges=[0, 15, 50, 100])
    np.testing.assert_array_equal(b["center"]["n"], [2, 2, 0])             # residuals 10, 2 | 20, 40 | -
    assert np.isclose(b["center"]["tre"][0], 0.8) and np.isclose(b["center"]["dpe"][1], 0.6)
    assert np.isnan(b["center"]["fme"][2])
    np.testing.assert_array_equal(b["scale"]["n"], [3, 1, 0])              # stage 2 faced 5, 8, 3 | 30


def test_stage_changes_verdicts():
    from pmatrack_mini.evaluation.alignment_metrics import stage_changes

    c = stage_changes(_errs(), "router", ("center", "scale"))
    assert c["center"]["median_in"] == 15.0 and c["center"]["median_out"] == 6.5
    assert c["center"]["verdict"] == "helps" and c["center"]["improved"] == 0.75      # 2 -> 3 got worse
    assert c["scale"]["median_in"] == 6.5 and c["scale"]["median_out"] == 6.5
    assert c["scale"]["verdict"] == "no change" and c["scale"]["improved"] == 0.5
    assert stage_changes(_errs(), "router", ("center", "scale"), tol=10)["center"]["verdict"] == "no change"


def test_fusion_residuals_are_zero_untrained_and_measure_the_change(samples_dir):
    cfg = get_config("cpu-mini", stage=2, model=TINY, align=dict(stages=("center", "scale"), layers=(0, 1, 2)))
    torch.manual_seed(0)
    net = build_model(cfg)
    b = PairSampler(load_dataset(samples_dir), cfg.model, cfg.train).batch(0, 2)
    from pmatrack_mini.evaluation.alignment_metrics import fusion_residuals

    assert fusion_residuals(net, b) == {r: {"rgb": 0.0, "tir": 0.0} for r in ("center", "scale")}
    with torch.no_grad():
        net.stages[1].tcmda.out["tir"].weight.normal_(std=0.1)
    r = fusion_residuals(net, b)
    assert r["center"] == {"rgb": 0.0, "tir": 0.0} and r["scale"]["rgb"] == 0.0 and r["scale"]["tir"] > 0
    assert not net.stages[1].tcmda._forward_hooks


def test_one_pair_errors_match_the_batch_evaluation(samples_dir, stage1_checkpoint, stage2_checkpoint):
    from pmatrack_mini.evaluation.alignment_metrics import alignment_errors, one_pair
    from pmatrack_mini.models import model_from_checkpoint

    net, cfg, _ = model_from_checkpoint(stage2_checkpoint)
    tracker, _, _ = model_from_checkpoint(stage1_checkpoint)
    sampler = PairSampler(load_dataset(samples_dir), cfg.model, cfg.train)
    b = sampler.batch(0, 3, seed=12345)
    ref = alignment_errors(net, sampler, batches=1, batch_size=3, routings=("tre",))
    G = cfg.model.feat_size
    for i in range(3):
        none, oracle, tre = (one_pair(b, i, m, network=net, tracker=tracker) for m in ("none", "oracle", "tre"))
        assert abs(none["error_px"] - ref["before"][i]) < 1e-3 and oracle["error_px"] == 0.0
        assert abs(tre["error_px"] - ref["tre"]["after"][i, -1]) < 1e-3
        assert tre["experts"] == {r: "tre" for r in net.roles} and tre["score_map"].shape == (G, G)
        assert none["tir_seen"].shape == (3, cfg.model.search_size, cfg.model.search_size)


def test_true_shift_cells_is_the_target_displacement_in_cells(samples_dir):
    """A hand-made pair: the TIR crop moved by (2, -1) cells and scaled 1.1 about the crop centre; the shift is read
    at the RGB target (not the crop centre), in cells of search_size / grid px. On sampled pairs it agrees with the
    TIR - RGB box-centre offset, and is NaN where the homography is unknown."""
    from pmatrack_mini.config import merge
    from pmatrack_mini.evaluation.alignment_metrics import true_shift_cells
    from pmatrack_mini.geometry import crop_center, normalized_to_crop_px, params_to_homography

    S, G = 128, 8
    P = S // G
    H = params_to_homography(torch.tensor([[2.0 * P, -1.0 * P, 0.0953, 0.0953]]), crop_center(S))   # scale ~1.1
    box = torch.tensor([[0.75, 0.25, 0.1, 0.1]])                                  # target off the crop centre
    batch = {"box": box, "H_crop": H, "px_per_crop_px": torch.ones(1)}
    c = normalized_to_crop_px(box[0, :2], S)
    expect = (torch.tensor([2.0 * P, -1.0 * P]) + (torch.tensor(0.0953).exp() - 1) * (c - crop_center(S))) / P
    torch.testing.assert_close(true_shift_cells(batch, S, G)[0], expect)
    assert (true_shift_cells(batch, S, G)[0] - torch.tensor([2.0, -1.0])).abs().max() > 0.1   # not the centre's shift
    batch["H_crop"] = torch.full((1, 3, 3), float("nan"))
    assert torch.isnan(true_shift_cells(batch, S, G)).all()

    cfg = get_config("cpu-mini")
    seqs = [s for s in load_dataset(samples_dir) if s.name.startswith("large")]
    tcfg = merge(cfg.train, dict(prealign="mixture", residual_mix=(0, 0, 1, 0), residual_scale=0.0))
    b = PairSampler(seqs, cfg.model, tcfg).batch(1, 8)
    S, G = cfg.model.search_size, cfg.model.feat_size
    d = true_shift_cells(b, S, G)
    assert d.norm(dim=1).max() > 1.0                                               # shifts of cells, not of pixels
    torch.testing.assert_close(d, b["offset"] / (S / G), atol=0.01, rtol=0)
