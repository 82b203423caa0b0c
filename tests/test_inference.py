"""Traced DPE U-Nets (models.inference): the eager network's outputs to float rounding, at other batch sizes than the
traced one, and the same tracking (boxes, TOCU decisions, expert choices) as the eager tracker."""
import numpy as np
import torch

from pmatrack_mini.data.dataset import load_dataset
from pmatrack_mini.models import model_from_checkpoint
from pmatrack_mini.models.experts.dpe import DPE, TinyUNet
from pmatrack_mini.models.inference import TracedUNet, traced_for_inference
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


def test_traced_tracker_tracks_as_the_eager_one(stage2_checkpoint, tiny_dataset):
    model, cfg = _trained_looking(stage2_checkpoint)
    seq = load_dataset(tiny_dataset)[0]
    runs = []
    for traced in (False, True):
        tracker = Tracker(model, cfg, prealign="first-frame", tocu=TOCUConfig(), traced=traced)
        tracker.initialize(seq.rgb(0), seq.tir(0), seq.gt_visible[0], box_tir=seq.gt_infrared[0])
        boxes, decisions, params = [], [], []
        for t in range(1, 8):
            boxes.append(tracker.track(seq.rgb(t), seq.tir(t)))
            info = tracker.last_info
            decisions.append(([a["expert"] for a in info["align"]], info["tocu"]["reason"], info["macs"]))
            params.append([a["params"] for a in info["align"]])                # each stage's dx, dy, log sx, log sy
        runs.append((np.array(boxes), decisions, np.array(params, dtype=np.float64)))
    (eager_boxes, eager_dec, eager_params), (fast_boxes, fast_dec, fast_params) = runs
    assert np.abs(eager_boxes - fast_boxes).max() < 0.01
    assert eager_dec == fast_dec                      # the same experts, TOCU decisions and MACs per frame
    assert np.abs(eager_params).max() > 1e-3          # DPE's read-out is not the identity: its U-Net matters
    assert np.allclose(eager_params, fast_params, atol=1e-4, rtol=1e-3)


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
