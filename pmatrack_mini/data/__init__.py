"""Data: the synthetic unaligned RGBT generator, sequence IO for the real layouts, the pair sampler."""
from .dataset import Sequence, load_dataset, load_sequence, read_boxes  # noqa: F401
from .synth import OFFSET_LEVELS, SynthConfig, generate_dataset, render_sequence  # noqa: F401
