"""Networks: the one-stream ViT backbone, the centre head, the stage-1 tracker network, PMATrack's alignment
network, and building / loading them from configs and checkpoints (``models.checkpoint``)."""
from .backbone import OneStreamViT  # noqa: F401
from .head import CenterHead  # noqa: F401
from .baseline import BaselineNet  # noqa: F401
from .checkpoint import build_model, load_checkpoint, model_from_checkpoint, save_checkpoint  # noqa: F401
