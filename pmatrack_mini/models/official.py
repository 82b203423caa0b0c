"""The official PMATrack checkpoint in this package's network: which tensor goes where, what does not carry over.

    pmatrack-mini convert --official FILE --out CK.pt [--preset paper] [--stage 2] [--set KEY=VALUE ...]
                          [--report REPORT.json]

The official trainer (pytracking's) saves ``{"net": state_dict, "epoch", "settings", "stats", "optimizer", ...}``
and its tracker loads ``["net"]``. ``settings`` and ``stats`` are pickled objects that ``torch.load`` with
``weights_only=True`` refuses: :func:`read_official` reads such a file with an inert stand-in for each of their
classes (built empty, nothing of the file runs) and keeps the tensors. A bare state dict, ``{"state_dict": ...}``
or a ``.safetensors`` file works too; a ``module.`` prefix is dropped. The official names and shapes (from its model
code: ViT-B/16, search 256 px, template 128 px, three stages) are tabulated in the tests, which convert them.

    official                                                       ours
    backbone.patch_embed / pos_embed_z / pos_embed_x / blocks / norm      backbone.* (same names)
    box_head.conv{1-4}_{ctr,offset,size}.{0,1}, conv5_*            head.{score,offset,size}.{0-3}.{0,1}, .4
    backbone.neuro_net.k.shift_net / scale_net / warp_net          stages.k.dmae.experts.tre / fme / dpe
    backbone.interaction_layers_v2i.k / _i2v.k (RGB / TIR queries)  stages.k.tcmda (per query modality)

Exact re-expressions (same function of the same input): the head's conv biases go into the next BatchNorm's
running mean (BN(Wx + b) with mean mu is BN(Wx) with mean mu - b); DPE's blocks split their first 1 x 1 conv's output
into odd / even channels there, into halves here (the channels are reordered), its BatchNorm eps 1e-3 becomes ours
by adding the difference to running_var (exact at inference), its decoder is listed deepest first there; TCMDA's
offsets are normalised grid units times ``delta_scale`` there, cells here (W delta_scale (G - 1) / 2).

Not carried over (listed by the report): the router (official: MLP 512-128-64-3 over channel 0 of every search
token; ours: a projection per token, LayerNorm, MLP; nothing corresponds); the head's first convs (official: the
RGB search map, C channels; ours: RGB and TIR, 2C); FME's regressor, and TRE's unless ``align.tre_readout=pooled``
(official: a global mean of the read-out's features; ours per displacement); ``cls_token`` and ``pos_embed`` (left
from the ImageNet ViT, unused), FME's ``alpha1`` / ``alpha2`` (unused), ``branch_costs`` (ours are measured). Ours
only, left at their initialisation: the modality embedding, DPE's position embedding, TCMDA's LayerNorms. A tensor
of another shape is reported and not loaded, nor is the rest of its module (no bias without its weight).

Loading them does not make the official tracker: its backbone runs RGB and TIR as two sequences through the shared
blocks, ours one joint sequence; its stages follow blocks 3, 6, 9; its experts' translations are tanh x S about the
crop's corner, ours tanh x S / 2 about its centre; each expert departs further as its module says. The converted
network is a starting point (``--stage 1`` writes a tracker for ``train --stage 2 --init``), not a reproduction.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from ..config import PRESETS, get_config, parse_overrides
from ..errors import PMATrackError
from ..utils import atomic_path
from .checkpoint import build_model, read_weights, save_checkpoint

OFFICIAL_LAYERS = (3, 6, 9)      # the official stages follow these blocks (0-based)
DPE_BN_EPS = 1e-3                # the official DPE's BatchNorm eps
EXPERTS = {"shift_net": "tre", "scale_net": "fme", "warp_net": "dpe"}
BRANCHES = {"ctr": "score", "offset": "offset", "size": "size"}
_TRE = ((r"(rgb|tir)_proj\.([02])\.(\w+)", r"proj.\1.\2.\3"), (r"norm1\.(\w+)", r"norm.\1"),
        (r"refiner\.([02])\.(\w+)", r"reader.\1.\2"), (r"refiner\.6\.(\w+)", r"regress.\1"))
_FME = ((r"(rgb|tir)_proj\.weight", r"proj.\1.weight"),
        (r"band_gate_(rgb|tir)\.mlp\.([02])\.(\w+)", r"gate.\1.\2.\3"),
        (r"norm1\.(\w+)", r"norm.\1"), (r"conv_head\.blocks\.(\d+)\.([02])\.(\w+)", r"pyramid.levels.\1.\2.\3"),
        (r"conv_head\.fuse\.0\.(\w+)", r"pyramid.fuse.0.\1"), (r"conv_head\.head\.(\w+)", r"regress.\1"))
_DPE = ((r"global_blocks\.0\.(norm1|norm2|attn\.qkv|attn\.proj)\.(\w+)", r"block.\1.\2"),
        (r"global_blocks\.0\.mlp\.0\.(\w+)", r"block.mlp.fc1.\1"),
        (r"global_blocks\.0\.mlp\.3\.(\w+)", r"block.mlp.fc2.\1"),
        (r"regressor\.2\.(\w+)", r"regress.0.\1"), (r"regressor\.4\.(\w+)", r"regress.2.\1"))
_UNET = re.compile(r"backbone\.(enc_blocks\.\d+|dec_blocks\.\d+|bottleneck|head)\.(?:(pw1|pw2|dw_chain)\.(?:(\d+)\.)?)?"
                   r"(conv|bn)\.(\w+)")
NOTES = {     # per group kind, in the report
    "backbone": "official RGB and TIR run as two sequences through the blocks, ours as one; modality_embed: ours only",
    "head": "conv biases folded into the BN running means (exact); first convs: C channels (RGB) there, 2C here",
    "router": "no counterpart (official: MLP 512-128-64-3 over channel 0 of the search tokens): starts untrained",
    "tre": "regress fits only with align.tre_readout=pooled (the official global mean)",
    "fme": "regress: official global mean, ours per displacement; alpha1 / alpha2 unused by the official forward",
    "dpe": "1x1-conv channels reordered, BN eps 1e-3 folded into running_var, decoder reversed; pos: ours only",
    "tcmda": "offsets x delta_scale x (G - 1) / 2 (grid units -> cells), v_proj 1x1 conv -> Linear; norm: ours only",
}


class _Inert:
    """Stands in for a class a trainer checkpoint pickles (settings, statistics): built empty, never run."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def read_official(path) -> dict:
    """The object an official checkpoint file holds (tensors and plain containers; other objects inert)."""
    path = Path(path)
    if not path.is_file():
        raise PMATrackError(f"{path}: official checkpoint not found")
    if path.suffix == ".safetensors":
        return read_weights(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:              # pickled objects besides tensors (a trainer's checkpoint), or not a torch file
        pass
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        stand_ins = [(type(n.rpartition(".")[2], (_Inert,), {"__module__": n.rpartition(".")[0]}), n) for n in names]
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PMATrackError(f"{path}: not a readable checkpoint (truncated, or not a torch / safetensors file; "
                            f"{type(exc).__name__})") from None


def official_state_dict(obj, path) -> dict:
    """The state dict inside what :func:`read_official` returned (``net``, ``state_dict``, ``model`` or bare)."""
    if not isinstance(obj, dict):
        raise PMATrackError(f"{path}: not a state dict (a mapping of names to tensors), got {type(obj).__name__}")
    for key in ("net", "state_dict", "model"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if obj and all(isinstance(k, str) and k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    bad = next((k for k, v in obj.items() if not isinstance(v, torch.Tensor)), None)
    if not obj or bad is not None:
        raise PMATrackError(f"{path}: not a state dict (a mapping of names to tensors)"
                            + (f": {bad!r} is a {type(obj[bad]).__name__}" if bad is not None else ": empty"))
    return obj


def _rename(key: str, levels: int):
    """Official name -> (our name, tags) or (None, why) when nothing of ours corresponds."""
    m = re.fullmatch(r"backbone\.(patch_embed\.proj\.\w+|pos_embed_[zx]|norm\.\w+|blocks\.\d+\..+)", key)
    if m:
        return "backbone." + m[1], ()
    m = re.fullmatch(r"box_head\.conv([1-4])_(ctr|offset|size)\.([01])\.(\w+)", key)
    if m:
        if (m[3], m[4]) == ("0", "bias"):
            return None, "folded"
        return f"head.{BRANCHES[m[2]]}.{int(m[1]) - 1}.{m[3]}.{m[4]}", ("fold",) if m[4] == "running_mean" else ()
    m = re.fullmatch(r"box_head\.conv5_(ctr|offset|size)\.(\w+)", key)
    if m:
        return f"head.{BRANCHES[m[1]]}.4.{m[2]}", ()
    m = re.fullmatch(r"backbone\.interaction_layers_(v2i|i2v)\.(\d+)\.(offset_mlp|attn_mlp|v_proj|out_proj|delta_scale)"
                     r"(?:\.(\w+))?", key)
    if m:
        q, src = ("rgb", "tir") if m[1] == "v2i" else ("tir", "rgb")
        if m[3] == "delta_scale" or m[4] is None:
            return None, "folded"
        mod = {"offset_mlp": f"offsets.{q}", "attn_mlp": f"attn.{q}", "v_proj": f"value.{src}", "out_proj": f"out.{q}"}
        return f"stages.{m[2]}.tcmda.{mod[m[3]]}.{m[4]}", {"offset_mlp": ("offsets",), "v_proj": ("1x1",)}.get(m[3], ())
    m = re.fullmatch(r"backbone\.neuro_net\.(\d+)\.(shift_net|scale_net|warp_net)\.(.+)", key)
    if m:
        expert, rest = EXPERTS[m[2]], m[3]
        for pattern, rep in {"tre": _TRE, "fme": _FME, "dpe": _DPE}[expert]:
            hit = re.fullmatch(pattern, rest)
            if hit:
                return f"stages.{m[1]}.dmae.experts.{expert}.{hit.expand(rep)}", ()
        u = _UNET.fullmatch(rest) if expert == "dpe" else None
        if u:
            block, piece, t, layer, field = u.groups()
            if block.startswith("dec_blocks"):
                block = f"dec.{levels - 1 - int(block.split('.')[1])}"
            where = {"pw1": "reduce.", "pw2": "fuse.", "dw_chain": f"cascade.{t}.", None: ""}[piece]
            tags = (("perm",) if piece == "pw1" else ()) + (("eps",) if field == "running_var" else ())
            return f"stages.{m[1]}.dmae.experts.dpe.unet.{block.replace('enc_blocks', 'enc')}.{where}" \
                   f"{0 if layer == 'conv' else 1}.{field}", tags
    return None, "no counterpart"


def _group(name: str) -> str:
    m = re.match(r"stages\.(\d+)\.(?:dmae\.experts\.(\w+)|dmae\.(router)|(tcmda))\.", name)
    return f"stage{m[1]}.{m[2] or m[3] or m[4]}" if m else name.split(".")[0]


def _their_group(key: str) -> str:
    m = re.match(r"backbone\.neuro_net\.(\d+)\.(\w+)", key)
    if m:
        return f"stage{m[1]}.{EXPERTS.get(m[2], 'router')}"
    m = re.match(r"backbone\.interaction_layers_(?:v2i|i2v)\.(\d+)\.", key)
    return f"stage{m[1]}.tcmda" if m else {"box_head": "head", "backbone": "backbone"}.get(key.split(".")[0], "other")


def _transform(v, key, ours, tags, sd, model):
    """Apply the exact re-expressions a tag names (see the module docstring)."""
    if "1x1" in tags:
        v = v.flatten(1) if v.dim() == 4 else v
    if "perm" in tags and v.dim() > 0:
        v = v[torch.cat([torch.arange(0, v.shape[0], 2), torch.arange(1, v.shape[0], 2)])]
    if "eps" in tags:
        v = v + (DPE_BN_EPS - model.get_submodule(ours.rsplit(".", 1)[0]).eps)
    if "fold" in tags and key.replace(".1.running_mean", ".0.bias") in sd:
        v = v - sd[key.replace(".1.running_mean", ".0.bias")]
    if "offsets" in tags:
        scale = float(sd.get(re.sub(r"offset_mlp\.\w+$", "delta_scale", key), 0.5))
        v = v * (scale * (model.backbone.grid_x - 1) / 2)
    return v


def convert_official(state: dict, model) -> tuple[dict, dict]:
    """Official state dict -> (our state dict of the tensors that fit ``model``, report).

    The report: ``groups`` {group: {loaded, missing (ours, not given), unexpected (theirs, not used), mismatched
    [{official, ours, official_shape, our_shape}], notes}}, ``folded`` (theirs, absorbed by a re-expression) and
    ``totals``."""
    net = getattr(model, "module", model)
    own = net.state_dict()
    levels = 1 + max([int(m[1]) for k in own for m in [re.search(r"\.unet\.enc\.(\d+)\.", k)] if m] or [3])
    groups = {}
    for name in own:
        groups.setdefault(_group(name), dict(loaded=[], missing=[], unexpected=[], mismatched=[], notes=[]))
    out, folded, bad = {}, [], {}
    for key, value in state.items():
        ours, how = _rename(key, levels)
        partner = key.replace(".0.bias", ".1.running_mean") if key.startswith("box_head") else \
            re.sub(r"delta_scale$", "offset_mlp.weight", key)
        if ours is None and how == "folded" and partner in state and _rename(partner, levels)[0] in own:
            folded.append(key)
        elif ours is None or ours not in own:
            groups.setdefault(_their_group(key), dict(loaded=[], missing=[], unexpected=[], mismatched=[], notes=[]))
            groups[_their_group(key)]["unexpected"].append(key)
        else:
            v = _transform(value, key, ours, how, state, net)
            if tuple(v.shape) == tuple(own[ours].shape):
                out[ours] = (key, v)
            else:
                bad[ours] = dict(official=key, ours=ours, official_shape=list(value.shape),
                                 our_shape=list(own[ours].shape))
    for ours in list(out):          # a module is loaded whole or not at all (no bias without its weight)
        if any(b.rsplit(".", 1)[0] == ours.rsplit(".", 1)[0] for b in bad):
            key, v = out.pop(ours)
            bad[ours] = dict(official=key, ours=ours, official_shape=list(v.shape), our_shape=list(v.shape),
                             why="another tensor of its module does not fit")
    for name in own:
        g = groups[_group(name)]
        g["loaded" if name in out else "mismatched" if name in bad else "missing"].append(bad.get(name, name))
    for name, g in groups.items():
        kind = name.split(".")[-1]
        if kind in NOTES and (g["loaded"] or g["mismatched"] or g["missing"]):     # a module of ours
            g["notes"].append(NOTES[kind])
    totals = {k: sum(len(g[k]) for g in groups.values()) for k in ("loaded", "missing", "unexpected", "mismatched")}
    return {k: v for k, (_, v) in out.items()}, dict(groups=groups, folded=folded, totals=totals)


def check_official(state: dict, path, cfg, fits_nothing: bool = False) -> None:
    """Refuse (PMATrackError) a state dict with no official name, or of another width than ``cfg`` (naming the
    preset it fits), or, with ``fits_nothing``, any that fits nothing here. Needs no network: fails fast."""
    if not any(k.startswith(("backbone.", "box_head.")) for k in state):
        raise PMATrackError(f"{path}: no official PMATrack name recognised (expected names such as "
                            f"backbone.blocks.0.attn.qkv.weight, backbone.neuro_net.0.shift_net.rgb_proj.0.weight, "
                            f"box_head.conv1_ctr.0.weight)")
    ref = next((state[k] for k in ("backbone.patch_embed.proj.weight", "backbone.norm.weight") if k in state), None)
    width = None if ref is None else ref.shape[0]
    if fits_nothing or width not in (None, cfg.model.embed_dim):
        fits = [n for n in sorted(PRESETS) if get_config(n).model.embed_dim == width]
        raise PMATrackError(f"{path}: the weights do not fit the {cfg.preset} network (width {cfg.model.embed_dim})"
                            + (f": the file is a width-{width} network" if width else "")
                            + (f", as the {fits[0]} preset (--preset {fits[0]})" if fits else ""))


def load_official(model, state: dict, path, cfg) -> dict:
    """Convert and load (strict=False) an official state dict into ``model`` (built from ``cfg``); the report.

    A file with no official name, or whose tensors fit nothing here (another width: the message names the preset
    it fits), is a PMATrackError and leaves ``model`` untouched."""
    check_official(state, path, cfg)
    converted, report = convert_official(state, model)
    bb = report["groups"]["backbone"]
    if not report["totals"]["loaded"] or (bb["mismatched"] and not bb["loaded"]):
        check_official(state, path, cfg, fits_nothing=True)
    getattr(model, "module", model).load_state_dict(converted, strict=False)
    layers = tuple(cfg.align.layer_of(r) for r in cfg.align.stages) if cfg.train.stage == 2 else None
    report["notes"] = ["a stage-1 network: the official alignment modules are left out (unexpected)"] if not layers \
        else [f"the official stages follow blocks {OFFICIAL_LAYERS}, these {layers} (align.layers)"] \
        if layers != OFFICIAL_LAYERS else []
    return dict(path=str(path), preset=cfg.preset, stage=cfg.train.stage, **report)


def summary(report: dict) -> str:
    """The report as a table per group, the tensors of another shape and the notes."""
    t = report["totals"]
    lines = [f"official weights {report['path']} -> {report['preset']} network, stage {report['stage']}: "
             f"{t['loaded']} tensors loaded, {t['missing']} missing, {t['unexpected']} unexpected, "
             f"{t['mismatched']} of another shape; {len(report['folded'])} folded into others",
             f"{'group':16}{'loaded':>8}{'missing':>9}{'unexpected':>12}{'other shape':>13}"]
    for name, g in report["groups"].items():
        n = [len(g[k]) for k in ("loaded", "missing", "unexpected", "mismatched")]
        lines.append(f"{name:16}{n[0]:8}{n[1]:9}{n[2]:12}{n[3]:13}")
    lines += ["of another shape (not loaded):"] + [
        f"  {b['official']} {tuple(b['official_shape'])} -> {b['ours']} {tuple(b['our_shape'])}"
        + (f" ({b['why']})" if "why" in b else "") for g in report["groups"].values() for b in g["mismatched"]]
    kinds = {re.sub(r"^stage\d+\.", "stage*.", n): g["notes"] for n, g in report["groups"].items() if g["notes"]}
    lines += ["notes:"] + [f"  {n}: {note}" for n, notes in kinds.items() for note in notes]
    return "\n".join(lines + [f"  {note}" for note in report.get("notes", [])])


def add_cli(sub) -> None:
    p = sub.add_parser("convert", help="an official PMATrack checkpoint -> a pmatrack-mini checkpoint, with a report")
    p.add_argument("--official", required=True, help="the official checkpoint (.pth, .pth.tar, .safetensors)")
    p.add_argument("--out", required=True, help="the pmatrack-mini checkpoint to write")
    p.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    p.add_argument("--stage", type=int, choices=[1, 2], default=2,
                   help="2: the whole network; 1: backbone and head only (a tracker for train --stage 2 --init)")
    p.add_argument("--set", nargs="*", default=[], help="config overrides, e.g. align.tre_readout=pooled")
    p.add_argument("--report", default=None, help="also write the report as JSON")
    p.set_defaults(func=_cmd)


def _cmd(args) -> None:
    for out in (args.out, args.report):
        if out is not None and Path(out).is_dir():
            raise PMATrackError(f"{out}: is a folder; give a file name for this output")
    state = official_state_dict(read_official(args.official), args.official)    # bad files fail before building
    cfg = get_config(args.preset, stage=args.stage, **parse_overrides(args.set))
    check_official(state, args.official, cfg)
    torch.manual_seed(0)
    model = build_model(cfg)
    report = load_official(model, state, args.official, cfg)
    text = json.dumps(report, indent=1)
    print(summary(report))
    save_checkpoint(args.out, model, cfg, step=0)
    if args.report:
        with atomic_path(args.report) as tmp:
            tmp.write_text(text)
    print(f"wrote {args.out}" + (f" and {args.report}" if args.report else ""))
