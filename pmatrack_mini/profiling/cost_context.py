"""Costs in context (notebook 04 on, ``profile --preset paper``, ``benchmarks/cost_table.py``): what the backbone,
the head, each expert, the router and TCMDA cost at the cpu-mini and paper presets, as a share of the backbone,
beside the paper's FLOPs column and the official code's expert constants, and what that means for a cost penalty.

The paper's Baseline, 56.4 G, matches our paper-preset tracker counted without the attention matmuls and with a head
reading the RGB map only (:func:`paper_style_baseline`, 56.45 G): its FLOPs column reads as multiply-adds of linear
and conv layers, what module-hook counters see.
"""
from __future__ import annotations

import time

import torch

from ..profile import _ExpertCall, component_macs, count_macs, expert_cost_table, sizes_key



def cost_context(preset: str, seed: int = 0) -> dict:
    """MACs per frame (fvcore, batch 1) of untrained networks of ``preset``, component by component.

    Returns {"preset", "model": {embed_dim, depth, tokens, grid}, "backbone", "head", "attention" (the backbone's
    Q K^T and A V matmuls, part of "backbone"), "head_rgb_only" (the same head reading the RGB search map alone, as
    the official head does), "stage1" (the tracker: backbone + head), "experts": {e: MACs per call}, "projection":
    {e: the part of it that reads the C-channel tokens (:func:`expert_projection_macs`)},
    "per_stage": {"router", "tcmda", "warp"} (the centre stage's), "stages" (how many), "stage2_soft" (the stage-2
    network with every expert running), "seconds"}. Expert costs are per call at the centre stage, the same at every
    stage (``expert_cost_table``). The paper preset is counted on the CPU (about 5-10 s on 2 cores)."""
    from ..config import EXPERT_NAMES, get_config
    from ..models import build_model
    from ..models.head import CenterHead

    t0 = time.perf_counter()
    cfg = get_config(preset, stage=2)
    m = cfg.model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tracker = build_model(get_config(preset)).eval()
        net = build_model(cfg).eval()
        rgb_head = CenterHead(m.embed_dim, m.head_channels, m.feat_size).eval()
        z = torch.rand(1, 3, m.template_size, m.template_size)
        x = torch.rand(1, 3, m.search_size, m.search_size)
        feat = torch.rand(1, m.embed_dim, m.feat_size, m.feat_size)
    s1 = count_macs(tracker, (z, x, z, x))
    soft = component_macs(net, (z, x, z, x), ("soft",))["soft"]
    comp, role = soft["components"], net.roles[0]
    experts = expert_cost_table(EXPERT_NAMES, m.embed_dim, m.feat_size, m.search_size,   # as the routers count
                                sizes=sizes_key({n: cfg.align.expert_sizes(n) for n in EXPERT_NAMES}))
    projection = {n: expert_projection_macs(net.stages[0].dmae.experts[n]) for n in EXPERT_NAMES}
    n_tokens = 2 * ((m.template_size // m.patch_size) ** 2 + m.feat_size ** 2)
    return dict(preset=preset, model=dict(embed_dim=m.embed_dim, depth=m.depth, tokens=n_tokens, grid=m.feat_size),
                backbone=s1["by_module"]["backbone"], head=s1["by_module"]["head"],
                attention=s1["by_operator"].get("scaled_dot_product_attention", 0),
                head_rgb_only=count_macs(rgb_head, (feat,), output_key="boxes")["total"], stage1=s1["total"],
                experts={n: int(experts[n]) for n in EXPERT_NAMES}, projection=projection,
                per_stage={k: comp[f"{role}.{k}"] for k in ("router", "tcmda", "warp")},
                stages=len(net.roles), stage2_soft=soft["total"], seconds=time.perf_counter() - t0)


def expert_projection_macs(expert) -> int:
    """MACs per call (batch 1) of the expert's modules that read the backbone's C-channel tokens
    (``expert.token_projections``: TRE's W^M, FME's and DPE's 1 x 1 reductions): the part of its cost that grows
    with the backbone's width."""
    nz = max(1, (expert.grid // 2) ** 2)
    param = next(expert.parameters())
    with torch.random.fork_rng(devices=[]):
        z = torch.randn(1, nz, expert.dim, device=param.device)
        x = torch.randn(1, expert.grid * expert.grid, expert.dim, device=param.device)
    by = count_macs(_ExpertCall(expert).train(expert.training), (z, x, z, x), output_key="params")["by_module"]
    return int(sum(by.get(f"expert.{name}", 0) for name in expert.token_projections))


def cost_context_table(presets=("cpu-mini", "paper"), seed: int = 0) -> dict:
    """:func:`cost_context` of each preset, with the paper's FLOPs column and the official expert constants beside
    them: {"presets": {preset: ...}, "paper_gflops": {...}, "official_expert_gflops": {...}}. Shown by
    :func:`format_cost_table`; ``benchmarks/cost_table.py`` stores it in ``results/cost_table.json``."""
    from ..paper import OFFICIAL_EXPERT_GFLOPS, PAPER_GFLOPS

    out = dict(presets={p: cost_context(p, seed) for p in presets}, paper_gflops=dict(PAPER_GFLOPS),
               official_expert_gflops=dict(OFFICIAL_EXPERT_GFLOPS))
    if "paper" in presets:
        out["paper_rows"] = paper_rows("paper", seed)
    return out


def paper_rows(preset: str = "paper", seed: int = 0, **overrides) -> dict:
    """The paper's ablation rows counted its way, from our own modules: GMACs of linear and conv layers per frame
    (no attention or correlation matmuls, the head reading the RGB map only), batch 1, untrained networks.

    "Baseline": the stage-1 tracker; "+TRE" / "+FME" / "+DPE": a **single-expert** network (that expert at each of
    the three stages, no router) with its TCMDA modules, as the paper's rows are (their FLOPs are the Baseline plus
    three stages of TCMDA and that one expert). Returns {"rows": {row: GMACs}, "paper": {row: the paper's GFLOPs},
    "within": {row: |ours / paper - 1|}}. About 20 s on 2 cores at the paper preset. ``overrides``: config sections
    for every network (``model=...``, ``align=...``; tests use a toy width)."""
    from ..config import EXPERT_NAMES, get_config
    from ..models import build_model
    from ..models.head import CenterHead
    from ..paper import PAPER_GFLOPS

    m = get_config(preset, **overrides).model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        z = torch.rand(1, 3, m.template_size, m.template_size)
        x = torch.rand(1, 3, m.search_size, m.search_size)
        feat = torch.rand(1, m.embed_dim, m.feat_size, m.feat_size)
        rgb_head = count_macs(CenterHead(m.embed_dim, m.head_channels, m.feat_size).eval(), (feat,))["linear_conv"]
        align = overrides.get("align", {})
        nets = {"Baseline": build_model(get_config(preset, **overrides))}
        nets.update({f"+{e.upper()}": build_model(get_config(preset, stage=2, **dict(
            overrides, align=dict(align, experts=(e,), routing=e)))) for e in EXPERT_NAMES})
    rows = {}
    for row, net in nets.items():
        c = count_macs(net.eval(), (z, x, z, x))
        rows[row] = (c["linear_conv"] - c["linear_conv_by_module"]["head"] + rgb_head) / 1e9
    paper = {row: PAPER_GFLOPS[row] for row in rows}
    return dict(rows=rows, paper=paper, within={row: abs(rows[row] / paper[row] - 1) for row in rows})


def paper_style_baseline(ctx: dict) -> float:
    """The tracker's MACs counted without the attention matmuls and with a head reading the RGB map only: what a
    counter that sees only linear and conv layers (module hooks; no ``Q K^T``) would report for a baseline whose head
    reads the RGB stream, as the official one does."""
    return float(ctx["backbone"] - ctx["attention"] + ctx["head_rgb_only"])


def frame_rows(ctx: dict) -> dict:
    """MACs per frame (every operation fvcore counts) of the paper's ablation rows, from one preset's component
    counts: "Baseline" (the tracker), "+TRE" / "+FME" / "+DPE" (single-expert networks: that expert at every stage,
    no router, as the paper's rows) and "Full" (the router and hard routing: one expert per stage, from the
    cheapest to the dearest at every stage; a (low, high) pair)."""
    k, e, st = ctx["stages"], ctx["experts"], ctx["per_stage"]
    base = ctx["stage1"] + k * (st["tcmda"] + st["warp"])
    rows = {"Baseline": float(ctx["stage1"])}
    rows.update({f"+{n.upper()}": float(base + k * e[n]) for n in ("tre", "fme", "dpe")})
    rows["Full"] = tuple(float(base + k * (st["router"] + f(e.values()))) for f in (min, max))
    return rows


def _macs(v: float) -> str:
    return f"{v / 1e9:.2f} G" if v >= 1e9 else f"{v / 1e6:.2f} M"


def format_cost_table(table: dict) -> str:
    """Two markdown tables: (1) backbone, head, each expert, router and TCMDA in MACs and as % of the backbone, per
    preset, beside the official expert constants (and their share of the paper's Baseline); (2) with the paper
    preset, the paper's FLOPs column beside the same rows counted its way here (:func:`paper_rows`)."""
    presets = table["presets"]
    off, paper = table["official_expert_gflops"], table["paper_gflops"]
    base_g = paper["Baseline"]
    head = "| component | " + " | ".join(f"{p}: MACs | % of backbone" for p in presets) + \
           " | official code: GFLOPs | % of the paper's Baseline |"
    lines = [head, "|---|" + "---:|---:|" * len(presets) + "---:|---:|"]
    comps = [("backbone", lambda c: c["backbone"], None), ("head", lambda c: c["head"], None)]
    comps += [(f"{n.upper()} (per call)", lambda c, n=n: c["experts"][n], n) for n in ("tre", "fme", "dpe")]
    comps += [("router (per stage)", lambda c: c["per_stage"]["router"], None),
              ("TCMDA (per stage)", lambda c: c["per_stage"]["tcmda"], None)]
    for name, get, n in comps:
        cells = [f"{_macs(get(c))} | {100 * get(c) / c['backbone']:.3g}" for c in presets.values()]
        extra = f"{off[n]:.3f} | {100 * off[n] / base_g:.1f}" if n else " | "
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {extra} |")
    out = "\n".join(lines)
    if "paper_rows" in table:
        ours = table["paper_rows"]["rows"]
        lines = ["| paper's row | paper: FLOPs (G) | here, paper preset: linear + conv GMACs | difference |",
                 "|---|---:|---:|---:|"]
        for row, g in paper.items():
            if row in ours:
                lines.append(f"| {row} | {g} | {ours[row]:.2f} | {100 * (ours[row] / g - 1):+.1f} % |")
            else:
                lines.append(f"| {row} | {g} | {ours['+TRE']:.2f} .. {ours['+DPE']:.2f} by the routing mix | |")
        lines.append("")
        lines.append("Here: each +X row is a single-expert network (X at each of the three stages, with their TCMDA "
                     "modules), counted as the paper counts: multiply-adds of linear and conv layers, no attention or "
                     "correlation matmuls, the head reading the RGB map only (`cost_context.paper_rows`).")
        out += "\n\n" + "\n".join(lines)
    return out


def cost_penalty_note(table: dict) -> str:
    """Sentences, generated from the numbers, on what the experts' share of a frame means for a cost penalty at each
    size, and how the paper's Baseline compares with our count."""
    presets, off, paper = table["presets"], table["official_expert_gflops"], table["paper_gflops"]
    out = []
    for p, c in presets.items():
        e, C = c["experts"], c["model"]["embed_dim"]
        lo, hi = min(e.values()), max(e.values())
        st = c["per_stage"]
        frame = c["stage1"] + c["stages"] * (st["tcmda"] + st["warp"] + st["router"] + lo)
        saving = c["stages"] * (hi - lo) / frame
        pct = [100 * v / c["backbone"] for v in e.values()]
        where = "the paper preset" if p == "paper" else p
        s = (f"At {where} (C = {C}) one expert call costs {min(pct):.2g}-{max(pct):.2g} % of the backbone and the dearest "
             f"{hi / lo:.2f} x the cheapest; routing every stage to the cheapest rather than the dearest expert saves "
             f"at most {100 * saving:.2g} % of a frame.")
        if hi / lo < 1.1:
            s += (" c_e is close to 1 for all three experts and a cost penalty can buy no measurable saving at this "
                  "size.")
        else:
            from ..config import get_config
            from ..training.losses import break_even_px

            cfg = get_config(p, stage=2)
            S, lam = cfg.model.search_size, cfg.align.lambda_cost
            costs = {n: v / hi for n, v in e.items()}
            be = {(a, b): break_even_px(costs[a], costs[b], lam, S) for a, b in (("tre", "fme"), ("fme", "dpe"),
                                                                                ("tre", "dpe"))}
            s += (f" Under CPESL (lambda_cost {lam:g}, errors as fractions of the {S}-px search crop, c_e = "
                  + " / ".join(f"{v:.2f}" for v in costs.values())
                  + ") a dearer expert is worth its cost only when it saves, on both axes, about "
                  + ", ".join(f"{px:.1f} px ({a.upper()} -> {b.upper()})" for (a, b), px in be.items())
                  + " of error (``losses.break_even_px``): easy frames go to the cheap expert.")
        out.append(s)
    base = paper["Baseline"]
    pct = [100 * v / base for v in off.values()]
    out.append(f"The official constants ({' / '.join(f'{v:g}' for v in off.values())} GFLOPs, 2 x the experts' "
               f"multiply-adds) make one expert call {min(pct) / 2:.1f}-{max(pct) / 2:.1f} % of the paper's {base} G "
               f"Baseline (counted in multiply-adds, as the Baseline is), and its rows reach "
               f"+{100 * (max(paper.values()) - base) / base:.0f} % over it: with experts that large, routing decides a "
               f"real share of the frame, the regime in which a cost penalty is worth some accuracy.")
    if "paper" in presets:
        c = presets["paper"]
        ps = paper_style_baseline(c)
        out.append(f"Our paper-preset tracker counts {c['stage1'] / 1e9:.1f} GMACs; without the attention matmuls "
                   f"({c['attention'] / 1e9:.2f} G) and with a head that reads the RGB map only, {ps / 1e9:.2f} G, "
                   f"{100 * abs(ps / 1e9 - base) / base:.1f} % from the paper's {base} G: the paper's column looks like "
                   f"multiply-adds of linear and conv layers (what module-hook counters see), not 2 x MACs.")
    return "\n\n".join(out)


def read_cost_table(path) -> dict:
    """The table a ``benchmarks/cost_table.py`` run stored (the JSON holds it under "table", with the command, the
    machine and the time)."""
    from ..errors import PMATrackError
    from ..utils import read_json

    obj = read_json(path)
    if "table" not in obj or "presets" not in obj["table"]:
        raise PMATrackError(f"{path}: not a cost table (no 'table' with 'presets'); run benchmarks/cost_table.py")
    return obj
