"""Pretrained backbones (``model.pretrained``): MAE / timm ViT and OSTrack files load with a report of what was
loaded, missing and left unused; bad files are clear errors; the paper preset warns without one; stage 2 never
reads it."""
import json
import warnings

import pytest
import timm
import torch
from safetensors.torch import save_file

from pmatrack_mini.cli import main
from pmatrack_mini.config import get_config
from pmatrack_mini.models import build_model
from pmatrack_mini.training.train import initial_network, train

TINY = dict(embed_dim=64, depth=2, num_heads=2, head_channels=32)


def _vit(width=64, depth=2, patch=16):
    torch.manual_seed(1)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, embed_dim=width, depth=depth, num_heads=2,
                             num_classes=10, patch_size=patch)


@pytest.fixture(scope="module")
def mae_file(tmp_path_factory):
    """An MAE-format file ({"model": state dict}) of a timm ViT as wide as the tiny tracker."""
    path = tmp_path_factory.mktemp("w") / "mae.pth"
    vit = _vit()
    torch.save({"model": vit.state_dict()}, path)
    return path, vit


def test_mae_weights_load_with_a_report(mae_file):
    path, vit = mae_file
    model, report = initial_network(get_config("cpu-mini", model=dict(TINY, pretrained=str(path))))
    assert torch.equal(model.backbone.blocks[1].mlp.fc2.weight, vit.blocks[1].mlp.fc2.weight)
    assert report["missing"] == ["modality_embed"] and report["unexpected"] == []
    assert sorted(report["unused"]) == ["cls_token", "head.bias", "head.weight"]
    assert report["loaded"] == len(model.backbone.state_dict()) - 1
    # a deeper file into a shallower backbone: the extra blocks are reported, not loaded
    _, report = initial_network(get_config("cpu-mini", model=dict(TINY, depth=1, pretrained=str(path))))
    assert report["unexpected"] and all(k.startswith("blocks.1.") for k in report["unexpected"])


def test_ostrack_weights_from_safetensors(tmp_path):
    other = build_model(get_config("cpu-mini", model=TINY))
    flat = {"backbone." + k: v for k, v in other.backbone.state_dict().items() if k != "modality_embed"}
    flat["box_head.conv1_ctr.0.weight"] = torch.zeros(8, 128, 3, 3)
    path = tmp_path / "ostrack.safetensors"
    save_file(flat, path)
    model, report = initial_network(get_config("cpu-mini", model=dict(TINY, pretrained=str(path))))
    assert torch.equal(model.backbone.pos_embed_x, other.backbone.pos_embed_x)
    assert report["unused"] == ["box_head.conv1_ctr.0.weight"] and report["missing"] == ["modality_embed"]


def test_training_reports_the_loading(mae_file, tmp_path, capsys):
    path, _ = mae_file
    args = ["train", "--data", "data_samples", "--out", str(tmp_path / "run"), "--quiet", "--set",
            f"model.pretrained={path}", "model.embed_dim=64", "model.depth=2", "model.num_heads=2",
            "model.head_channels=32", "train.steps=1", "train.batch_size=2", "train.log_every=1"]
    assert main(args) == 0
    assert "tensors loaded; missing 1 (modality_embed)" in capsys.readouterr().out
    first = json.loads(next((tmp_path / "run").glob("log_*.json")).read_text())[0]
    assert (first["pretrained_missing"], first["pretrained_unexpected"], first["pretrained_unused"]) == (1, 0, 3)


def _write(kind: str, folder):
    path = folder / f"{kind}.pth"
    if kind == "unrelated":
        torch.save({"model": {"encoder.weight": torch.zeros(3)}}, path)
    elif kind == "narrow":
        torch.save({"model": _vit(width=32).state_dict()}, path)
    elif kind == "patch8":
        torch.save({"model": _vit(patch=8).state_dict()}, path)
    elif kind == "pickled":
        torch.save({"net": {}, "settings": _Settings()}, path)
    elif kind == "text":
        path.write_text("not weights")
    return path


class _Settings:    # a training checkpoint that pickles objects: weights_only loading refuses it
    pass


@pytest.mark.parametrize("kind, message", [
    ("missing", "pretrained weights not found"),
    ("unrelated", "no tensor maps onto the backbone"),
    ("narrow", "checkpoint width 32 != model width 64"),
    ("patch8", "has shape (64, 3, 8, 8), this backbone (64, 3, 16, 16)"),
    ("pickled", "holds pickled objects besides tensors"),
    ("text", "not a readable weights file (truncated, or not a torch / safetensors file"),
])
def test_bad_pretrained_files_are_clear_errors(tmp_path, capsys, kind, message):
    path = _write(kind, tmp_path)
    code = main(["train", "--data", "data_samples", "--out", str(tmp_path / "run"), "--quiet", "--set",
                 f"model.pretrained={path}", "model.embed_dim=64", "model.depth=2", "model.num_heads=2",
                 "model.head_channels=32", "train.steps=1"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and message in err, err
    assert not (tmp_path / "run").exists()


def test_paper_preset_warns_without_pretrained_weights(mae_file, tmp_path):
    small = dict(TINY, depth=1)
    with pytest.warns(UserWarning, match="model.pretrained is not set"):
        train(get_config("paper", model=small), ["data_samples"], tmp_path / "a", stop_after=0, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(get_config("paper", model=dict(small, pretrained=str(mae_file[0]))), ["data_samples"], tmp_path / "b",
              stop_after=0, progress=False)
