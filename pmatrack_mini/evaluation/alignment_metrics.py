"""How well a stage-2 network aligns: residual alignment error at the target, stage by stage, on held-out pairs.

For a pair cut through a pre-alignment (``data.sampler``), the TIR target's true position in the TIR search crop is
H(c) with H the exact RGB crop -> TIR crop homography and c the RGB target centre. The network's alignment after
stage k is H_k; the residual error is

    e_k = || H_k(c) - H(c) ||  (crop px)  x  px_per_crop_px      -> RGB image px

and e_before = || c - H(c) || is the error of the pre-alignment alone (H_0 = I). The same pairs go through every
routing mode, so the modes are compared on identical inputs. Per sample we also keep each stage's expert choice,
router probabilities and the search frame's attributes, for tables (``error_table``) and for the notebooks.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.sampler import PairSampler
from ..geometry import apply_homography_torch, invert_homography_torch, normalized_to_crop_px, warp_features

ATTRIBUTE_SUBSETS = ("occlusion", "distractor", "thermal_crossover", "low_illumination", "prealign_drift")


@torch.no_grad()
def alignment_errors(model, sampler: PairSampler, batches: int, batch_size: int = 32, seed: int = 12345,
                     routings=("router",), device="cpu") -> dict:
    """Per-sample errors (RGB px) on ``batches`` fixed batches. Returns

    {"before": (n,), "attributes": {name: (n,) bool}, "residual_kind": (n,),
     routing: {"after": (n, stages), "choice": (n, stages) expert names, "probs": (n, stages, E)}}."""
    model.eval()
    S = model.cfg.search_size
    res = {"before": [], "attributes": {a: [] for a in ATTRIBUTE_SUBSETS}, "residual_kind": []}
    per = {r: {"after": [], "choice": [], "probs": []} for r in routings}
    for k in range(batches):
        b = sampler.batch(k, batch_size, seed=seed)
        c, true_at, px = _target_points(b, S, device)
        res["before"].append(_residual_px(None, c, true_at, px).cpu().numpy())
        res["residual_kind"].append(b["residual_kind"].numpy())
        for s, f in zip(b["seq"].tolist(), b["frame"].tolist()):
            attrs = sampler.seqs[s].attributes
            for a in ATTRIBUTE_SUBSETS:
                res["attributes"][a].append(bool(attrs[a][f]) if a in attrs else False)
        inputs = [b[n].to(device) for n in ("z_rgb", "x_rgb", "z_tir", "x_tir")]
        for r in routings:
            out = model(*inputs, routing=r)
            after = [_residual_px(rec["H"], c, true_at, px) for rec in out["align"]]
            per[r]["after"].append(torch.stack(after, 1).cpu().numpy())
            per[r]["choice"].append(np.stack([np.asarray(rec["names"])[rec["choice"].cpu().numpy()]
                                              for rec in out["align"]], 1))
            per[r]["probs"].append(torch.stack([rec["probs"] for rec in out["align"]], 1).cpu().numpy())
    out = {"before": np.concatenate(res["before"]), "residual_kind": np.concatenate(res["residual_kind"]),
           "attributes": {a: np.asarray(v, bool) for a, v in res["attributes"].items()}}
    for r in routings:
        out[r] = {k: np.concatenate(v) for k, v in per[r].items()}
    return out


def _target_points(batch: dict, search_size: int, device="cpu") -> tuple:
    """(c, true_at, px): the RGB target centre c (B, 2) in crop px, where the true crop homography puts it in the TIR
    crop (B, 2), and the RGB pixels per crop pixel (B,)."""
    c = normalized_to_crop_px(batch["box"][:, :2], search_size).to(device)
    true_at = apply_homography_torch(batch["H_crop"].to(device), c[:, None])[:, 0]
    return c, true_at, batch["px_per_crop_px"].to(device)


def true_shift_cells(batch: dict, search_size: int, grid: int) -> torch.Tensor:
    """(B, 2) the true displacement (dx, dy) of each pair's TIR target from its RGB target, in cells of the search
    feature grid (one cell = search_size / grid crop px): H(c) - c, with H the exact RGB crop -> TIR crop homography
    (``H_crop``) and c the RGB target centre, the centre stage's ground truth (``losses.stage_residual`` with no stage
    before it). Where a by-displacement map (TRE's plan histogram, FME's correlation by displacement; entry
    p_j - p_i, TIR cell minus RGB cell) should peak; NaN for a pair whose homography is unknown."""
    c, true_at, _ = _target_points(batch, search_size)
    return (true_at - c) / (search_size / grid)


def _residual_px(H, c, true_at, px):
    """(B,) || H(c) - H_true(c) || in RGB px: the error at the target of the alignment H (None: no alignment)."""
    at = c if H is None else apply_homography_torch(H, c[:, None])[:, 0]
    return (at - true_at).norm(dim=1) * px


def error_table(errs: dict, routings, roles) -> dict:
    """{subset: {"n", "before": (median, p90), routing: {role: (median, p90)}}} for all pairs and each attribute."""
    subsets = {"all": np.ones_like(errs["before"], bool)}
    subsets.update(errs["attributes"])
    table = {}
    for name, mask in subsets.items():
        if mask.sum() == 0:
            continue
        row = {"n": int(mask.sum()), "before": _stats(errs["before"][mask])}
        for r in routings:
            row[r] = {role: _stats(errs[r]["after"][mask, k]) for k, role in enumerate(roles)}
        table[name] = row
    return table


def expert_usage(errs: dict, routing: str, roles, names) -> dict:
    """{role: {expert: fraction of pairs routed to it}}."""
    ch = errs[routing]["choice"]
    return {role: {n: float((ch[:, k] == n).mean()) for n in names} for k, role in enumerate(roles)}


def _stats(v: np.ndarray) -> list:
    return [float(np.median(v)), float(np.percentile(v, 90))]


@torch.no_grad()
def stage_inputs(model, batch: dict, stage: int = 0, routing: str | None = None, device="cpu") -> tuple:
    """What stage ``stage``'s experts read on ``batch``, and the network's output: (rgb, tir, out), with

        rgb = (z_rgb, x_rgb), tir = (z_tir, x_tir seen through the stages before)   tokens (B, N, C) each

    taken by a forward pre-hook on the stage's DMAE during one forward pass, so it is exactly what the network feeds
    its experts (stage 0: the backbone's tokens after block ``align.layers[0]``). ``expert(rgb, tir)`` then gives
    an expert's full output (response maps, volumes, U-Net levels), which the network's records leave out."""
    model.eval()
    seen = {}
    hook = model.stages[stage].dmae.register_forward_pre_hook(lambda mod, args: seen.setdefault("args", args))
    try:
        out = model(*[batch[n].to(device) for n in ("z_rgb", "x_rgb", "z_tir", "x_tir")], routing=routing)
    finally:
        hook.remove()
    rgb, tir = seen["args"][:2]
    return rgb, tir, out


# ----------------------------------------------------------------------------- router and stage read-outs


def stage_residuals(errs: dict, routing: str) -> np.ndarray:
    """(n, stages): the residual alignment error (RGB px) each stage faced on each pair of
    :func:`alignment_errors`: the pre-alignment's error for the first stage, the error after stage k - 1 for stage k."""
    after = errs[routing]["after"]                                             # (n, stages)
    return np.concatenate([errs["before"][:, None], after[:, :-1]], axis=1)


def router_probability_table(errs: dict, routing: str, roles, names) -> dict:
    """Mean router probability of each expert at each stage, over all pairs and each attribute subset:
    {subset: {"n": pairs, role: {expert: mean probability}}}; subsets without pairs are left out."""
    probs = errs[routing]["probs"]                                             # (n, stages, E)
    subsets = {"all": np.ones(len(probs), bool)}
    subsets.update(errs["attributes"])
    table = {}
    for name, mask in subsets.items():
        if mask.sum() == 0:
            continue
        row = {"n": int(mask.sum())}
        for k, role in enumerate(roles):
            row[role] = {n: float(probs[mask, k, e].mean()) for e, n in enumerate(names)}
        table[name] = row
    return table


def router_probability_by_residual(errs: dict, routing: str, roles, names, edges) -> dict:
    """Mean router probability of each expert, pairs grouped by the residual their stage faced
    (:func:`stage_residuals`, RGB px) into bins [edges[i], edges[i + 1]):
    {role: {"n": (bins,) pairs, expert: (bins,) mean probability, NaN for an empty bin}}."""
    res, probs = stage_residuals(errs, routing), errs[routing]["probs"]
    edges = np.asarray(edges, dtype=np.float64)
    out = {}
    for k, role in enumerate(roles):
        idx = np.digitize(res[:, k], edges) - 1                                # bin of each pair, -1 / len: outside
        n = np.array([(idx == b).sum() for b in range(len(edges) - 1)])
        row = {"n": n}
        for e, name in enumerate(names):
            row[name] = np.array([probs[idx == b, k, e].mean() if n[b] else np.nan for b in range(len(edges) - 1)])
        out[role] = row
    return out


def stage_changes(errs: dict, routing: str, roles, tol: float = 0.5) -> dict:
    """What each stage did to the residual it faced (RGB px): {role: {"median_in", "median_out", "improved"
    (fraction of pairs whose error fell), "verdict"}} with verdict "helps" / "hurts" when the median fell / rose by
    more than ``tol`` px, else "no change"."""
    before, after = stage_residuals(errs, routing), errs[routing]["after"]
    out = {}
    for k, role in enumerate(roles):
        m_in, m_out = float(np.median(before[:, k])), float(np.median(after[:, k]))
        verdict = "helps" if m_out < m_in - tol else "hurts" if m_out > m_in + tol else "no change"
        out[role] = dict(median_in=m_in, median_out=m_out, improved=float((after[:, k] < before[:, k]).mean()),
                         verdict=verdict)
    return out


@torch.no_grad()
def fusion_residuals(model, batch: dict, routing: str | None = None, device="cpu") -> dict:
    """How much each stage's TCMDA changed the search tokens on ``batch``: {role: {"rgb": r, "tir": r}} with
    r = ||x' - x|| / ||x|| over the batch (x the search tokens entering TCMDA, x' = x + its residual). An untrained
    TCMDA gives exactly 0 (its output projection starts at zero). Taken by forward hooks on the stages' TCMDA
    modules during one forward pass; stages without TCMDA are left out."""
    model.eval()
    seen, hooks = {}, []

    def keep(role):
        def hook(mod, args, out):          # returns None: the output is left as it is
            seen[role] = (args, out)
        return hook

    for stage in model.stages:
        if stage.tcmda is not None:
            hooks.append(stage.tcmda.register_forward_hook(keep(stage.role)))
    try:
        model(*[batch[n].to(device) for n in ("z_rgb", "x_rgb", "z_tir", "x_tir")], routing=routing)
    finally:
        for h in hooks:
            h.remove()
    return {role: {m: float((out[i] - args[i]).norm() / args[i].norm()) for i, m in enumerate(("rgb", "tir"))}
            for role, (args, out) in seen.items()}


@torch.no_grad()
def one_pair(batch: dict, i: int, mode: str, network=None, tracker=None) -> dict:
    """One held-out pair under one alignment ``mode``: the error at the target (RGB px), the head's score map and
    the TIR search crop as the head's TIR tokens see it (RGB crop frame).

    ``mode``: ``none`` (the stage-1 ``tracker`` on the crops as the pre-alignment cut them), ``router`` / ``soft`` /
    ``tre`` / ``fme`` / ``dpe`` (the stage-2 ``network`` with that routing; its last stage's H_k), or ``oracle``
    (the stage-1 ``tracker`` on a TIR crop warped by the true crop homography: error 0 by construction).
    Returns {"error_px", "score_map": (G, G), "tir_seen": (3, S, S), "center": (2,) crop px, "experts"}."""
    S = batch["x_rgb"].shape[-1]
    z_rgb, x_rgb, z_tir, x_tir = (batch[n][i:i + 1] for n in ("z_rgb", "x_rgb", "z_tir", "x_tir"))
    one = {k: batch[k][i:i + 1] for k in ("box", "H_crop", "px_per_crop_px")}
    c, true_at, px = _target_points(one, S)                                     # (1, 2), (1, 2), (1,)
    H_true = one["H_crop"]
    experts = {}
    if mode in ("none", "oracle"):
        if mode == "oracle":
            x_tir = warp_features(x_tir, invert_homography_torch(H_true))        # TIR(H p): the crops agree
        out = tracker.eval()(z_rgb, x_rgb, z_tir, x_tir)
        error = 0.0 if mode == "oracle" else float(_residual_px(None, c, true_at, px)[0])
        seen = x_tir
    else:
        out = network.eval()(z_rgb, x_rgb, z_tir, x_tir, routing=mode)
        H = out["align"][-1]["H"]
        error = float(_residual_px(H, c, true_at, px)[0])
        seen = warp_features(x_tir, invert_homography_torch(H))                  # TIR(H_k p)
        experts = {rec["role"]: rec["names"][int(rec["choice"][0])] for rec in out["align"]}
    return dict(error_px=error, score_map=out["score_map"][0, 0].numpy(), tir_seen=seen[0], center=c[0].numpy(),
                experts=experts)
