"""Pictures: TCMDA's sampling points land where the info dict says, in crop pixels."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pmatrack_mini.evaluation.viz import cells_to_crop_px, draw_query, draw_sampling_points  # noqa: E402
from pmatrack_mini.geometry import homography_in_cells  # noqa: E402


def test_cells_to_crop_px_inverts_homography_in_cells():
    P = 16
    H = torch.tensor([[[1.1, 0.0, 7.0], [0.0, 0.9, -3.0], [0.0, 0.0, 1.0]]])
    Hc = homography_in_cells(H, P)[0]
    cell = torch.tensor([2.0, 5.0, 1.0])
    px = torch.tensor([*cells_to_crop_px(cell[:2], P), 1.0])
    mapped_px = H[0] @ px
    assert torch.allclose(torch.as_tensor(cells_to_crop_px((Hc @ cell)[:2], P)), mapped_px[:2], atol=1e-5)
    assert cells_to_crop_px(np.zeros(2), P).tolist() == [7.5, 7.5]            # token 0's centre pixel


def test_draw_sampling_points_places_prior_and_points():
    G, P, h, K = 4, 16, 2, 3
    prior = torch.zeros(1, G * G, 2)
    prior[0, 5] = torch.tensor([1.0, -0.5])                                   # token 5 = cell (1, 1)
    points = torch.rand(1, G * G, h, K, 2) * G
    weights = torch.softmax(torch.randn(1, G * G, h, K), -1)
    fig, ax = plt.subplots()
    x, y = draw_query(ax, 5, G, P)
    assert (x, y) == (1 * P + 7.5, 1 * P + 7.5)
    draw_sampling_points(ax, dict(prior=prior, points=points, weights=weights), 5, P)
    cross = ax.lines[0].get_xydata()[0]
    np.testing.assert_allclose(cross, [(1 + 1.0) * P + 7.5, (1 - 0.5) * P + 7.5])
    assert len(ax.collections) == h
    np.testing.assert_allclose(ax.collections[1].get_offsets(), points[0, 5, 1].numpy() * P + 7.5, rtol=1e-6)
    sizes = ax.collections[0].get_sizes()
    np.testing.assert_allclose(sizes / sizes.sum(), weights[0, 5, 0].numpy(), rtol=1e-5)   # area ~ weight A
    plt.close(fig)


def test_score_bars_draws_each_rows_mean_with_its_bootstrap_interval():
    from pmatrack_mini.evaluation.intervals import mean_interval
    from pmatrack_mini.evaluation.viz import score_bars

    rng = np.random.default_rng(0)
    per_seq = {lab: {"dynamic": {f"s{i}": {"PR": float(v), "NPR": float(v) / 2, "SR": float(v) / 3}
                                 for i, v in enumerate(rng.uniform(lo, lo + 0.3, 12))}}
               for lab, lo in (("a", 0.1), ("b", 0.6))}
    fig, stats = score_bars(per_seq, ["a", "b"], "dynamic")
    for lab in ("a", "b"):
        values = [s["PR"] for s in per_seq[lab]["dynamic"].values()]
        mean, low, high = mean_interval(values)
        assert np.allclose(stats[lab]["PR"], (100 * mean, 100 * low, 100 * high))
        assert 100 * low < stats[lab]["PR"][0] < 100 * high
    ax = fig.axes[0]
    widths = [p.get_width() for p in ax.patches]
    assert np.allclose(widths, [stats["a"]["PR"][0], stats["b"]["PR"][0]])     # bars at the means, in the rows' order
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    plt.close(fig)


def test_redraw_panel_starts_empty_and_redraws_with_every_controls_values():
    import ipywidgets as widgets

    from pmatrack_mini.evaluation.viz import redraw_panel

    calls = []
    controls = dict(level=widgets.Dropdown(options=["small", "large"], value="small"), pair=widgets.IntSlider(0, 0, 7))
    panel = redraw_panel(lambda level, pair: calls.append((level, pair)), controls)
    assert isinstance(panel, widgets.Output) and calls == [] and panel.outputs == ()   # nothing drawn, nothing stored
    controls["pair"].value = 3
    controls["level"].value = "large"
    assert calls == [("small", 3), ("large", 3)]
