"""``pmatrack-mini profile``: where a tracking forward's compute goes, per component and routing mode.

    pmatrack-mini profile --preset cpu-mini|paper [--stage 1|2] [--routing ...] [--json OUT]
    pmatrack-mini profile --checkpoint RUN/final.pt [--routing ...] [--json OUT]

MACs are counted by fvcore at batch 1 on a seeded random pair (``profile.component_macs``); FLOPs = 2 MACs. A
preset needs no weights (the paper preset is counted on the CPU). Under hard routing the experts counted are the
ones the router picks for that pair; with untrained weights that choice means nothing, so the table also gives the
range hard routing can span: base + the cheapest to base + the dearest expert at every stage.

The paper's FLOPs column (LasHeR-Unaligned ablation, ViT-B backbone) is printed beside the paper preset: Baseline
56.4 G, +TRE 60.6, +FME 71.4, +DPE 81.4, Full 72.6, with the same rows counted here its way
(``cost_context.paper_rows``: multiply-adds of linear and conv layers, without the attention and correlation
matmuls, the head on the RGB map, each +X row a single-expert network); ``--json`` stores them under
``paper_rows``.
"""
from __future__ import annotations

import torch

from ..config import ROUTING_MODES, get_config
from ..errors import PMATrackError
from ..paper import PAPER_GFLOPS  # noqa: F401  (the paper's FLOPs column, also importable from here)
from ..profile import component_macs
from ..utils import write_json_atomic
from .cost_context import cost_context_table, cost_penalty_note, format_cost_table


def profile_model(model, routings) -> dict:
    m = model.cfg
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        z = torch.rand(1, 3, m.template_size, m.template_size)
        x = torch.rand(1, 3, m.search_size, m.search_size)
        tables = component_macs(model.eval(), (z, x, z.flip(-1), x.flip(-1)), routings)
    out = dict(routings=tables)
    if hasattr(model, "stages"):
        soft = tables.get("soft") or next(iter(tables.values()))
        comp = soft["components"]
        experts = {role: {n: comp[f"{role}.{n}"] for n in st.dmae.names} for role, st in zip(model.roles, model.stages)}
        base = soft["total"] - sum(sum(e.values()) for e in experts.values())
        out.update(base=base, experts=experts,
                   hard_range=[base + sum(min(e.values()) for e in experts.values()),
                               base + sum(max(e.values()) for e in experts.values())])
    return out


def format_report(name: str, prof: dict) -> str:
    lines = [f"MACs per frame, batch 1 ({name}); FLOPs = 2 x MACs", ""]
    tables = prof["routings"]
    cols = list(tables)
    comps = list(next(iter(tables.values()))["components"])
    lines.append(f"{'component':<18}" + "".join(f"{c:>12}" for c in cols))
    for comp in comps:
        lines.append(f"{comp:<18}" + "".join(f"{tables[c]['components'].get(comp, 0) / 1e6:>11.2f}M" for c in cols))
    lines.append(f"{'total':<18}" + "".join(f"{tables[c]['total'] / 1e9:>11.3f}G" for c in cols))
    if "hard_range" in prof:
        lo, hi = prof["hard_range"]
        lines += ["", f"hard routing spans {lo / 1e9:.3f} .. {hi / 1e9:.3f} GMACs per frame (cheapest .. dearest expert at "
                      f"every stage); everything but the experts: {prof['base'] / 1e9:.3f} GMACs"]
    return "\n".join(lines)


def add_cli(sub) -> None:
    p = sub.add_parser("profile", help="MACs per component and routing mode (fvcore, batch 1)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", choices=["cpu-mini", "paper"], help="count an untrained network of this preset")
    src.add_argument("--checkpoint", help="count the network a checkpoint holds")
    p.add_argument("--stage", type=int, choices=[1, 2], default=2, help="with --preset: 1 tracker, 2 PMATrack")
    p.add_argument("--routing", nargs="+", choices=list(ROUTING_MODES), default=None,
                   help="stage-2 networks: the routing modes to count (default: all)")
    p.add_argument("--json", default=None)
    p.set_defaults(func=_cmd)


def _cmd(args) -> None:
    from ..models import build_model, model_from_checkpoint

    if args.checkpoint:
        model, cfg, _ = model_from_checkpoint(args.checkpoint)
        name = f"{args.checkpoint}, {cfg.preset}, stage {cfg.train.stage}"
    else:
        torch.manual_seed(0)
        cfg = get_config(args.preset, stage=args.stage)
        model = build_model(cfg)
        name = f"untrained {args.preset}, stage {args.stage}"
    if cfg.train.stage == 1 and args.routing:
        raise PMATrackError(f"a stage-1 tracker has no alignment stages to route (--routing {' '.join(args.routing)})")
    prof = profile_model(model, tuple(args.routing or ROUTING_MODES))
    print(format_report(name, prof))
    if cfg.preset == "paper":                  # the paper's FLOPs column beside the same rows counted here, and why
        prof["paper_comparison"] = cost_context_table(("paper",))
        print("\n" + format_cost_table(prof["paper_comparison"]) + "\n\n" + cost_penalty_note(prof["paper_comparison"]))
        prof["paper_rows"] = prof["paper_comparison"].pop("paper_rows")   # GMACs counted the paper's way
    if args.json:
        write_json_atomic(args.json, dict(name=name, config=cfg.to_dict(), **prof))
        print(f"wrote {args.json}")
