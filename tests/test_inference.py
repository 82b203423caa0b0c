"""Inference-only speed-ups (models.inference): traced DPE U-Nets give the eager network's outputs to float rounding,
at other batch sizes than the traced one, and the same tracking (boxes, TOCU decisions, expert choices) as the eager
tracker; so do the experts' fast kernels (TRE's scaling transport, FME's channels-last pyramid)."""
import numpy as np
import torch

from pmatrack_mini.data.dataset import load_dataset
from pmatrack_mini.models import model_from_checkpoint
from pmatrack_mini.models.experts.dpe import DPE, TinyUNet
from pmatrack_mini.models.experts.fme import FME, CorrelationPyramid
from pmatrack_mini.models.experts.tre import TRE
from pmatrack_mini.models.inference import TracedUNet, fast_kernels_for_inference, traced_for_inference
from pmatrack_mini.ot import SCALING_MAX_EXPONENT
from pmatrack_mini.tracking.tocu import TOCUConfig
from pmatrack_mini.tracking.tracker import Tracker


def _trained_looking(stage2_checkpoint):
    """The toy stage-2 network with DPE's read-out and batch norms away from their initial values (an untrained DPE
    outputs the identity whatever its U-Net computes, which would hide a wrong U-Net)."""
    model, cfg, _ = model_from_checkpoint(stage2_checkpoint)
    torch.manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, DPE):
                m.regress[-1].weight.normal_(0, 0.05)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1, 0.1)
    return model.eval(), cfg


def test_traced_unet_gives_the_eager_outputs_at_any_batch(stage2_checkpoint):
    model, _ = _trained_looking(stage2_checkpoint)
    dpe = next(m for m in model.modules() if isinstance(m, DPE))
    fast = TracedUNet(dpe.unet, torch.randn(2, dpe.dim, dpe.grid, dpe.grid))
    for batch in (2, 1, 8):
        x = torch.randn(batch, dpe.dim, dpe.grid, dpe.grid)
        with torch.no_grad():
            (out, levels), (ref, ref_levels) = fast(x), dpe.unet(x)
        assert out.shape == ref.shape and torch.allclose(out, ref, atol=1e-4, rtol=1e-4)
        assert len(levels) == len(ref_levels)
        assert all(torch.allclose(a, b, atol=1e-4, rtol=1e-4) for a, b in zip(levels, ref_levels))


def test_the_copy_is_traced_and_the_original_untouched(stage2_checkpoint):
    model, _ = _trained_looking(stage2_checkpoint)
    fast = traced_for_inference(model)
    dpes = [m for m in model.modules() if isinstance(m, DPE)]
    assert dpes and all(isinstance(m.unet, TinyUNet) for m in dpes)
    assert all(isinstance(m.unet, TracedUNet) for m in fast.modules() if isinstance(m, DPE))


def _track(model, cfg, seq, frames=8, **tracker_options) -> tuple:
    """Track the first frames of ``seq`` -> (boxes (T, 4), per frame (experts, TOCU reason, MACs), stage params)."""
    tracker = Tracker(model, cfg, prealign="first-frame", tocu=TOCUConfig(), **tracker_options)
    tracker.initialize(seq.rgb(0), seq.tir(0), seq.gt_visible[0], box_tir=seq.gt_infrared[0])
    boxes, decisions, params = [], [], []
    for t in range(1, frames):
        boxes.append(tracker.track(seq.rgb(t), seq.tir(t)))
        info = tracker.last_info
        decisions.append(([a["expert"] for a in info["align"]], info["tocu"]["reason"], info["macs"]))
        params.append([a["params"] for a in info["align"]])                # each stage's dx, dy, log sx, log sy
    return np.array(boxes), decisions, np.array(params, dtype=np.float64)


def test_traced_tracker_tracks_as_the_eager_one(stage2_checkpoint, tiny_dataset):
    model, cfg = _trained_looking(stage2_checkpoint)
    seq = load_dataset(tiny_dataset)[0]
    (eager_boxes, eager_dec, eager_params), (fast_boxes, fast_dec, fast_params) = (
        _track(model, cfg, seq, traced=traced) for traced in (False, True))
    assert np.abs(eager_boxes - fast_boxes).max() < 0.01
    assert eager_dec == fast_dec                      # the same experts, TOCU decisions and MACs per frame
    assert np.abs(eager_params).max() > 1e-3          # DPE's read-out is not the identity: its U-Net matters
    assert np.allclose(eager_params, fast_params, atol=1e-4, rtol=1e-3)


def test_fast_kernels_copy_and_leave_the_original_untouched(stage2_checkpoint):
    model, _ = _trained_looking(stage2_checkpoint)
    fast = fast_kernels_for_inference(model)
    assert [m.scaling for m in model.modules() if isinstance(m, TRE)] == [False] * 3
    assert [m.scaling for m in fast.modules() if isinstance(m, TRE)] == [True] * 3
    conv = [m for m in fast.modules() if isinstance(m, CorrelationPyramid)][0].levels[0][2].weight   # c -> c conv
    ref = [m for m in model.modules() if isinstance(m, CorrelationPyramid)][0].levels[0][2].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert ref.is_contiguous()


def test_fast_kernels_track_as_the_reference(stage2_checkpoint, tiny_dataset):
    """Soft routing, so that every stage runs TRE and FME (and DPE) on every frame: the scaling transport and the
    channels-last pyramid give the reference's stage parameters to float rounding and the same tracking."""
    model, cfg = _trained_looking(stage2_checkpoint)
    with torch.no_grad():
        for m in model.modules():                     # TRE's and FME's read-outs away from the identity too
            if isinstance(m, (TRE, FME)):
                m.regress.weight.normal_(0, 0.05)
    model.routing = "soft"
    tres = [m for m in model.modules() if isinstance(m, TRE)]
    assert all(float(m.cost.max()) / m.epsilon <= SCALING_MAX_EXPONENT for m in tres)   # the scaling path, no fallback
    seq = load_dataset(tiny_dataset)[0]
    (ref_boxes, ref_dec, ref_params), (fast_boxes, fast_dec, fast_params) = (
        _track(model, cfg, seq, fast_kernels=fast) for fast in (False, True))
    assert np.abs(ref_params).max() > 1e-3
    assert np.allclose(ref_params, fast_params, atol=1e-4, rtol=1e-3)
    assert np.abs(ref_boxes - fast_boxes).max() < 0.01
    assert ref_dec == fast_dec


def test_track_traces_only_where_it_pays(stage2_checkpoint, tiny_dataset, tmp_path, monkeypatch):
    """``track`` traces the U-Nets from TRACE_FROM_FRAMES frames on (here lowered to one sequence's 20), never with
    --eager, and records which it did."""
    import json

    from pmatrack_mini.cli import main
    from pmatrack_mini.models import inference

    first = load_dataset(tiny_dataset)[0]
    (tmp_path / "one.txt").write_text(first.name + "\n")

    def traced(*extra):
        out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        assert main(["track", "--checkpoint", str(stage2_checkpoint), "--dataset", str(tiny_dataset), "--list",
                     str(tmp_path / "one.txt"), "--out", str(out), "--quiet", *extra]) == 0
        return json.loads((out / "track_summary.json").read_text())["traced"]

    assert len(first) < inference.TRACE_FROM_FRAMES and traced() is False
    monkeypatch.setattr(inference, "TRACE_FROM_FRAMES", len(first))
    assert traced() is True and traced("--eager") is False


def test_track_records_the_fast_kernels(stage2_checkpoint, tiny_dataset, tmp_path):
    """``track --fast-kernels`` runs them (recorded in track_summary.json) and tracks as the reference to 0.01 px
    on the first frames of a sequence."""
    import json

    from pmatrack_mini.cli import main

    first = load_dataset(tiny_dataset)[0]
    (tmp_path / "one.txt").write_text(first.name + "\n")
    runs = {}
    for extra in ((), ("--fast-kernels",)):
        out = tmp_path / f"run{len(extra)}"
        assert main(["track", "--checkpoint", str(stage2_checkpoint), "--dataset", str(tiny_dataset), "--list",
                     str(tmp_path / "one.txt"), "--out", str(out), "--quiet", *extra]) == 0
        runs[bool(extra)] = (json.loads((out / "track_summary.json").read_text())["fast_kernels"],
                             np.loadtxt(out / f"{first.name}.txt", delimiter=","))
    assert runs[False][0] is False and runs[True][0] is True
    assert np.abs(runs[False][1][:8] - runs[True][1][:8]).max() < 0.01
