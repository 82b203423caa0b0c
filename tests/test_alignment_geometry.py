"""The alignment convention: parameters <-> homographies at the crop centre, composition by products, H0 from two
boxes, and the ground truth of the crops the network is actually fed."""
import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pmatrack_mini.config import get_config, merge
from pmatrack_mini.data import load_dataset
from pmatrack_mini.data.sampler import PairSampler
from pmatrack_mini.geometry import (alignment_params, apply_homography, box_center, box_corners, crop_center,
                                    fit_box_homography, homography_from_params, invert_homography_torch,
                                    normalized_to_crop_px, params_to_homography, xywh_to_cxcywh)

C = crop_center(128)
params_st = st.tuples(st.floats(-60, 60), st.floats(-60, 60), st.floats(-0.5, 0.5), st.floats(-0.5, 0.5))


@settings(max_examples=60, deadline=None)
@given(params_st)
def test_params_homography_round_trip(p):
    params = torch.tensor([p], dtype=torch.float64)
    H = params_to_homography(params, C)
    assert torch.allclose(alignment_params(H, C), params, atol=1e-9)
    # the anchor moves by exactly (dx, dy)
    c = torch.tensor([[[C, C]]], dtype=torch.float64)
    moved = (H[0, :2, :2] @ c[0, 0] + H[0, :2, 2]) - c[0, 0]
    assert torch.allclose(moved, params[0, :2], atol=1e-9)
    # and the inverse homography gives the inverse map
    assert torch.allclose(invert_homography_torch(H) @ H, torch.eye(3, dtype=torch.float64)[None], atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(params_st, params_st)
def test_stages_compose_by_products_not_by_adding(p1, p2):
    a = torch.tensor([p1], dtype=torch.float64)
    b = torch.tensor([p2], dtype=torch.float64)
    composed = params_to_homography(a, C) @ params_to_homography(b, C)
    # the product maps points as applying b first, then a
    x = torch.tensor([10.0, 100.0, 1.0], dtype=torch.float64)
    step = params_to_homography(a, C)[0] @ (params_to_homography(b, C)[0] @ x)
    assert torch.allclose(composed[0] @ x, step, atol=1e-9)
    # adding the parameters agrees with the product only when the first scale is 1
    added = params_to_homography(a + b, C)
    if abs(p1[2]) > 0.05 and abs(p2[0]) > 5:
        assert not torch.allclose(added, composed, atol=1e-3)


def test_fit_box_homography_equals_opencv_on_the_corners():
    rgb, tir = np.array([40.0, 30.0, 24.0, 36.0]), np.array([12.5, 20.25, 13.0, 17.5])
    H = fit_box_homography(rgb, tir)
    ref, _ = cv2.findHomography(box_corners(rgb[None])[0], box_corners(tir[None])[0])
    np.testing.assert_allclose(H, ref / ref[2, 2], atol=1e-9)
    np.testing.assert_allclose(apply_homography(H, box_center(rgb)[None])[0], box_center(tir), atol=1e-9)


def test_one_box_centre_two_coordinate_systems():
    b = np.array([10.0, 20.0, 31.0, 41.0])
    np.testing.assert_allclose(box_center(b), [25.0, 40.0])                       # pixel centres, LasHeR
    np.testing.assert_allclose(xywh_to_cxcywh(b)[:2], [25.5, 40.5])               # edges: 0.5 px apart
    np.testing.assert_allclose(normalized_to_crop_px(xywh_to_cxcywh(b)[:2] / 128, 128), box_center(b))


@pytest.fixture(scope="module")
def large_sequence():
    return [s for s in load_dataset("data_samples") if s.name.startswith("large")]


def test_targets_from_the_exact_homography_in_the_crops_fed_to_the_network(large_sequence):
    """Zero residual: the TIR crop cut through the true H_t is pixel-aligned with the RGB crop; a known residual
    Q reappears, conjugated by the crop matrix, as the ground truth (at the crop centre)."""
    cfg = get_config("cpu-mini")
    tcfg = merge(cfg.train, dict(prealign="mixture", residual_mix=(1, 0, 0, 0)))
    b = PairSampler(large_sequence, cfg.model, tcfg).batch(0, 8)
    gt = alignment_params(b["H_crop"].double(), C)
    assert gt[:, :2].abs().max() < 0.05 and gt[:, 2:].abs().max() < 1e-3
    # the TIR target sits where the RGB target is
    assert torch.allclose(b["tir_box"][:, :2], b["box"][:, :2], atol=0.01)
    # large residuals: the ground truth follows Q (RGB image px) scaled into crop px
    tcfg = merge(cfg.train, dict(prealign="mixture", residual_mix=(0, 0, 1, 0), residual_scale=0.0))
    b = PairSampler(large_sequence, cfg.model, tcfg).batch(1, 16)
    gt = alignment_params(b["H_crop"].double(), normalized_to_crop_px(b["box"][:, :2].double(), 128))
    shift_img_px = gt[:, :2].norm(dim=1) * b["px_per_crop_px"].double()
    assert shift_img_px.max() <= tcfg.residual_large_px + 0.5 and shift_img_px.max() > 10


def test_naive_crops_keep_the_generator_offset(large_sequence):
    cfg = get_config("cpu-mini")
    b = PairSampler(large_sequence, cfg.model, merge(cfg.train, dict(prealign="none"))).batch(0, 8)
    assert (b["offset"].norm(dim=1) > 10).float().mean() > 0.5          # large offsets remain in naive crops
    first = PairSampler(large_sequence, cfg.model, cfg.train).batch(0, 8)   # first-frame: the drift only
    assert first["offset"].norm(dim=1).median() < b["offset"].norm(dim=1).median()
