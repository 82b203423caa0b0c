"""TCMDA: the grid convention, the geometric prior, zero-initialised output, bi-directional inverse."""
import torch

from pmatrack_mini.geometry import apply_homography_torch, homography_in_cells, params_to_homography
from pmatrack_mini.models.tcmda import TCMDA, sample_at

G, P, C = 8, 16, 32


def _shift_h(dx_cells: float, dy_cells: float, B: int = 1) -> torch.Tensor:
    """A pure shift of the search crop by whole cells (crop px)."""
    return params_to_homography(torch.tensor([[dx_cells * P, dy_cells * P, 0.0, 0.0]] * B), (128 - 1) / 2)


def test_identity_points_sample_each_token_at_itself():
    torch.manual_seed(0)
    v = torch.randn(2, 5, G, G)
    ys, xs = torch.meshgrid(torch.arange(G), torch.arange(G), indexing="ij")
    pts = torch.stack([xs, ys], -1).float().view(1, G * G, 1, 2).expand(2, -1, -1, -1)
    out = sample_at(v, pts)                                                   # (2, 5, N, 1)
    # grid_sample round-trips cells through [-1, 1]: the point lands within ~G * eps of the cell, so the sample is off by
    # up to that fraction of a neighbour difference (3000 random maps: at most 5e-6); a wrong cell would be off by O(1)
    tol = 4 * G * torch.finfo(torch.float32).eps * 2 * v.abs().max()
    assert torch.allclose(out[..., 0], v.flatten(2), atol=float(tol), rtol=0)


def test_a_shift_of_k_cells_moves_the_sampled_features_by_k_cells():
    torch.manual_seed(0)
    m = TCMDA(C, G, P, heads=2, points=1)
    with torch.no_grad():
        m.offsets["rgb"].bias.zero_()                                         # dL = 0
    q = torch.randn(1, G * G, C)
    info = m.sampling_points("rgb", q, torch.eye(3)[None])
    ref = info["points"][0, :, 0, 0]                                          # identity: the token positions
    assert torch.allclose(info["prior"], torch.zeros_like(info["prior"]))
    H = _shift_h(2, -1)
    shifted = m.sampling_points("rgb", q, homography_in_cells(H, P))
    assert torch.allclose(shifted["prior"][0], torch.tensor([2.0, -1.0]).expand(G * G, 2), atol=1e-5)
    v = torch.randn(1, 3, G, G)
    a = sample_at(v, shifted["points"][:, :, :1, 0])[0, :, :, 0].view(3, G, G)    # token (i, j) reads (i - 1, j + 2)
    assert torch.allclose(a[:, 1:, :G - 2], v[0, :, :G - 1, 2:], atol=1e-5)
    assert torch.allclose(a[:, :, G - 2:], torch.zeros(3, G, 2))              # outside the map: zeros
    assert torch.allclose(ref, shifted["points"][0, :, 0, 0] - torch.tensor([2.0, -1.0]), atol=1e-5)


def test_untrained_tcmda_is_the_identity_and_learns():
    torch.manual_seed(0)
    m = TCMDA(C, G, P, heads=4, points=4)
    x_r, x_t = torch.randn(2, G * G, C, requires_grad=True), torch.randn(2, G * G, C)
    y_r, y_t, info = m(x_r, x_t, _shift_h(1.5, 0.5, B=2))
    assert torch.equal(y_r, x_r) and torch.equal(y_t, x_t)                   # zero output projection
    (y_r.sum() + y_t.sum()).backward()
    assert m.out["rgb"].weight.grad.abs().sum() > 0                           # but the residual can learn
    assert info["rgb"]["points"].shape == (2, G * G, 4, 4, 2)
    assert torch.allclose(info["rgb"]["weights"].sum(-1), torch.ones(2, G * G, 4))


def test_the_two_directions_use_exact_inverses():
    torch.manual_seed(0)
    m = TCMDA(C, G, P, heads=1, points=1)
    H = params_to_homography(torch.tensor([[20.0, -12.0, 0.2, -0.1]]), 63.5)
    _, _, info = m(torch.randn(1, G * G, C), torch.randn(1, G * G, C), H)
    rgb_target = info["rgb"]["prior"][0] + m.ref[0]                           # where RGB tokens look in TIR
    back = apply_homography_torch(torch.linalg.inv(homography_in_cells(H, P)), rgb_target[None])[0]
    assert torch.allclose(back, m.ref[0], atol=1e-4)
    tir_target = info["tir"]["prior"][0] + m.ref[0]                           # where TIR tokens look in RGB
    fwd = apply_homography_torch(homography_in_cells(H, P), tir_target[None])[0]
    assert torch.allclose(fwd, m.ref[0], atol=1e-4)
