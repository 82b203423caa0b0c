"""Networks: the one-stream ViT backbone, the centre head, the tracker network that joins them."""
from .backbone import OneStreamViT  # noqa: F401
from .head import CenterHead  # noqa: F401
from .baseline import BaselineNet, build_model  # noqa: F401
