"""FLOPs, speed and utilisation.

* FLOPs are counted with fvcore, which counts **multiply-adds** (MACs; one MAC = 2 FLOPs, half of what
  torch's FlopCounterMode reports). fvcore (like torch's counter) does not see the fused
  ``scaled_dot_product_attention`` that timm's attention calls, so :func:`count_macs` registers a handle
  for it: softmax(Q K^T) V costs B h N M d (Q K^T) + B h N M d_v (times V) MACs.
* Utilisation (model-FLOP utilisation) = achieved FLOP/s of a forward pass / this machine's fp32 matmul
  FLOP/s measured in the same run (:func:`matmul_flops_per_s`).
"""
from __future__ import annotations

import functools
import time
import warnings
from collections import Counter

import torch


def _sdpa_handle(inputs, outputs):
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(x) for x in inputs[:3])
    *batch, n, d = q
    m, dv = k[-2], v[-1]
    b = 1
    for s in batch:
        b *= s
    return Counter({"scaled_dot_product_attention": b * n * m * d + b * n * m * dv})


def _logsumexp_handle(inputs, outputs):
    """One operation per input element (an exp and an add): Sinkhorn's inner loop, which fvcore ignores."""
    from fvcore.nn.jit_handles import get_shape

    n = 1
    for s in get_shape(inputs[0]):
        n *= s
    return Counter({"logsumexp": n})


def _grid_sample_handle(inputs, outputs):
    """Bilinear ``grid_sample``: four weighted taps per output element (TCMDA's and the token warps' sampling)."""
    from fvcore.nn.jit_handles import get_shape

    n = 1
    for s in get_shape(outputs[0]):
        n *= s
    return Counter({"grid_sampler": 4 * n})


class _Traceable(torch.nn.Module):
    """Hands the tracer one tensor of a network that returns a dict (its other entries are records)."""

    def __init__(self, net, key: str):
        super().__init__()
        self.net, self.key = net, key

    def forward(self, *inputs):
        out = self.net(*inputs)
        return out[self.key] if isinstance(out, dict) else out


# The operators a counter of linear and conv layers sees (module hooks): what the paper's FLOPs column counts.
LINEAR_CONV = ("linear", "addmm", "conv")


def count_macs(model: torch.nn.Module, inputs: tuple, output_key: str = "boxes") -> dict:
    """fvcore MAC count of ``model(*inputs)``: {'total': int, 'by_module': {name: int}, 'by_operator': {...},
    'linear_conv': int, 'linear_conv_by_module': {name: int}} (the last two: :data:`LINEAR_CONV` only).

    A model that returns a dict is traced through ``output[output_key]`` (what is computed is counted all the same;
    a stage-2 network at batch 1 under hard routing runs, and so counts, only the chosen experts).
    Handles added to fvcore's: fused attention (see the module docstring), log-sum-exp (Sinkhorn's inner
    loop), counted as one operation per input element, and bilinear grid sampling (4 per output element).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # fvcore.nn imports torch.jit helpers
        from fvcore.nn import FlopCountAnalysis

    was_training = model.training
    model.eval()
    fca = FlopCountAnalysis(_Traceable(model, output_key), inputs)
    fca.set_op_handle("aten::scaled_dot_product_attention", _sdpa_handle)
    fca.set_op_handle("aten::logsumexp", _logsumexp_handle)
    fca.set_op_handle("aten::grid_sampler", _grid_sample_handle)
    fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    with torch.no_grad():
        by_module = {k.removeprefix("net").removeprefix("."): int(v) for k, v in fca.by_module().items()}
        by_operator = {k: int(v) for k, v in fca.by_operator().items()}
        lc_by_module = {k.removeprefix("net").removeprefix("."): int(sum(ops.get(o, 0) for o in LINEAR_CONV))
                        for k, ops in fca.by_module_and_operator().items()}
        out = dict(total=int(fca.total()), by_module=by_module, by_operator=by_operator,
                   linear_conv=sum(by_operator.get(o, 0) for o in LINEAR_CONV), linear_conv_by_module=lc_by_module)
    model.train(was_training)
    return out


def matmul_flops_per_s(n: int = 1024, repeats: int = 20, device="cpu") -> float:
    """fp32 FLOP/s of an n x n x n matmul (2 n^3 FLOPs each), best of ``repeats``."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def latency(fn, warmup: int = 5, repeats: int = 30) -> float:
    """Median seconds per call of ``fn()``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


class _ExpertCall(torch.nn.Module):
    """Adapter so that fvcore can trace ``expert((z_rgb, x_rgb), (z_tir, x_tir))['params']``."""

    def __init__(self, expert):
        super().__init__()
        self.expert = expert

    def forward(self, z_r, x_r, z_t, x_t):
        return self.expert((z_r, x_r), (z_t, x_t))


def expert_costs(experts, num_template: int | None = None) -> dict:
    """MACs per call (batch 1) of each alignment expert: {name: MACs}; the router's c_e.

    ``experts``: a {name: expert} mapping, or a module with an ``experts`` attribute (ModuleDict).
    Sinkhorn's log-sum-exp is counted as one operation per element (fvcore ignores element-wise ops).
    """
    experts = getattr(experts, "experts", experts)
    out = {}
    for name, e in dict(experts).items():
        nz = num_template or max(1, (e.grid // 2) ** 2)
        param = next(e.parameters())
        z = torch.randn(1, nz, e.dim, device=param.device)
        x = torch.randn(1, e.grid * e.grid, e.dim, device=param.device)
        call = _ExpertCall(e).train(e.training)   # count_macs restores this mode afterwards
        out[name] = count_macs(call, (z, x, z, x), output_key="params")["total"]
    return out


def sizes_key(sizes: dict) -> tuple:
    """{expert: {argument: value}} -> the hashable ``sizes`` of :func:`expert_cost_table`."""
    return tuple((n, tuple(sorted(kw.items()))) for n, kw in sizes.items())


@functools.lru_cache(maxsize=None)
def expert_cost_table(names: tuple, dim: int, grid: int, search_size: int, stage: str = "center",
                      sizes: tuple = ()) -> dict:
    """MACs per call (batch 1) of freshly built experts of this size: the routers' cost c_e, measured once per
    size and process. ``sizes``: ((name, ((argument, value), ...)), ...), each expert's size arguments (hashable
    for the cache); missing: the class defaults. The random draws (weights, inputs) happen under a forked RNG, so
    measuring does not change what a seeded model-building sequence draws afterwards."""
    from .models.experts import build_expert

    kwargs = {n: dict(items) for n, items in sizes}
    with torch.random.fork_rng(devices=[]):
        experts = {n: build_expert(n, dim, grid, search_size, stage=stage, **kwargs.get(n, {})) for n in names}
        return expert_costs(experts)


def network_cost_table(model) -> dict:
    """:func:`_network_cost_table`, cached per architecture (the module tree's description): MACs do not depend
    on the weights, and trackers of one architecture are built many times (one per tracked row)."""
    key = repr(model)
    if key not in _COST_TABLES:
        _COST_TABLES[key] = _network_cost_table(model)
    return _COST_TABLES[key]


_COST_TABLES: dict = {}


def _network_cost_table(model) -> dict:
    """Where a tracking forward's MACs go (batch 1, fvcore): {"base": everything but the alignment experts,
    "experts": [{expert: MACs per call} for each stage]}. A stage-2 network is counted with every expert running
    (soft routing); a frame's MACs are then base + the experts it ran (:func:`frame_macs`)."""
    m = model.cfg
    with torch.random.fork_rng(devices=[]):
        z = torch.rand(1, 3, m.template_size, m.template_size)
        x = torch.rand(1, 3, m.search_size, m.search_size)
    stages = getattr(model, "stages", None)
    if stages is None:
        return dict(base=count_macs(model, (z, x, z, x))["total"], experts=[])
    # The experts' MACs per call were counted when the network was built (``DMAE.macs``, one count per size); the
    # rest is counted with the experts stood in for by modules that cost nothing, so a network is traced once,
    # cheaply, whatever its experts (their loops, Sinkhorn's above all, dominate a trace's time).
    experts = [{n: int(m) for n, m in zip(st.dmae.names, st.dmae.macs.tolist())} for st in stages]
    kept = [st.dmae.experts for st in stages]
    routing, model.routing = model.routing, "soft"
    try:
        for st in stages:
            st.dmae.experts = torch.nn.ModuleDict({n: _NoExpert() for n in st.dmae.names})
        c = count_macs(model, (z, x, z, x))
    finally:
        model.routing = routing
        for st, e in zip(stages, kept):
            st.dmae.experts = e
    return dict(base=c["total"], experts=experts)


class _NoExpert(torch.nn.Module):
    """An expert's stand-in while the rest of a network is counted: the identity alignment, no MACs."""

    def forward(self, rgb, tir) -> dict:
        x = rgb[1]                                                                   # (B, N, C) search tokens
        return {"params": x.new_zeros(x.shape[0], 5)}


def frame_macs(table: dict, records: list, i: int = 0) -> int:
    """MACs of one forward of sample i: the base plus each stage's experts that ran on it (the chosen one under hard
    routing, every one under soft routing). ``records``: the network's ``align`` records."""
    total = table["base"]
    for costs, rec in zip(table["experts"], records):
        ran = rec["names"] if rec["outputs"] else [rec["names"][int(rec["choice"][i])]]
        total += sum(costs[n] for n in ran)
    return int(total)


def component_macs(model, inputs: tuple, routings=("router", "soft", "tre", "fme", "dpe")) -> dict:
    """MACs of one forward (fvcore) per routing mode, split by component:
    {routing: {"total", "components": {"backbone", "head", "<role>.router", "<role>.<expert>", "<role>.tcmda",
    "<role>.warp"[, "fusions.tcmda"]}}} (the last for a one-shot network's TCMDA modules). A stage-1 tracker gives {"stage 1": {...}} with backbone and head only. Under ``router``
    (hard routing) the experts counted are those the router chose for ``inputs``."""
    stages = getattr(model, "stages", None)
    if stages is None:
        c = count_macs(model, inputs)
        mods = c["by_module"]
        return {"stage 1": dict(total=c["total"], components={"backbone": mods.get("backbone", 0),
                                                               "head": mods.get("head", 0)})}
    out, routing = {}, model.routing
    try:
        for r in routings:
            model.routing = r
            c = count_macs(model, inputs)
            mods = c["by_module"]
            comp = {"backbone": mods.get("backbone", 0), "head": mods.get("head", 0)}
            for k, role in enumerate(model.roles):
                st = f"stages.{k}"
                comp[f"{role}.router"] = mods.get(f"{st}.dmae.router", 0)
                for n in stages[k].dmae.names:
                    comp[f"{role}.{n}"] = mods.get(f"{st}.dmae.experts.{n}", 0)
                comp[f"{role}.tcmda"] = mods.get(f"{st}.tcmda", 0)
                comp[f"{role}.warp"] = mods.get(st, 0) - mods.get(f"{st}.dmae", 0) - mods.get(f"{st}.tcmda", 0)
            if len(getattr(model, "fusions", ())):                          # the one-shot ablation's fusions
                comp["fusions.tcmda"] = mods.get("fusions", 0)
            out[r] = dict(total=c["total"], components=comp)
    finally:
        model.routing = routing
    return out


# ----------------------------------------------------------------------------- stage-2 networks: routing and cost


def mean_frame_macs(table: dict, usage: dict) -> float:
    """Expected MACs per frame under hard routing when stage ``role`` sends the fraction ``usage[role][e]`` of frames
    to expert e (``alignment_metrics.expert_usage``; roles in the network's stage order): the base of
    :func:`network_cost_table` plus each stage's expert MACs weighted by its usage; for a one-hot usage this is
    :func:`frame_macs` of that frame."""
    return float(table["base"] + sum(frac * costs[e] for costs, per in zip(table["experts"], usage.values())
                                     for e, frac in per.items()))


def expert_calls(model: torch.nn.Module, inputs: tuple, routing: str) -> dict:
    """Which experts of a stage-2 network one forward pass runs, counted by forward hooks on the experts:
    {role: {expert: [batch size of each call]}} (an expert nobody chose has an empty list)."""
    calls, hooks = {}, []
    for stage in model.stages:
        calls[stage.role] = {n: [] for n in stage.dmae.names}
        for n, expert in stage.dmae.experts.items():
            hooks.append(expert.register_forward_hook(
                lambda mod, args, out, c=calls[stage.role][n]: c.append(int(args[0][1].shape[0]))))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs, routing=routing)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return calls


def component_seconds(model, inputs: tuple, routing: str | None = None, repeats: int = 20) -> dict:
    """Where a forward's wall time goes (batch 1, this machine): the median over ``repeats`` forwards of the seconds
    spent in each component of :func:`component_macs` ("backbone", "head", "<role>.router", "<role>.<expert>",
    "<role>.tcmda", "<role>.warp": the rest of the stage), timed by forward hooks, and of the whole forward
    ("total"; "other" is what no component covers). Beside the MACs it shows which parts are bound by arithmetic
    and which by the cost of launching many small operations."""
    bb = model.backbone                                   # a stage-2 network runs the blocks itself
    parts = {"backbone": [bb.patch_embed, *bb.blocks, bb.norm], "head": [model.head]}
    for role, stage in zip(getattr(model, "roles", ()), getattr(model, "stages", ())):
        parts[f"{role}.router"] = [stage.dmae.router]
        parts.update({f"{role}.{n}": [e] for n, e in stage.dmae.experts.items()})
        parts[f"{role}.tcmda"] = [stage.tcmda]
        parts[f"{role}.stage"] = [stage]
    spent: dict = {}
    started: dict = {}

    def pre(mod, args, name):
        started[id(mod)] = time.perf_counter()

    def post(mod, args, out, name):
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - started.pop(id(mod))

    hooks = [h for name, mods in parts.items() for m in mods
             for h in (m.register_forward_pre_hook(functools.partial(pre, name=name)),
                       m.register_forward_hook(functools.partial(post, name=name)))]
    runs, totals = [], []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for k in range(repeats + 2):                      # two warm-up forwards
                spent.clear()
                t0 = time.perf_counter()
                model(*inputs, **({"routing": routing} if routing else {}))
                if k >= 2:
                    totals.append(time.perf_counter() - t0)
                    runs.append(dict(spent))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    med = lambda vals: float(sorted(vals)[len(vals) // 2])
    comp = {name: med([r.get(name, 0.0) for r in runs]) for name in parts}
    for role in getattr(model, "roles", ()):
        inner = sum(v for k, v in comp.items() if k.startswith(f"{role}.") and k != f"{role}.stage")
        comp[f"{role}.warp"] = max(0.0, comp.pop(f"{role}.stage") - inner)
    total = med(totals)
    comp["other"] = max(0.0, total - sum(comp.values()))
    return dict(total=total, components=comp)
