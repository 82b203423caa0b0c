import math

import pytest
import torch

from pmatrack_mini.models.experts import EXPERTS, build_expert, cell_mask
from pmatrack_mini.models.experts.fme import frequency_split
from pmatrack_mini.models.experts.tre import centroid_offset, displacement_histogram, plan_mode_offset
from pmatrack_mini.ot import sinkhorn, grid_cost
from pmatrack_mini.profile import expert_costs
from pmatrack_mini.training.losses import param_loss

C, G, S = 32, 8, 128


def _tokens(B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ((torch.randn(B, 16, C, generator=g), torch.randn(B, 64, C, generator=g)),
            (torch.randn(B, 16, C, generator=g), torch.randn(B, 64, C, generator=g)))


@pytest.mark.parametrize("name", EXPERTS)
@pytest.mark.parametrize("stage", ["center", "scale"])
def test_interface_shapes_bounds_and_gradients(name, stage):
    torch.manual_seed(0)
    e = build_expert(name, C, G, S, stage=stage)
    rgb, tir = _tokens()
    assert e(rgb, tir)["params"][:, :4].abs().max() == 0               # untrained: no correction (identity)
    with torch.no_grad():
        for q in e.parameters():
            q.add_(0.05 * torch.randn_like(q))
    rgb = tuple(t.requires_grad_(True) for t in rgb)
    out = e(rgb, tir)
    p = out["params"]
    assert p.shape == (2, 5) and torch.isfinite(p).all()
    assert p[:, :2].abs().max() <= S / 2 and p[:, 2:4].abs().max() <= math.log(4) + 1e-6
    if stage == "center":
        assert p[:, 2:4].abs().max() == 0
    target = torch.tensor([[10.0, -5.0, 0.1, 0.0], [0.0, 3.0, 0.0, -0.1]])
    param_loss(p, target, 16, with_scale=stage != "center").mean().backward()
    assert all(q.grad is not None for q in e.parameters() if q.requires_grad and q.ndim > 1 and q.grad is not None)
    assert rgb[1].grad is not None and rgb[1].grad.abs().sum() > 0      # gradients reach the backbone tokens


def test_costs_rise_tre_fme_dpe_at_cpu_mini_width():
    costs = expert_costs({n: build_expert(n, 192, 8, 128) for n in EXPERTS})
    assert costs["tre"] < costs["fme"] < costs["dpe"], costs


def test_mean_readout_of_any_plan_is_the_centroid_difference():
    """sum_ij T_ij (p_j - p_i) = centroid(b) - centroid(a) for every feasible plan: the mean ignores the plan."""
    torch.manual_seed(1)
    a = torch.softmax(torch.randn(3, 64, dtype=torch.float64) * 2, 1)
    b = torch.softmax(torch.randn(3, 64, dtype=torch.float64) * 2, 1)
    K = 2 * G - 1
    disp = torch.stack(torch.meshgrid(torch.arange(K) - (G - 1), torch.arange(K) - (G - 1), indexing="ij"), 0).double()
    cost = grid_cost(G, G, dtype=torch.float64).expand(3, -1, -1)
    for plan in (sinkhorn(a, b, cost, 0.5, n_iters=5000, tol=1e-10),
                 a[:, :, None] * b[:, None, :]):                      # OT plan and the independent coupling
        hist = displacement_histogram(plan, G)
        mean = torch.stack([(hist * disp[1]).sum((1, 2)), (hist * disp[0]).sum((1, 2))], 1)   # (dx, dy)
        assert torch.allclose(mean, centroid_offset(a, b, G), atol=1e-8)


def test_mode_readout_ignores_a_one_modality_distractor():
    """Target at cell (2, 2) in RGB and (4, 2) in TIR; a hot distractor only in TIR at (7, 7)."""
    a = torch.zeros(1, 64)
    a[0, 2 * 8 + 2] = 1.0
    b = torch.zeros(1, 64)
    b[0, 2 * 8 + 4], b[0, 7 * 8 + 7] = 0.6, 0.4
    a = a * 0.96 + 0.04 / 64
    b = b * 0.96 + 0.04 / 64
    plan = sinkhorn(a, b, grid_cost(8, 8)[None], 0.3, n_iters=300)
    mode = plan_mode_offset(displacement_histogram(plan, 8))
    assert mode.tolist() == [[2.0, 0.0]]                                   # the true shift, in cells
    assert (centroid_offset(a, b, 8) - torch.tensor([[2.0, 0.0]])).norm() > 1.5   # the centroid is pulled away


def test_frequency_split():
    x = torch.randn(2, 4, 8, 8)
    low, high = frequency_split(x)
    assert low.shape == high.shape == x.shape
    const = torch.ones(1, 1, 8, 8) * 3
    assert torch.allclose(frequency_split(const)[1], torch.zeros_like(const), atol=1e-6)  # no high band in a constant


def test_fme_correlation_peaks_at_the_shift_and_is_read_by_displacement():
    torch.manual_seed(0)
    fme = build_expert("fme", C, G, S, proj_dim=16)
    f = torch.randn(1, 16, G, G)
    shifted = torch.roll(f, shifts=(1, 2), dims=(2, 3))                   # TIR(i + delta) = RGB(i), delta = (2, 1)
    V = fme.correlation(f * 4, shifted * 4)                               # (1, N, N), rows sum to 1
    assert V.shape == (1, G * G, G * G) and torch.allclose(V.sum(-1), torch.ones(1, G * G))
    i = 3 * G + 3                                                         # an interior RGB position
    assert int(V[0, i].argmax()) == (3 + 1) * G + (3 + 2)
    feats = torch.randn(2, 3, G * G, G * G)                               # any features of position pairs
    by = fme.by_displacement(feats)                                       # (2, 3, K, K)
    K = 2 * G - 1
    ref = torch.zeros(2, 3, K, K)
    count = torch.zeros(K, K)
    for i in range(G * G):
        for j in range(G * G):
            dy, dx = j // G - i // G, j % G - i % G
            ref[:, :, dy + G - 1, dx + G - 1] += feats[:, :, i, j]
            count[dy + G - 1, dx + G - 1] += 1
    assert torch.allclose(by, ref / count, atol=1e-5)


def test_expert_sizes_at_the_paper_preset_are_the_official_ones():
    """Linear + conv multiply-adds per call at ViT-B size, the official experts' (DESIGN.md): TRE 0.756 G, FME 4.33 G,
    DPE 7.555 G; and the cpu-mini experts keep their proportions of the tracker, 1 : 4-8 : 8-13."""
    from pmatrack_mini.config import get_config
    from pmatrack_mini.profile import _ExpertCall, count_macs

    def linear_conv(preset):
        cfg = get_config(preset, stage=2)
        m = cfg.model
        out = {}
        for n in EXPERTS:
            e = build_expert(n, m.embed_dim, m.feat_size, m.search_size, **cfg.align.expert_sizes(n)).eval()
            z, x = torch.randn(1, (m.template_size // m.patch_size) ** 2, m.embed_dim), torch.randn(1, m.feat_size ** 2, m.embed_dim)
            out[n] = count_macs(_ExpertCall(e), (z, x, z, x), output_key="params")["linear_conv"]
        return out

    paper = linear_conv("paper")
    for n, official in (("tre", 0.756e9), ("fme", 4.33e9), ("dpe", 7.555e9)):
        assert paper[n] == pytest.approx(official, rel=0.01), (n, paper[n])
    mini = linear_conv("cpu-mini")
    assert 4 <= mini["fme"] / mini["tre"] <= 8 and 8 <= mini["dpe"] / mini["tre"] <= 13, mini


def test_expert_sizes_that_do_not_fit_are_refused():
    from pmatrack_mini.config import get_config
    from pmatrack_mini.errors import PMATrackError

    with pytest.raises(ValueError, match="cannot halve 4 times"):
        build_expert("dpe", C, G, S, levels=4)
    with pytest.raises(PMATrackError, match=r"align.dpe_levels=4: the 8 x 8 search grid cannot halve 4 times"):
        get_config("cpu-mini", stage=2, align=dict(dpe_levels=4))
    with pytest.raises(PMATrackError, match="align.dpe_base"):
        get_config("cpu-mini", stage=2, align=dict(dpe_base=40))
    with pytest.raises(PMATrackError, match="align.dpe_heads=5"):
        get_config("cpu-mini", stage=2, align=dict(dpe_heads=5))
    with pytest.raises(PMATrackError, match="align.tre_readout"):
        get_config("cpu-mini", stage=2, align=dict(tre_readout="mean"))
    get_config("cpu-mini", stage=2, align=dict(dpe_levels=4, experts=("tre", "fme")))   # no DPE: nothing to fit


@pytest.mark.parametrize("readout", ["displacement", "pooled"])
def test_tre_readouts(readout):
    e = build_expert("tre", C, G, S, readout=readout)
    K = 2 * G - 1
    assert e.regress.in_features == (16 * K * K if readout == "displacement" else 16)
    assert e(*_tokens())["params"].shape == (2, 5)


def test_cell_mask():
    m = cell_mask(torch.tensor([[0.5, 0.5, 0.25, 0.25], [0.1, 0.1, 0.01, 0.01]]), 8)
    assert m.shape == (2, 64) and m[0].sum() == 4 and m[1].sum() == 1 and m[1, 0] == 1


# ----------------------------------------------------------------------------- measurement helpers (notebooks 02, 03)


def test_sinkhorn_truncation_shrinks_with_iterations_and_vanishes_at_convergence():
    from pmatrack_mini.models.experts.tre import sinkhorn_truncation

    g = torch.Generator().manual_seed(0)
    a = torch.softmax(3 * torch.randn(6, G * G, generator=g), 1)
    b = torch.softmax(3 * torch.randn(6, G * G, generator=g), 1)
    st = sinkhorn_truncation(a, b, G, 0.5, iters=(2, 30, 2000))
    assert st["row_error"].shape == st["hist_tv"].shape == st["mode_agrees"].shape == (3, 6)
    tv = st["hist_tv"].median(1).values
    assert tv[0] > tv[1] > tv[2] and st["hist_tv"][2].max() < 1e-4 and bool(st["mode_agrees"][2].all())
    assert st["row_error"][2].max() < 1e-4
    ia, ib = a.argmax(1), b.argmax(1)
    by_hand = ((ia % G - ib % G).float() ** 2 + (ia // G - ib // G).float() ** 2).sqrt()
    assert torch.allclose(st["peak_distance"], by_hand)


def test_target_responses_put_the_mass_on_the_target_cells():
    from pmatrack_mini.models.experts.tre import target_responses

    box = torch.tensor([[0.3125, 0.3125, 0.25, 0.25]])          # cells 1..2 x 1..2 of an 8 x 8 grid
    a, b = target_responses(box, box, G, floor=0.1)
    assert torch.allclose(a.sum(1), torch.ones(1)) and torch.equal(a, b)
    m = cell_mask(box, G)[0].bool()
    assert torch.allclose(a[0, m].sum(), 0.9 + 0.1 * m.sum().float() / G ** 2)


def test_fme_band_gates_average_to_the_gates_it_mixes_with():
    torch.manual_seed(0)
    e = build_expert("fme", C, G, S)
    rgb, tir = _tokens()
    out = e(rgb, tir)
    assert out["gates_rgb"].shape == out["gates_tir"].shape == (2, 2)
    assert torch.allclose(out["gates"], 0.5 * (out["gates_rgb"] + out["gates_tir"]))
    assert torch.allclose(out["gates_rgb"].sum(1), torch.ones(2))


def test_band_correlations_on_known_pairs():
    from pmatrack_mini.models.experts.fme import band_correlations

    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.avg_pool2d(torch.rand(2, 1, 68, 68, generator=g), 5, 1)     # smooth texture (64 x 64)
    same = band_correlations(img, img.clone())
    for band in ("raw", "low", "high_abs", "high"):
        assert torch.allclose(same[band], torch.ones(2, 1), atol=1e-5), band
    flipped = band_correlations(img, 1 - img)                   # inverted contrast: intensity and signed edges flip
    assert torch.allclose(flipped["raw"], -torch.ones(2, 1), atol=1e-5)
    assert torch.allclose(flipped["high"], -torch.ones(2, 1), atol=1e-5)
    assert torch.allclose(flipped["high_abs"], torch.ones(2, 1), atol=1e-5)
    shifted = band_correlations(img, img.clone(), shifts=(0, 4))              # misaligning lowers the agreement
    assert (shifted["high_abs"][:, 1] < 0.9).all() and torch.allclose(shifted["high_abs"][:, 0], torch.ones(2))
    valid = torch.ones(2, 2, 64, 64, dtype=torch.bool)
    valid[:, 1, :, :32] = False                                 # the TIR crop is black on its left half
    noisy = torch.cat([torch.zeros(2, 1, 64, 32), img[..., 32:]], -1)
    masked = band_correlations(img, noisy, valid)               # only the right half (minus a border) counts
    assert torch.allclose(masked["raw"], torch.ones(2, 1), atol=1e-5)


def test_erosion_matches_a_min_pool():
    from pmatrack_mini.models.experts.fme import _erode

    g = torch.Generator().manual_seed(0)
    m = torch.rand(3, 20, 24, generator=g) > 0.1
    ref = -torch.nn.functional.max_pool2d(-m[:, None].float(), 5, 1, 2)[:, 0] > 0.5     # pads with -inf: border clipped
    assert torch.equal(_erode(m, 2), ref)


def test_fme_pyramid_channels_last_is_the_contiguous_computation():
    """The pyramid's weights channels-last (faster on a CPU): the same outputs and gradients as the contiguous
    layout (the reference, the default), to float rounding, and weights load across the two layouts both ways."""
    import copy

    from pmatrack_mini.models.experts.fme import CorrelationPyramid, pyramids_channels_last

    torch.manual_seed(0)
    ref = CorrelationPyramid(8)
    fast = pyramids_channels_last(copy.deepcopy(ref))
    conv = lambda net: net.levels[0][2].weight                  # a c -> c convolution (c > 1: the layouts differ)
    assert conv(fast).is_contiguous(memory_format=torch.channels_last) and not conv(ref).is_contiguous(
        memory_format=torch.channels_last) and conv(ref).is_contiguous()
    x = torch.rand(3, 1, 16, 16)
    outs = []
    for net in (ref, fast):
        xi = x.clone().requires_grad_()
        y = net(xi)
        (y * torch.linspace(0, 1, y.numel()).view_as(y)).sum().backward()
        outs.append((y.detach(), xi.grad, [p.grad for p in net.parameters()]))
    (y0, g0, p0), (y1, g1, p1) = outs
    assert y0.abs().max() > 0
    assert torch.allclose(y0, y1, rtol=1e-5, atol=1e-6) and torch.allclose(g0, g1, rtol=1e-5, atol=1e-6)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(p0, p1))
    other = CorrelationPyramid(8)
    other.load_state_dict(fast.state_dict())                    # channels-last weights into the contiguous layout
    fast.load_state_dict(other.state_dict())                    # and back: each keeps its own layout
    assert conv(other).is_contiguous() and conv(fast).is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(conv(other), conv(ref)) and torch.equal(conv(fast), conv(ref))
    assert conv(pyramids_channels_last(fast, on=False)).is_contiguous()
