"""The router against the oracle choice argmin_e (l_e + lambda c_e): computed on exactly the tokens each stage saw,
agreement counted per stage, the cost term moving the oracle to the cheapest expert."""
import numpy as np
import torch

from pmatrack_mini.data import load_dataset
from pmatrack_mini.data.sampler import PairSampler
from pmatrack_mini.evaluation.routing_oracle import routing_against_oracle
from pmatrack_mini.geometry import crop_center, normalized_to_crop_px
from pmatrack_mini.models import model_from_checkpoint
from pmatrack_mini.training.losses import expert_error, stage_residual


def test_oracle_choices_and_agreement(samples_dir, stage2_checkpoint):
    net, cfg, _ = model_from_checkpoint(stage2_checkpoint)
    torch.manual_seed(3)
    with torch.no_grad():                         # experts that differ: otherwise every error ties at the identity
        for p in net.stages.parameters():
            p.add_(0.05 * torch.randn_like(p))
    sampler = PairSampler(load_dataset(samples_dir), cfg.model, cfg.train)
    rep = routing_against_oracle(net, sampler, batches=1, batch_size=6, lambda_cost=0.0)
    assert list(rep) == list(net.roles)
    for role, r in rep.items():
        assert r["n"] == 6 and r["agreement"] == np.mean(r["router_choice"] == r["oracle_choice"])
        assert abs(sum(r["oracle"].values()) - 1) < 1e-9 and abs(sum(r["router"].values()) - 1) < 1e-9
        assert list(r["oracle_choice"]) == [r["names"][i] for i in r["l_e"].argmin(1)]     # lambda 0: the best expert
        np.testing.assert_allclose(r["joint"].sum(1), list(r["router"].values()))       # marginals and diagonal
        np.testing.assert_allclose(r["joint"].sum(0), list(r["oracle"].values()))
        assert abs(np.trace(r["joint"]) - r["agreement"]) < 1e-12
    # stage 0 sees the same tokens whatever the routing: its errors are those of each expert run alone
    b = sampler.batch(0, 6, seed=12345)
    S = cfg.model.search_size
    target = normalized_to_crop_px(b["box"][:, :2], S)
    for e, name in enumerate(rep["center"]["names"]):
        with torch.no_grad():
            rec = net(*[b[n] for n in ("z_rgb", "x_rgb", "z_tir", "x_tir")], routing=name)["align"][0]
        gt = stage_residual(rec, b["H_crop"], crop_center(S), target)
        np.testing.assert_allclose(rep["center"]["l_e"][:, e], expert_error(rec["params"], gt, S, False).numpy(),
                                   rtol=1e-5, atol=1e-7)
    # a cost term far above any error: the cheapest expert is always the oracle's choice
    dear = routing_against_oracle(net, sampler, batches=1, batch_size=6, lambda_cost=1e6)
    assert all(r["oracle"]["tre"] == 1.0 for r in dear.values())
