"""PMATrack's network: built from a stage-1 checkpoint it tracks exactly as stage 1; progressive stages; frozen
tracker in stage 2; MACs of hard routing; stage-2 training from the command line, resume and bad input."""
import dataclasses

import numpy as np
import pytest
import torch

from pmatrack_mini.cli import main
from pmatrack_mini.config import TOY_EXPERT_SIZES, get_config, stage2_config
from pmatrack_mini.data import load_dataset
from pmatrack_mini.data.sampler import PairSampler
from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.models import build_model, load_checkpoint, model_from_checkpoint, save_checkpoint
from pmatrack_mini.models.checkpoint import load_stage1
from pmatrack_mini.profile import count_macs
from pmatrack_mini.tracking.tracker import Tracker, track_sequence
from pmatrack_mini.training.train import compute_loss, train, train_step

TINY = dict(embed_dim=64, depth=3, num_heads=2, head_channels=32)
ALIGN = dict(layers=(0, 1, 2), tcmda_heads=2, tcmda_points=2, **TOY_EXPERT_SIZES)


def _stage1():
    return get_config("cpu-mini", model=TINY, train=dict(steps=4, batch_size=4, ckpt_every=2, log_every=1,
                                                         warmup_steps=1))


def _stage2(ckpt, **align):
    return stage2_config(_stage1(), align={**ALIGN, **align},
                         train=dict(init=str(ckpt), steps=4, batch_size=4, ckpt_every=2, log_every=1, warmup_steps=1))


@pytest.fixture(scope="module")
def stage1_ckpt(tmp_path_factory):
    """A briefly trained stage-1 tracker (BN statistics and weights away from their initial values)."""
    path = tmp_path_factory.mktemp("s1")
    train(_stage1(), load_dataset("data_samples"), path, progress=False)
    return path / "final.pt"


@pytest.fixture(scope="module")
def samples():
    return load_dataset("data_samples")


def test_untrained_stage2_tracks_exactly_as_stage1(stage1_ckpt, samples):
    m1, cfg1, _ = model_from_checkpoint(stage1_ckpt)
    torch.manual_seed(0)
    m2 = build_model(_stage2(stage1_ckpt))
    load_stage1(m2, stage1_ckpt)
    s = samples[3]                                        # large offset, its first 15 frames
    seq = dataclasses.replace(s, rgb_files=s.rgb_files[:15], tir_files=s.tir_files[:15], gt_visible=s.gt_visible[:15],
                              gt_infrared=s.gt_infrared[:15], homography=s.homography[:15])
    for prealign in ("first-frame", "none"):
        b1, _, _ = track_sequence(Tracker(m1, cfg1, prealign=prealign), seq)
        b2, _, _ = track_sequence(Tracker(m2, _stage2(stage1_ckpt), prealign=prealign), seq)
        np.testing.assert_array_equal(b1, b2)


def test_progressive_stages_and_their_records(stage1_ckpt, samples):
    b = PairSampler(samples, get_config("cpu-mini").model, get_config("cpu-mini", stage=2).train).batch(0, 3)
    for stages in (("center",), ("center", "scale"), ("center", "scale", "refine"), ("scale",)):
        net = build_model(_stage2(stage1_ckpt, stages=stages)).eval()
        with torch.no_grad():
            out = net(b["z_rgb"], b["x_rgb"], b["z_tir"], b["x_tir"])
        assert [r["role"] for r in out["align"]] == list(stages)
        H = torch.eye(3).expand(3, 3, 3)
        for r in out["align"]:
            assert torch.allclose(r["H_prev"], H)
            H = r["H"]
        assert torch.allclose(out["H"], H)
        centre = out["align"][0]
        if centre["role"] == "center":
            assert centre["params"][:, 2:4].abs().max() == 0             # the centre stage keeps scale 1


def test_one_shot_regresses_all_four_at_one_stage_with_as_many_fusions(stage1_ckpt, samples):
    """The one-shot ablation: one "refine"-role stage after the centre block (shift and log scales at once), TCMDA
    after the scale and refine blocks guided by its H: as many TCMDA modules as the progressive network."""
    from pmatrack_mini.models.tcmda import TCMDA

    b = PairSampler(samples, get_config("cpu-mini").model, get_config("cpu-mini", stage=2).train).batch(0, 3)
    tcmdas = lambda net: sum(isinstance(m, TCMDA) for m in net.modules())
    one = build_model(_stage2(stage1_ckpt, one_shot=True))
    assert tcmdas(one) == tcmdas(build_model(_stage2(stage1_ckpt))) == 3 and len(one.stages) == 1
    load_stage1(one, stage1_ckpt)                                  # the fusions are new weights, like the stages
    one.eval()
    with torch.no_grad():
        out = one(b["z_rgb"], b["x_rgb"], b["z_tir"], b["x_tir"])
        assert [r["role"] for r in out["align"]] == ["refine"] and torch.equal(out["H"], out["align"][0]["H"])
        for p in one.fusions[-1].parameters():                     # the last fusion is on the head's path
            p.add_(0.5 * torch.randn_like(p))                      # (a constant shift would vanish in LayerNorm)
        moved = one(b["z_rgb"], b["x_rgb"], b["z_tir"], b["x_tir"])
    assert not torch.allclose(out["score_map"], moved["score_map"])
    align, tracker = one.trainable_parameters()
    assert {id(p) for p in one.fusions.parameters()} <= {id(p) for p in align} and not tracker
    with pytest.raises(PMATrackError, match="align.one_shot"):
        _stage2(stage1_ckpt, one_shot=True, stages=("center", "scale"))
    with pytest.raises(PMATrackError, match="strictly"):        # two stages on one block: one lost
        _stage2(stage1_ckpt, one_shot=True, layers=(1, 1, 2))


def test_stage2_step_trains_the_stages_only(stage1_ckpt, samples):
    cfg = _stage2(stage1_ckpt)
    net = build_model(cfg)
    load_stage1(net, stage1_ckpt)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    batch = PairSampler(samples, cfg.model, cfg.train).batch(0, 4)
    stats = train_step(net, batch, opt, cfg, "cpu")
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("stages.") for k in changed)           # BN statistics of the head included
    assert any(".tcmda." in k for k in changed) and any(".dmae.router." in k for k in changed)
    assert {"l_p", "l_r", "l_cpesl", "err_before", "err_2_refine"} <= set(stats)
    # mixed precision (bf16 on CPU): the alignment losses invert homographies, which needs float32
    assert np.isfinite(train_step(net, batch, opt, cfg, "cpu", amp=True)["loss"])


@pytest.mark.parametrize("align", [dict(), dict(routing="tre"), dict(experts=("fme",)),
                                   dict(experts=("tre", "fme"), routing="fme"), dict(one_shot=True)])
def test_every_trainable_parameter_gets_a_gradient(stage1_ckpt, samples, align):
    """What multi-process training (DDP) needs. Training with one named expert never reaches the routers or the
    other experts: they are frozen."""
    cfg = _stage2(stage1_ckpt, **align)
    net = build_model(cfg).train()
    b = PairSampler(samples, cfg.model, cfg.train).batch(0, 2)
    loss, _ = compute_loss(net(b["z_rgb"], b["x_rgb"], b["z_tir"], b["x_tir"]), b, cfg)
    loss.backward()
    assert [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None] == []
    trained = {n.split(".")[4] for n, p in net.named_parameters() if p.requires_grad and ".dmae.experts." in n}
    assert trained == ({align["routing"]} if "routing" in align else set(cfg.align.experts))
    assert all(p.requires_grad == ("routing" not in align) for n, p in net.named_parameters() if ".router." in n)


def test_hard_routing_macs_are_the_sum_of_what_runs(stage1_ckpt):
    cfg = _stage2(stage1_ckpt)
    torch.manual_seed(0)
    net = build_model(cfg).eval()
    m = cfg.model
    x = (torch.rand(1, 3, m.template_size, m.template_size), torch.rand(1, 3, m.search_size, m.search_size))
    inputs = (x[0], x[1], x[0].flip(-1), x[1].flip(-1))
    hard = count_macs(net, inputs)
    with torch.no_grad():
        chosen = [r["names"][int(r["choice"][0])] for r in net(*inputs)["align"]]
    mods = hard["by_module"]
    expected = mods["backbone"] + mods["head"]
    for k, name in enumerate(chosen):
        stage = f"stages.{k}"
        expected += mods[f"{stage}.dmae.router"] + mods[f"{stage}.dmae.experts.{name}"] + mods[f"{stage}.tcmda"]
        assert all(mods.get(f"{stage}.dmae.experts.{n}", 0) == 0 for n in ("tre", "fme", "dpe") if n != name)
        expected += mods.get(stage, 0) - mods[f"{stage}.dmae"] - mods[f"{stage}.tcmda"]   # the token warp
    assert hard["total"] == expected
    net.routing = "soft"
    assert count_macs(net, inputs)["total"] > hard["total"]


def test_stage2_cli_resume_and_reload(stage1_ckpt, tmp_path, capsys):
    args = ["train", "--stage", "2", "--init", str(stage1_ckpt), "--data", "data_samples", "--out",
            str(tmp_path / "s2"), "--steps", "4", "--batch-size", "4", "--quiet",
            "--set", "align.layers=0,1,2", "align.tcmda_heads=2", "align.experts=tre,fme", "train.ckpt_every=2",
            *(f"align.{k}={v}" for k, v in TOY_EXPERT_SIZES.items())]
    assert main(args) == 0
    full = load_checkpoint(tmp_path / "s2" / "final.pt")["model"]
    # interrupted after 2 steps, then resumed: the same weights
    from pmatrack_mini.cli import build_parser
    from pmatrack_mini.training.train import config_from_args
    cfg = config_from_args(build_parser().parse_args(args))
    train(cfg, "data_samples", tmp_path / "s2b", stop_after=2, progress=False)
    resumed = train(cfg, "data_samples", tmp_path / "s2b", progress=False)["model"].state_dict()
    for k, v in full.items():
        assert torch.equal(v, resumed[k]), k
    model, cfg2, step = model_from_checkpoint(tmp_path / "s2" / "final.pt", routing="fme")
    assert cfg2.align.experts == ("tre", "fme") and model.routing == "fme" and step == 4
    out, one = tmp_path / "res", tmp_path / "one.txt"
    one.write_text("large_fastmotion\n")                   # one sequence: the reload is the point, not the tracking
    assert main(["track", "--checkpoint", str(tmp_path / "s2" / "final.pt"), "--dataset", "data_samples",
                 "--list", str(one), "--out", str(out), "--routing", "tre", "--quiet"]) == 0
    assert [p.name for p in out.glob("*.txt")] == ["large_fastmotion.txt"]


@pytest.mark.parametrize("extra, message", [
    (["--set", "align.experts=tre,xyz"], "align.experts"),
    (["--set", "align.layers=0,1,7"], "outside the backbone"),
    (["--set", "align.stages=refine,center"], "ordered subset"),
    (["--set", "model.embed_dim=96"], "model settings come from the stage-1 checkpoint"),
    (["--preset", "paper"], "preset is 'cpu-mini'"),
])
def test_stage2_bad_input(stage1_ckpt, tmp_path, capsys, extra, message):
    args = ["train", "--stage", "2", "--init", str(stage1_ckpt), "--data", "data_samples", "--out",
            str(tmp_path / "s2"), "--steps", "1", "--quiet"]
    if "--set" not in extra:
        args += ["--set", "align.layers=0,1,2"]
    assert main(args + extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s2").exists()                                      # nothing written


def test_init_refuses_stage2_and_other_sizes(stage1_ckpt, tmp_path):
    s2 = tmp_path / "s2.pt"
    cfg = _stage2(stage1_ckpt)
    save_checkpoint(s2, build_model(cfg), cfg, step=0)
    with pytest.raises(PMATrackError, match="stage-1 tracker checkpoint"):
        load_stage1(build_model(cfg), s2)
    with pytest.raises(PMATrackError, match="stage-1 tracker checkpoint"):
        stage2_config(cfg)
    other = get_config("cpu-mini", stage=2, model=dict(TINY, depth=4), align=ALIGN)
    with pytest.raises(PMATrackError, match="another size"):
        load_stage1(build_model(other), stage1_ckpt)
    with pytest.raises(PMATrackError, match="no alignment stages"):
        model_from_checkpoint(stage1_ckpt, routing="router")


def test_stage2_never_reads_model_pretrained(stage1_ckpt):
    """The tracker comes from --init; the file its backbone once started from is not part of its size."""
    from pmatrack_mini.training.train import initial_network

    cfg = get_config("cpu-mini", stage=2, model=dict(TINY, pretrained="nowhere.pth"), align=ALIGN,
                     train=dict(init=str(stage1_ckpt)))
    model, report = initial_network(cfg)
    assert report is None and model.cfg.pretrained == "nowhere.pth"


def test_checkpoint_of_other_expert_sizes_is_refused_naming_them(stage2_checkpoint, tmp_path, capsys):
    """Weights saved with other expert widths than the config in the file states: exit 2, the fields named."""
    from pmatrack_mini.cli import main
    from pmatrack_mini.models.checkpoint import load_checkpoint

    state = load_checkpoint(stage2_checkpoint)
    key = next(k for k in state["model"] if ".dmae.experts.tre.proj.rgb.0.weight" in k)
    state["model"][key] = torch.zeros(7, state["model"][key].shape[1])      # as if built with tre_dim=7
    bad = tmp_path / "other_widths.pt"
    torch.save(state, bad)
    out = tmp_path / "r"
    assert main(["track", "--checkpoint", str(bad), "--dataset", "data_samples", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and key in err and "align.tre_dim=16" in err and "Traceback" not in err
    assert not out.exists()
