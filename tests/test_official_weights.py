"""Loading the official PMATrack checkpoint (``models.official``, ``pmatrack-mini convert``) on a fabricated state
dict: the official names and shapes (tabulated below from the official model code) filled with made-up numbers,
converted into a paper-width network of 4 blocks (same names as 12), checked tensor by tensor and count by count;
bad files end in ``error: ...`` with exit status 2 and nothing written."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from pmatrack_mini import profile
from pmatrack_mini.cli import main
from pmatrack_mini.config import get_config
from pmatrack_mini.models import build_model, model_from_checkpoint
from pmatrack_mini.models.official import load_official

PAPER4 = dict(model=dict(depth=4), align=dict(layers=(0, 1, 2)))    # paper widths, 4 blocks, a stage after 0, 1, 2
CPU_MINI = dict(dim=192, depth=6, grid=8, template_grid=4, head=128, levels=3)   # the official formulas at cpu-mini


def official_shapes(dim=768, depth=12, grid=16, template_grid=8, head=256, stages=3, levels=4, patch=16) -> dict:
    """{name: shape} of the official network's state dict at these sizes (defaults: the released model), as read
    from its model code (the ViT with the alignment modules inserted, the experts and router, the deformable attention,
    the centre head; the patch embedding taken as OSTrack's, a Conv2d ``proj`` and no norm); the sizes inside its
    experts derived as it derives them (FME gates 4 N, DPE base C / 3)."""
    C, N, s = dim, grid * grid, {}

    def lin(name, o, i, bias=True):
        s[name + ".weight"] = (o, i)
        if bias:
            s[name + ".bias"] = (o,)

    def conv(name, o, i, k, bias=True):
        s[name + ".weight"] = (o, i, k, k)
        if bias:
            s[name + ".bias"] = (o,)

    def norm(name, c):
        s[name + ".weight"] = s[name + ".bias"] = (c,)

    def bn(name, c):
        for f in ("weight", "bias", "running_mean", "running_var"):
            s[f"{name}.{f}"] = (c,)
        s[name + ".num_batches_tracked"] = ()

    def cmrf(name, cin, cout):          # 1x1 conv-BN, 7 depthwise 3x3 conv-BN, 1x1 conv-BN
        mid = cout // 8
        conv(name + ".pw1.conv", mid, cin, 1, False), bn(name + ".pw1.bn", mid)
        for t in range(7):
            conv(f"{name}.dw_chain.{t}.conv", mid // 2, 1, 3, False), bn(f"{name}.dw_chain.{t}.bn", mid // 2)
        conv(name + ".pw2.conv", cout, 8 * (mid // 2), 1, False), bn(name + ".pw2.bn", cout)

    b = "backbone."
    s[b + "cls_token"], s[b + "pos_embed"] = (1, 1, C), (1, 1 + (224 // patch) ** 2, C)
    conv(b + "patch_embed.proj", C, 3, patch)
    s[b + "pos_embed_z"], s[b + "pos_embed_x"] = (1, template_grid ** 2, C), (1, N, C)
    for i in range(depth):
        p = f"{b}blocks.{i}."
        norm(p + "norm1", C), lin(p + "attn.qkv", 3 * C, C), lin(p + "attn.proj", C, C)
        norm(p + "norm2", C), lin(p + "mlp.fc1", 4 * C, C), lin(p + "mlp.fc2", C, 4 * C)
    norm(b + "norm", C)
    widths = [C, head, head // 2, head // 4, head // 8]
    for br, out in (("ctr", 1), ("offset", 2), ("size", 2)):
        for i in range(4):
            conv(f"box_head.conv{i + 1}_{br}.0", widths[i + 1], widths[i], 3)
            bn(f"box_head.conv{i + 1}_{br}.1", widths[i + 1])
        conv(f"box_head.conv5_{br}", out, head // 8, 1)
    chs = [max(32, int(C * (256 / 768))) * 2 ** i for i in range(levels)]
    for k in range(stages):
        p, t, f, d = (f"{b}neuro_net.{k}." + x for x in ("", "shift_net.", "scale_net.", "warp_net."))
        for m in ("rgb", "tir"):
            lin(f"{t}{m}_proj.0", C, C), lin(f"{t}{m}_proj.2", C, C), lin(f"{f}{m}_proj", C, C, bias=False)
            lin(f"{f}band_gate_{m}.mlp.0", 4 * N, 2 * C), lin(f"{f}band_gate_{m}.mlp.2", 2, 4 * N)
        norm(t + "norm1", C), conv(t + "refiner.0", 8, 1, 3), conv(t + "refiner.2", 16, 8, 3)
        lin(t + "refiner.6", 5, 16)
        s[f + "alpha1"] = s[f + "alpha2"] = ()
        norm(f + "norm1", C)
        for sc in range(3):
            conv(f"{f}conv_head.blocks.{sc}.0", 64, 1, 3), conv(f"{f}conv_head.blocks.{sc}.2", 64, 64, 3)
        conv(f + "conv_head.fuse.0", 64, 192, 1), lin(f + "conv_head.head", 5, 64)
        cin = C
        for i, c in enumerate(chs):
            cmrf(f"{d}backbone.enc_blocks.{i}", cin, c)
            cin = c
        cmrf(d + "backbone.bottleneck", chs[-1], chs[-1])
        for j, i in enumerate(reversed(range(levels))):
            cmrf(f"{d}backbone.dec_blocks.{j}", chs[min(i + 1, levels - 1)] + chs[i], chs[i])
        conv(d + "backbone.head.conv", C, chs[0], 1, False), bn(d + "backbone.head.bn", C)
        g = d + "global_blocks.0."
        norm(g + "norm1", 2 * C), lin(g + "attn.qkv", 6 * C, 2 * C, bias=False), lin(g + "attn.proj", 2 * C, 2 * C)
        norm(g + "norm2", 2 * C), lin(g + "mlp.0", 8 * C, 2 * C), lin(g + "mlp.3", 2 * C, 8 * C)
        lin(d + "regressor.2", 128, 2 * C), lin(d + "regressor.4", 5, 128)
        lin(p + "_gate.mlp.0", 128, 512), lin(p + "_gate.mlp.2", 64, 128), lin(p + "_gate.mlp.4", 3, 64)
        s[p + "branch_costs"] = (3,)
        for way in ("v2i", "i2v"):          # 8 heads x 4 points
            q = f"{b}interaction_layers_{way}.{k}."
            lin(q + "offset_mlp", 64, C), lin(q + "attn_mlp", 32, C), conv(q + "v_proj", C, C, 1)
            lin(q + "out_proj", C, C)
            s[q + "delta_scale"] = ()
    return s


def fabricate(shapes: dict) -> dict:
    """Made-up tensors of these shapes: uniform random when small; when large (cheaper) a random value per row plus a
    random row; positive BatchNorm variances, integer batch counts."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for k, s in shapes.items():
        if math.prod(s) < 200_000:
            v = torch.rand(s, generator=g)
        else:
            v = torch.rand((s[0],) + (1,) * (len(s) - 1), generator=g) + torch.rand(s[1:], generator=g)
        out[k] = torch.tensor(3) if k.endswith("num_batches_tracked") else v + 0.5 if k.endswith("_var") else v
    return out


@pytest.fixture(scope="module", autouse=True)
def _unmeasured_costs():
    """Building a network measures its experts' MACs (a forward pass each, slow at paper width); not tested here."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(profile, "expert_cost_table", lambda names, *args, **kw: {n: 1.0 for n in names})
        yield


@pytest.fixture(scope="module")
def paper():
    """(official state dict, our converted network, report): one key beyond our 4 blocks added."""
    torch.manual_seed(0)
    cfg = get_config("paper", stage=2, **PAPER4)
    model = build_model(cfg).eval()
    sd = fabricate(official_shapes(depth=4))
    sd["backbone.blocks.7.norm1.weight"] = torch.ones(768)
    return sd, model, load_official(model, sd, "fabricated.pth", cfg)


def test_tensors_land_in_their_places(paper):
    sd, model, _ = paper
    own = model.state_dict()
    same = {"backbone.blocks.2.attn.qkv.weight": "backbone.blocks.2.attn.qkv.weight",
            "backbone.pos_embed_x": "backbone.pos_embed_x",
            "head.size.2.0.weight": "box_head.conv3_size.0.weight",
            "head.score.4.weight": "box_head.conv5_ctr.weight",
            "stages.1.dmae.experts.tre.proj.rgb.2.weight": "backbone.neuro_net.1.shift_net.rgb_proj.2.weight",
            "stages.2.dmae.experts.fme.gate.tir.0.weight": "backbone.neuro_net.2.scale_net.band_gate_tir.mlp.0.weight",
            "stages.0.dmae.experts.fme.pyramid.levels.2.2.weight":
                "backbone.neuro_net.0.scale_net.conv_head.blocks.2.2.weight",
            "stages.0.dmae.experts.dpe.block.mlp.fc2.weight":
                "backbone.neuro_net.0.warp_net.global_blocks.0.mlp.3.weight",
            # the official decoder lists the deepest block first
            "stages.0.dmae.experts.dpe.unet.dec.0.fuse.0.weight":
                "backbone.neuro_net.0.warp_net.backbone.dec_blocks.3.pw2.conv.weight",
            "stages.0.tcmda.out.rgb.weight": "backbone.interaction_layers_v2i.0.out_proj.weight",   # RGB queries
            "stages.2.tcmda.attn.tir.bias": "backbone.interaction_layers_i2v.2.attn_mlp.bias"}     # TIR queries
    for ours, theirs in same.items():
        assert torch.equal(own[ours], sd[theirs]), ours
    # i2v: TIR queries sample RGB values, so its value projection (a 1x1 conv) is our RGB value Linear
    assert torch.equal(own["stages.2.tcmda.value.rgb.weight"],
                       sd["backbone.interaction_layers_i2v.2.v_proj.weight"][..., 0, 0])
    # offsets: normalised grid units x delta_scale -> cells, (16 - 1) / 2 cells per unit
    scale = sd["backbone.interaction_layers_i2v.1.delta_scale"] * 7.5
    torch.testing.assert_close(own["stages.1.tcmda.offsets.tir.weight"],
                               sd["backbone.interaction_layers_i2v.1.offset_mlp.weight"] * scale)


def test_reexpressed_tensors_compute_what_the_official_ones_do(paper):
    sd, model, _ = paper
    torch.manual_seed(1)
    # head: conv with bias, then BatchNorm == our conv without bias, then BatchNorm with the bias folded in
    t = "box_head.conv2_ctr."
    x = torch.randn(1, 256, 5, 5)
    theirs = F.relu(F.batch_norm(F.conv2d(x, sd[t + "0.weight"], sd[t + "0.bias"], padding=1), sd[t + "1.running_mean"],
                                 sd[t + "1.running_var"], sd[t + "1.weight"], sd[t + "1.bias"], eps=1e-5))
    with torch.no_grad():
        torch.testing.assert_close(model.head.score[1](x), theirs)
    # DPE: the official block splits its first 1x1 conv-BN (eps 1e-3) into odd / even channels, ours into halves
    p = "backbone.neuro_net.1.warp_net.backbone.enc_blocks.1.pw1."
    x = torch.randn(1, 256, 4, 4)
    y = F.gelu(F.batch_norm(F.conv2d(x, sd[p + "conv.weight"]), sd[p + "bn.running_mean"], sd[p + "bn.running_var"],
                            sd[p + "bn.weight"], sd[p + "bn.bias"], eps=1e-3))
    with torch.no_grad():
        a, b = model.stages[1].dmae.experts["dpe"].unet.enc[1].reduce(x).chunk(2, dim=1)
    torch.testing.assert_close(b, y[:, 1::2])                     # the cascade's input
    torch.testing.assert_close(a + b, y[:, 0::2] + y[:, 1::2])    # the first piece


# per group kind: loaded, missing (ours), unexpected (theirs), of another shape
EXPECTED = {"backbone": (54, 1, 3, 0), "head": (75, 0, 0, 3), "tre": (14, 0, 0, 2), "fme": (26, 0, 2, 2),
            "dpe": (507, 1, 0, 0), "router": (0, 8, 7, 0), "tcmda": (16, 4, 0, 0)}


def test_report_counts_per_group(paper):
    sd, model, report = paper
    groups = report["groups"]
    assert list(groups) == ["backbone", "head"] + [f"stage{k}.{g}" for k in range(3)
                                                   for g in ("tre", "fme", "dpe", "router", "tcmda")]
    for name, g in groups.items():
        counts = tuple(len(g[k]) for k in ("loaded", "missing", "unexpected", "mismatched"))
        assert counts == EXPECTED[name.split(".")[-1]], name
    assert len(report["folded"]) == 12 + 6                       # head conv biases, TCMDA delta_scales
    t = report["totals"]
    assert t["loaded"] + t["missing"] + t["mismatched"] == len(model.state_dict())
    assert t["loaded"] + t["unexpected"] + t["mismatched"] + len(report["folded"]) == len(sd)
    assert {"backbone.cls_token", "backbone.blocks.7.norm1.weight"} <= set(groups["backbone"]["unexpected"])
    assert groups["backbone"]["missing"] == ["backbone.modality_embed"]
    assert groups["stage0.dpe"]["missing"] == ["stages.0.dmae.experts.dpe.pos"]
    assert dict(official="box_head.conv1_ctr.0.weight", ours="head.score.0.0.weight", official_shape=[256, 768, 3, 3],
                our_shape=[256, 1536, 3, 3]) in groups["head"]["mismatched"]
    bias = groups["stage1.tre"]["mismatched"][1]                  # loaded with its weight or not at all
    assert bias["ours"].endswith("regress.bias") and "its module" in bias["why"]
    assert "align.layers" in report["notes"][0]


class _Settings:    # a trainer's checkpoint pickles objects like this: weights_only loading refuses them
    def __init__(self):
        self.workspace = "somewhere"


def test_convert_command_writes_a_checkpoint_and_a_report(tmp_path, capsys):
    sd = fabricate(official_shapes(**CPU_MINI))
    torch.save({"epoch": 60, "net": sd, "settings": _Settings(), "stats": {"loss": _Settings()}},
               tmp_path / "ep60.pth.tar")
    out, rep = tmp_path / "conv" / "ck.pt", tmp_path / "report.json"
    assert main(["convert", "--official", str(tmp_path / "ep60.pth.tar"), "--out", str(out), "--preset", "cpu-mini",
                 "--set", "align.tre_readout=pooled", "align.tre_dim=192", "--report", str(rep)]) == 0
    printed = capsys.readouterr().out
    assert "tensors loaded" in printed and "stage*.router: no counterpart" in printed
    model, cfg, step = model_from_checkpoint(out)
    assert (cfg.preset, cfg.train.stage, step) == ("cpu-mini", 2, 0)
    assert torch.equal(model.backbone.blocks[5].mlp.fc1.weight, sd["backbone.blocks.5.mlp.fc1.weight"])
    report = json.loads(rep.read_text())
    assert report["groups"]["stage0.tre"]["mismatched"] == []     # the pooled read-out has the official shape
    assert torch.equal(model.stages[0].dmae.experts["tre"].regress.weight,
                       sd["backbone.neuro_net.0.shift_net.refiner.6.weight"])


def _bad(kind: str, folder):
    path = folder / f"{kind}.pth"
    if kind == "text":
        path.write_text("not weights")
    elif kind == "list":
        torch.save([torch.zeros(2)], path)
    elif kind == "foreign":
        torch.save({"net": {"encoder.weight": torch.zeros(3)}}, path)
    elif kind == "wide":          # a ViT-B file into the cpu-mini network
        torch.save({k: torch.zeros(s) for k, s in official_shapes().items() if k.startswith(("backbone.patch_embed",
                                                                                           "backbone.norm."))}, path)
    return path


@pytest.mark.parametrize("kind, message", [
    ("missing", "official checkpoint not found"),
    ("text", "not a readable checkpoint (truncated, or not a torch / safetensors file"),
    ("list", "not a state dict (a mapping of names to tensors), got list"),
    ("foreign", "no official PMATrack name recognised"),
    ("wide", "do not fit the cpu-mini network (width 192): the file is a width-768 network, as the paper preset"),
    ("folder", "is a folder; give a file name"),
])
def test_bad_input_is_an_error_and_writes_nothing(tmp_path, capsys, kind, message):
    official = _bad(kind, tmp_path)
    out = tmp_path / ("conv" if kind == "folder" else "ck.pt")
    if kind == "folder":
        out.mkdir()
        official = _bad("wide", tmp_path)
    code = main(["convert", "--official", str(official), "--out", str(out), "--preset", "cpu-mini"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and message in err, err
    assert not out.is_file() and not list(tmp_path.glob("**/*.tmp*"))
