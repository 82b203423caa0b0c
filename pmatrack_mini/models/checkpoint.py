"""Building networks from configs and checkpoints.

* ``build_model(cfg)``: ``train.stage`` 1 -> the stage-1 tracker (``BaselineNet``); 2 -> ``PMATrackNet``.
* Checkpoints (``save_checkpoint``) hold a format tag, the whole config, the step, the weights and, for resuming,
  the optimiser / scheduler / GradScaler states and every rank's random states (``resume.checkpoint_extras``);
  ``model_from_checkpoint`` rebuilds whichever network a file holds from the file alone (as pytracking stores the
  constructor arguments).
* ``load_stage1(model, path)`` puts a stage-1 tracker's weights into a stage-2 network (stage 2's ``--init``).
* ``load_pretrained(model, path)`` puts MAE / timm ViT or OSTrack weights into the backbone (``model.pretrained``)
  and reports what was loaded, what is missing and what the file holds that has no place here.
Loading uses ``torch.load(weights_only=True)``; a missing, truncated or foreign file is a ``PMATrackError``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..config import EXPERT_SIZE_FIELDS, Config, ModelConfig, config_from_dict, differences
from ..errors import PMATrackError
from ..utils import atomic_path
from .backbone import convert_pretrained, unmapped_keys
from .baseline import BaselineNet

FORMAT = "pmatrack-mini/1"


def build_model(cfg: Config | ModelConfig):
    """The network a config describes (a bare ModelConfig builds the stage-1 tracker)."""
    if isinstance(cfg, ModelConfig):
        return BaselineNet(cfg)
    if cfg.train.stage == 2:
        from .pmatrack import PMATrackNet

        return PMATrackNet(cfg)
    return BaselineNet(cfg.model)


def save_checkpoint(path, model, cfg: Config, step: int, optimizer=None, scheduler=None, **resume) -> None:
    """Write atomically (a temporary file renamed onto ``path``): a reader never sees a half-written checkpoint,
    and a process killed while writing leaves the previous file intact.

    ``resume`` adds what resuming needs beyond the optimiser and scheduler (``resume.checkpoint_extras``: ``rng``,
    one random state per rank; ``scaler``; ``run``, how the run was carried out). Without it the file holds this
    process's CPU random state."""
    net = getattr(model, "module", model)   # unwrap DistributedDataParallel
    state = dict(format=FORMAT, config=cfg.to_dict(), step=step, model=net.state_dict(),
                 rng=[dict(cpu=torch.get_rng_state())])
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    state.update(resume)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; clear errors for missing / truncated / foreign files."""
    path = Path(path)
    if not path.is_file():
        raise PMATrackError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, pickle of arbitrary objects, not a torch file ...
        raise PMATrackError(f"{path}: not a readable checkpoint (truncated or foreign file): {type(exc).__name__}") from None
    if (not isinstance(state, dict) or state.get("format") != FORMAT or not isinstance(state.get("model"), dict)
            or not isinstance(state.get("config"), dict) or not isinstance(state.get("step"), int)):
        raise PMATrackError(f"{path}: not a pmatrack-mini checkpoint (no format tag, model state, config or step)")
    return state


def checkpoint_config(path) -> Config:
    return config_from_dict(load_checkpoint(path)["config"])


def model_from_checkpoint(path, device="cpu", expect_preset: str | None = None, routing: str | None = None):
    """Rebuild the network from the config stored in the checkpoint; returns (model, cfg, step).

    ``routing`` overrides the stage-2 network's inference routing (router / soft / tre / fme / dpe); a stage-1
    checkpoint has no routing and refuses it."""
    state = load_checkpoint(path)
    cfg = config_from_dict(state["config"])
    if expect_preset is not None and cfg.preset != expect_preset:
        raise PMATrackError(f"{path}: checkpoint preset is {cfg.preset!r}, but {expect_preset!r} was asked for")
    if routing is not None:
        if cfg.train.stage != 2:
            raise PMATrackError(f"{path}: a stage-1 tracker has no alignment stages to route (routing={routing!r})")
        from ..config import merge

        cfg = merge(cfg, dict(align=dict(routing=routing)))
    model = build_model(cfg)
    load_fitting(model, state["model"], path, cfg)
    return model.to(device).eval(), cfg, int(state["step"])


def load_fitting(model, weights: dict, path, cfg: Config, skip_missing: str | tuple | None = None) -> None:
    """Load ``weights`` into ``model`` or raise a PMATrackError naming what does not fit: tensors of another shape
    (with the expert size fields of ``cfg`` when an expert's tensor is among them: a checkpoint made with other
    expert widths), missing or unexpected names. Missing names starting with ``skip_missing`` are allowed."""
    own = model.state_dict()
    shapes = [f"{k} is {tuple(v.shape)} in the file, {tuple(own[k].shape)} here"
              for k, v in weights.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    missing = [k for k in own if k not in weights and not (skip_missing and k.startswith(skip_missing))]
    unexpected = [k for k in weights if k not in own]
    if not (shapes or missing or unexpected):
        model.load_state_dict(weights, strict=False)
        return
    parts = ([f"{len(shapes)} tensor(s) of another shape ({'; '.join(shapes[:2])})"] if shapes else []) + \
            ([f"missing {missing[:3]}"] if missing else []) + ([f"unexpected {unexpected[:3]}"] if unexpected else [])
    msg = f"{path}: weights do not fit the stored config: {', '.join(parts)}"
    if any(".dmae.experts." in k for k in [s.split(" ")[0] for s in shapes] + missing + unexpected):
        a = cfg.align
        msg += (" (the experts were built with " + ", ".join(f"align.{f}={getattr(a, f)}" for f in EXPERT_SIZE_FIELDS)
                + "; a checkpoint of other expert sizes, or of an earlier version of the experts)")
    raise PMATrackError(msg)



def load_stage1(model, path) -> Config:
    """Load a stage-1 tracker checkpoint into a stage-2 network (backbone and head); returns its config.

    Refuses a stage-2 checkpoint and a tracker of another size, naming the difference."""
    state = load_checkpoint(path)
    cfg1 = config_from_dict(state["config"])
    if cfg1.train.stage != 1:
        raise PMATrackError(f"{path}: --init needs a stage-1 tracker checkpoint; this one is stage {cfg1.train.stage}")
    net = getattr(model, "module", model)
    diff = differences(cfg1.model, net.cfg, ignore=("pretrained",))   # where its weights came from does not matter
    if diff:
        raise PMATrackError(f"{path}: stage-1 tracker of another size (checkpoint vs this run: {diff})")
    load_fitting(net, state["model"], path, cfg1, skip_missing=("stages.", "fusions."))
    return cfg1


def read_weights(path) -> dict:
    """A state dict from a ``.safetensors`` file or a torch file (``weights_only=True``: tensors and plain
    containers only, never arbitrary pickled objects)."""
    path = Path(path)
    if not path.is_file():
        raise PMATrackError(f"{path}: pretrained weights not found (model.pretrained)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # truncated, not a torch / safetensors file, or pickled objects weights_only refuses
        hint = ("it holds pickled objects besides tensors, as some training checkpoints do: save its state dict "
                "alone first" if "allowed global" in str(exc) else "truncated, or not a torch / safetensors file")
        raise PMATrackError(f"{path}: not a readable weights file ({hint}; {type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise PMATrackError(f"{path}: not a state dict (a mapping of names to tensors), got {type(state).__name__}")
    return state


def load_pretrained(model, path) -> dict:
    """Load MAE / timm ViT or OSTrack weights (``models.backbone.convert_pretrained``) into ``model.backbone``.

    Returns the report ``dict(path, loaded, missing, unexpected, unused)``: tensors loaded; backbone tensors
    the file does not provide (the modality embedding always); mapped tensors with no place in this backbone
    (blocks beyond its depth); tensors of the file that do not map (class token, classifier, box head). A file that
    maps onto nothing, or a tensor of another shape (another width or patch size), is a PMATrackError."""
    backbone = getattr(model, "module", model).backbone
    state = read_weights(path)
    try:
        mapped = convert_pretrained(state, backbone)
        own = backbone.state_dict()
        wrong = [k for k in mapped if k in own and mapped[k].shape != own[k].shape]
    except (ValueError, RuntimeError, IndexError, TypeError, AttributeError) as exc:   # odd shapes, non-tensors
        raise PMATrackError(f"{path}: does not fit this backbone ({type(exc).__name__}: {exc})") from None
    if wrong:
        k = wrong[0]
        raise PMATrackError(f"{path}: {k} has shape {tuple(mapped[k].shape)}, this backbone {tuple(own[k].shape)} "
                            f"(model.embed_dim / patch_size must match the file)")
    if not any(k in own for k in mapped):
        raise PMATrackError(f"{path}: no tensor maps onto the backbone (expected an MAE / timm ViT or an OSTrack "
                            f"checkpoint)")
    missing, unexpected = backbone.load_state_dict(mapped, strict=False)
    return dict(path=str(path), loaded=len(mapped) - len(unexpected), missing=list(missing),
                unexpected=list(unexpected), unused=unmapped_keys(state))


def pretrained_summary(report: dict) -> str:
    """One line for the log: :func:`load_pretrained`'s counts, with the first few names of each kind."""
    def some(keys):
        return f"{len(keys)}" + (f" ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})" if keys else "")
    return (f"pretrained {report['path']}: {report['loaded']} tensors loaded; missing {some(report['missing'])}; "
            f"unexpected {some(report['unexpected'])}; not used from the file {some(report['unused'])}")
