"""Inference-only speed-ups: DPE's U-Nets traced once and frozen; the experts' fast kernels.

A DPE call is about 13 % of the tracker's multiply-adds but, eager on a CPU, one of the slowest parts of a frame:
each U-Net block is a 1 x 1 conv, seven 3 x 3 depthwise convs on a few channels and a fusing conv, each followed by a
batch norm (and a GELU), so a call launches some 150 small kernels. ``torch.jit.trace`` + ``torch.jit.freeze``
(weights become constants, each batch norm is folded into its convolution) runs them as one graph, with fewer
operations and no Python between them; nothing else of the network changes. (``optimize_for_inference`` on top was
measured no faster on 2 cores, 7.6 ms a call either way against 13.8 eager, and takes longer to prepare.) The eager network stays the reference: outputs agree to
float rounding (tests), and every caller can switch the speed-up off (``Tracker(..., traced=False)``,
``track --eager``). Measured on 2 cores in ``benchmarks/bench_inference.py`` (``results/inference_speed.json``).

Only for evaluation: a traced U-Net has no gradients and no batch-norm statistics to update. Tracing three stages'
U-Nets takes about 2.7 s on one core at cpu-mini and saves about 7 ms per DPE call: ``track`` traces only when it
has at least :data:`TRACE_FROM_FRAMES` frames to track, where the speed-up pays for its preparation.

:func:`fast_kernels_for_inference`: the same arithmetic in faster kernels, for evaluation only and off by default
(``Tracker(..., fast_kernels=True)``, ``track --fast-kernels``): TRE's transport by scaling updates in float64
(``tre.scaling_transport``) and FME's pyramid channels-last (``fme.pyramids_channels_last``). Outputs agree with the
reference to float rounding, but a tracking loop amplifies rounding where two score peaks nearly tie, so whole runs
differ by a few points on some sequences; the stored results ran the reference kernels.
"""
from __future__ import annotations

import copy
import warnings

import torch
import torch.nn as nn


TRACE_FROM_FRAMES = 300                 # frames to track from which tracing pays (2.7 s / ~10 ms saved a frame)


class TracedUNet(nn.Module):
    """A frozen, traced copy of a ``TinyUNet``: the same (B, C, H, W) -> ((B, C, H, W), [levels]) call."""

    def __init__(self, unet: nn.Module, example: torch.Tensor):
        super().__init__()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")                    # trace's notes on shape arithmetic it records
            self.traced = torch.jit.freeze(torch.jit.trace(unet.eval(), (example,), check_trace=False))

    def forward(self, x: torch.Tensor):
        out, levels = self.traced(x)
        return out, list(levels)


def traced_for_inference(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) whose DPE U-Nets run traced and frozen; ``model`` itself is untouched. A
    network without DPE comes back as an unchanged copy."""
    from .experts.dpe import DPE

    fast = copy.deepcopy(model).eval()
    for module in fast.modules():
        if isinstance(module, DPE):
            param = next(module.unet.parameters())
            example = torch.randn(2, module.dim, module.grid, module.grid, device=param.device, dtype=param.dtype)
            module.unet = TracedUNet(module.unet, example)
    return fast


def fast_kernels_for_inference(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) with TRE's scaling transport and FME's channels-last pyramid; ``model``
    itself is untouched."""
    from .experts.fme import pyramids_channels_last
    from .experts.tre import scaling_transport

    return pyramids_channels_last(scaling_transport(copy.deepcopy(model).eval()))
