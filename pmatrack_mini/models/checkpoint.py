"""Building networks from configs and checkpoints.

* ``build_model(cfg)``: ``train.stage`` 1 -> the stage-1 tracker (``BaselineNet``); 2 -> ``PMATrackNet``.
* Checkpoints (``save_checkpoint``) hold a format tag, the whole config, the step, the weights and, for resuming,
  the optimiser / scheduler / RNG states; ``model_from_checkpoint`` rebuilds whichever network a file holds from the
  file alone (as pytracking stores the constructor arguments).
* ``load_stage1(model, path)`` puts a stage-1 tracker's weights into a stage-2 network (stage 2's ``--init``).
Loading uses ``torch.load(weights_only=True)``; a missing, truncated or foreign file is a ``PMATrackError``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..config import Config, ModelConfig, config_from_dict
from ..errors import PMATrackError
from ..utils import atomic_path
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


def save_checkpoint(path, model, cfg: Config, step: int, optimizer=None, scheduler=None) -> None:
    """Write atomically: a reader never sees a half-written checkpoint."""
    net = getattr(model, "module", model)   # unwrap DistributedDataParallel
    state = dict(format=FORMAT, config=cfg.to_dict(), step=step, model=net.state_dict(),
                 torch_rng=torch.get_rng_state())
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
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
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    if missing or unexpected:
        raise PMATrackError(f"{path}: weights do not fit the stored config "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.to(device).eval(), cfg, int(state["step"])


def load_stage1(model, path) -> Config:
    """Load a stage-1 tracker checkpoint into a stage-2 network (backbone and head); returns its config.

    Refuses a stage-2 checkpoint and a tracker of another size, naming the difference."""
    state = load_checkpoint(path)
    cfg1 = config_from_dict(state["config"])
    if cfg1.train.stage != 1:
        raise PMATrackError(f"{path}: --init needs a stage-1 tracker checkpoint; this one is stage {cfg1.train.stage}")
    net = getattr(model, "module", model)
    own = net.cfg
    if cfg1.model != own:
        diff = {k: (getattr(cfg1.model, k), getattr(own, k)) for k in vars(own) if getattr(cfg1.model, k) != getattr(own, k)}
        raise PMATrackError(f"{path}: stage-1 tracker of another size (checkpoint vs this run: {diff})")
    missing, unexpected = net.load_state_dict(state["model"], strict=False)
    missing = [k for k in missing if not k.startswith("stages.")]
    if missing or unexpected:
        raise PMATrackError(f"{path}: weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return cfg1
