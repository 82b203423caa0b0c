"""The router against the oracle: on held-out pairs, which expert should each stage have run, and did it?

CPESL (``losses.cpesl``) trains the router toward the expert that minimises, per sample,

    e* = argmin_e ( l_e + lambda_cost c_e )

with l_e the expert's error in the official units (``losses.expert_error``: smooth L1 of the translation as a
fraction of the search crop, plus the log scales outside the centre stage) against the stage's ground-truth
residual (``losses.stage_residual``) and c_e its measured cost (MACs / the stage's dearest). That argmin is the
*oracle choice*. :func:`routing_against_oracle` runs the network as it tracks (hard routing: each stage sees the
alignment the earlier stages' chosen experts produced), runs every expert of each stage on exactly the tokens that
stage saw, and reports per stage the router's choice, the oracle's choice and how often they agree. A router that
judges difficulty agrees often and, where it disagrees, picks experts whose error is close to the oracle's.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.sampler import PairSampler
from ..geometry import crop_center, normalized_to_crop_px
from ..training.losses import expert_error, stage_residual


@torch.no_grad()
def routing_against_oracle(model, sampler: PairSampler, batches: int, batch_size: int = 32, seed: int = 12345,
                           lambda_cost: float = 0.01, device="cpu") -> dict:
    """{role: {"n", "agreement", "router": {expert: share}, "oracle": {expert: share}, "joint": (E, E) share of pairs
    with router choice i and oracle choice j (its diagonal sums to the agreement), "router_choice": (n,),
    "oracle_choice": (n,) expert names, "l_e": (n, E) errors, "names"}} over ``batches`` fixed batches."""
    model.eval()
    S = model.cfg.search_size
    c = crop_center(S)
    seen: dict = {}
    hooks = [st.dmae.register_forward_pre_hook(lambda mod, args, k=k: seen.__setitem__(k, args[:2]))
             for k, st in enumerate(model.stages)]
    rows = {rec_k: {"router": [], "oracle": [], "l_e": []} for rec_k in range(len(model.stages))}
    try:
        for b in range(batches):
            batch = sampler.batch(b, batch_size, seed=seed)
            out = model(*[batch[n].to(device) for n in ("z_rgb", "x_rgb", "z_tir", "x_tir")], routing="router")
            H_true = batch["H_crop"].to(device)
            target = normalized_to_crop_px(batch["box"][:, :2], S).to(device)
            for k, rec in enumerate(out["align"]):
                dmae = model.stages[k].dmae
                gt = stage_residual(rec, H_true, c, target)                               # (B, 4)
                scale = rec["role"] != "center"
                l_e = torch.stack([expert_error(dmae.experts[n](*seen[k])["params"], gt, S, scale)
                                   for n in dmae.names], dim=1)                           # (B, E)
                oracle = (l_e + lambda_cost * dmae.costs[None]).argmin(dim=1)
                rows[k]["router"].append(rec["choice"].cpu().numpy())
                rows[k]["oracle"].append(oracle.cpu().numpy())
                rows[k]["l_e"].append(l_e.cpu().numpy())
    finally:
        for h in hooks:
            h.remove()
    report = {}
    for k, st in enumerate(model.stages):
        names = np.asarray(st.dmae.names)
        router, oracle = (np.concatenate(rows[k][w]) for w in ("router", "oracle"))
        share = lambda idx: {str(n): float(np.mean(idx == e)) for e, n in enumerate(names)}   # noqa: E731
        joint = np.array([[np.mean((router == a) & (oracle == b)) for b in range(len(names))]
                          for a in range(len(names))])                       # (E router, E oracle) share of pairs
        report[st.role] = dict(n=len(router), agreement=float(np.mean(router == oracle)), router=share(router),
                               oracle=share(oracle), joint=joint, router_choice=names[router],
                               oracle_choice=names[oracle],
                               l_e=np.concatenate(rows[k]["l_e"]), names=tuple(names))
    return report
