import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pmatrack_mini import geometry as G

finite = st.floats(-50, 50, allow_nan=False)
scales = st.floats(0.5, 2.0)


def test_box_formats_round_trip_numpy_and_torch():
    b = np.array([[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 1.0, 2.0]])
    np.testing.assert_allclose(G.xywh_to_xyxy(b)[0], [10, 20, 40, 60])
    np.testing.assert_allclose(G.xywh_to_cxcywh(b)[0], [25, 40, 30, 40])
    for fwd, back in [(G.xywh_to_xyxy, G.xyxy_to_xywh), (G.xywh_to_cxcywh, G.cxcywh_to_xywh)]:
        np.testing.assert_allclose(back(fwd(b)), b)
        t = torch.tensor(b)
        assert torch.allclose(back(fwd(t)), t)
    np.testing.assert_allclose(G.cxcywh_to_xyxy(G.xyxy_to_cxcywh(G.xywh_to_xyxy(b))), G.xywh_to_xyxy(b))


def test_params_identity_shift_and_scale():
    assert np.allclose(G.homography_from_params(), np.eye(3))
    H = G.homography_from_params(dx=3, dy=-2)
    np.testing.assert_allclose(G.apply_homography(H, [[5, 5]]), [[8, 3]])
    H = G.homography_from_params(sx=2, sy=0.5, center=(10, 10))
    np.testing.assert_allclose(G.apply_homography(H, [[10, 10], [12, 14]]), [[10, 10], [14, 12]])


@settings(max_examples=60, deadline=None)
@given(finite, finite, scales, scales, st.floats(-20, 20), finite, finite, scales, scales)
def test_compose_and_invert_round_trip(dx, dy, sx, sy, ang, dx2, dy2, sx2, sy2):
    A = G.homography_from_params(dx, dy, sx, sy, center=(30, 20), angle_deg=ang)
    B = G.homography_from_params(dx2, dy2, sx2, sy2, center=(-5, 7))
    pts = np.array([[0.0, 0.0], [13.0, -7.0], [40.0, 25.0]])
    np.testing.assert_allclose(G.compose(G.invert(A), A), np.eye(3), atol=1e-9)
    np.testing.assert_allclose(G.apply_homography(G.compose(A, B), pts),
                               G.apply_homography(A, G.apply_homography(B, pts)), atol=1e-7)
    np.testing.assert_allclose(G.apply_homography(G.invert(G.compose(A, B)), G.apply_homography(G.compose(A, B), pts)),
                               pts, atol=1e-7)


def test_resize_homography_matches_cv2_resize():
    img = np.zeros((64, 80), np.float32)
    img[20:30, 40:52] = 1.0
    small = cv2.resize(img, (40, 32), interpolation=cv2.INTER_LINEAR)
    H = G.resize_homography((80, 64), (40, 32))
    warped = G.warp_image(img, H, (40, 32))
    # a factor-2 linear resize averages 2x2 blocks; warping samples between them: same blob centre
    def centroid(a):
        ys, xs = np.nonzero(a > 0.25)
        w = a[ys, xs]
        return np.array([np.sum(xs * w), np.sum(ys * w)]) / np.sum(w)
    np.testing.assert_allclose(centroid(small), centroid(warped), atol=0.05)
    box = np.array([[40, 20, 12, 10]])  # covers pixels 40..51, 20..29
    np.testing.assert_allclose(G.warp_boxes(H, box), [[20, 10, 6, 5]])


def test_warp_boxes_translation_and_scale():
    box = np.array([[10.0, 10.0, 20.0, 10.0]])
    np.testing.assert_allclose(G.warp_boxes(G.translation(5, -3), box), [[15, 7, 20, 10]])
    H = G.homography_from_params(sx=2, sy=2, center=(19.5, 14.5))  # scale about the box centre
    out = G.warp_boxes(H, box)
    np.testing.assert_allclose(out[0, 2:], [40, 20])
    np.testing.assert_allclose(G.box_center(out), G.box_center(box))


def _smooth_image(h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.random((6, 8)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("params", [dict(dx=3.3, dy=-2.1), dict(sx=1.2, sy=0.9, center=(30, 20)),
                                    dict(dx=1.5, angle_deg=7, center=(32, 24))])
def test_torch_feature_warp_matches_cv2(params):
    img = _smooth_image()
    H = G.homography_from_params(**params)
    H[2, :2] = [2e-4, -1e-4]  # a little perspective
    ref = G.warp_image(img, H, (64, 48))
    out = G.warp_features(torch.from_numpy(img)[None, None].double(), torch.from_numpy(H)[None])[0, 0].numpy()
    inner = (slice(3, -3), slice(3, -3))  # borders differ by cv2's half-pixel constant border
    valid = (ref[inner] > 0) & (out[inner] > 0)
    assert valid.mean() > 0.7
    # cv2 quantises interpolation weights to 1/32: agreement to a few 1e-3 on a [0, 1] image
    assert np.abs(ref[inner][valid] - out[inner][valid]).max() < 0.02


def test_feature_warp_is_differentiable_and_batched():
    feat = torch.randn(2, 3, 8, 10, requires_grad=True)
    H = torch.tensor(np.stack([G.translation(1.5, 0.5), G.homography_from_params(sx=1.1, center=(4, 3))]),
                     dtype=torch.float32, requires_grad=True)
    out = G.warp_features(feat, H)
    assert out.shape == (2, 3, 8, 10)
    out.square().sum().backward()
    assert feat.grad is not None and torch.isfinite(feat.grad).all() and feat.grad.abs().sum() > 0
    assert H.grad is not None and H.grad.abs().sum() > 0
    ident = G.warp_features(feat, torch.eye(3).expand(2, 3, 3))
    assert torch.allclose(ident, feat, atol=1e-5)


def test_warp_features_rejects_bad_shapes():
    with pytest.raises(ValueError, match="B,C,h,w"):
        G.warp_features(torch.zeros(3, 8, 8), torch.eye(3)[None])


def test_alignment_params_invariants():
    c = torch.tensor([[40.0, 30.0], [10.0, 70.0]], dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
    assert torch.allclose(G.alignment_params(eye, c), torch.zeros(2, 4, dtype=torch.float64))
    shift = torch.from_numpy(np.stack([G.translation(5, -3), G.translation(-2, 7)]))
    assert torch.allclose(G.alignment_params(shift, c), torch.tensor([[5.0, -3, 0, 0], [-2, 7, 0, 0]], dtype=torch.float64))
    scale = torch.from_numpy(np.stack([G.homography_from_params(sx=1.5, sy=0.8, center=tuple(p)) for p in c.numpy()]))
    expect = torch.tensor([[0, 0, np.log(1.5), np.log(0.8)]] * 2, dtype=torch.float64)
    assert torch.allclose(G.alignment_params(scale, c), expect, atol=1e-12)
    # shift + scale about c: both recovered
    both = torch.from_numpy(np.stack([G.homography_from_params(dx=4, dy=1, sx=1.2, sy=1.2, center=tuple(p)) for p in c.numpy()]))
    assert torch.allclose(G.alignment_params(both, c)[:, :2], torch.tensor([[4.0, 1.0]] * 2, dtype=torch.float64))
    assert torch.allclose(G.alignment_params(both, c)[:, 2:].exp(), torch.full((2, 2), 1.2, dtype=torch.float64))
