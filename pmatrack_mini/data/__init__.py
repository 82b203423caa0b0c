"""Data: the synthetic unaligned RGBT generator, sequence IO for the real layouts, the pair sampler."""
from .dataset import Sequence, load_dataset, load_sequence, read_boxes  # noqa: F401
from .synth import OFFSET_LEVELS, SynthConfig, render_sequence  # noqa: F401
from .synth_sets import generate_dataset  # noqa: F401
