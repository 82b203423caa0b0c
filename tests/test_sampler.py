import numpy as np
import torch
import pytest

from pmatrack_mini.config import get_config, merge
from pmatrack_mini.data import load_dataset
from pmatrack_mini.data.crops import crop_matrix
from pmatrack_mini.data.sampler import PairSampler
from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.geometry import apply_homography, warp_boxes, xywh_to_cxcywh


@pytest.fixture(scope="module")
def samples():
    return {s.name: s for s in load_dataset("data_samples")}


def test_crop_matrix_maps_centre_and_side():
    C = crop_matrix(100.0, 50.0, side=64.0, out=128)
    np.testing.assert_allclose(apply_homography(C, [[100, 50]]), [[63.5, 63.5]])   # centre of a 128 px crop
    # a box of 32 px centred there covers half of the crop
    b = warp_boxes(C, np.array([[84.5, 34.5, 32, 32]]))
    np.testing.assert_allclose(xywh_to_cxcywh(b[0]) / 128, [0.5, 0.5, 0.5, 0.5])


def test_batch_shapes_boxes_and_determinism(samples):
    cfg = get_config("cpu-mini")
    s = PairSampler(list(samples.values()), cfg.model, cfg.train)
    a, b = s.batch(3, 8, seed=1), s.batch(3, 8, seed=1)
    assert a["x_rgb"].shape == (8, 3, 128, 128) and a["z_tir"].shape == (8, 3, 64, 64)
    assert float(a["x_rgb"].max()) <= 1.0 and a["box"].shape == (8, 4)
    for k in a:
        assert np.array_equal(a[k].numpy(), b[k].numpy(), equal_nan=True)
    assert not np.array_equal(a["box"].numpy(), s.batch(4, 8, seed=1)["box"].numpy())
    # OSTrack's jitter keeps the target inside the search region
    assert (a["box"][:, :2] > 0.05).all() and (a["box"][:, :2] < 0.95).all()


def test_offsets_zero_when_aligned_and_exact_when_not(samples):
    cfg = get_config("cpu-mini")
    aligned = PairSampler([samples["none_lowlight"]], cfg.model, cfg.train).batch(0, 16)
    assert aligned["offset"].abs().max() < 0.75       # TIR boxes are warped GT, rounded to 0.01 px
    naive = merge(cfg.train, dict(prealign="none"))    # naive crops keep the generator's whole offset
    big = PairSampler([samples["large_fastmotion"]], cfg.model, naive).batch(0, 16)
    norms = big["offset"].norm(dim=1)
    assert norms.min() > 10                           # 40+ RGB px at a crop scale of roughly 1
    # H_crop maps the RGB box centre in the crop onto the TIR box centre in the crop
    out = cfg.model.search_size
    for i in range(4):
        H = big["H_crop"][i].double().numpy()
        c_rgb = big["box"][i, :2].double().numpy() * out - 0.5
        c_tir = big["tir_box"][i, :2].double().numpy() * out - 0.5
        np.testing.assert_allclose(apply_homography(H, c_rgb[None])[0], c_tir, atol=1.0)


def test_sampler_rejects_empty():
    cfg = get_config("cpu-mini")
    with pytest.raises(PMATrackError, match="at least one sequence"):
        PairSampler([], cfg.model, cfg.train)


def test_tir_crop_through_the_true_homography_puts_the_target_where_rgb_has_it(samples):
    from pmatrack_mini.data.crops import crop_around, crop_pair

    seq = samples["large_fastmotion"]
    t = 10
    center, side = crop_around(seq.gt_visible[t], 4.0)
    _, crop, _, C_tir = crop_pair(seq.rgb(t), seq.tir(t), center, side, 128, seq.homography[t])
    crop = crop[..., 0].astype(float)
    assert abs(C_tir[2, :2]).max() > 0                  # a perspective warp (the rig has perspective)
    assert crop[56:72, 56:72].mean() > np.median(crop) + 40   # the warm target sits at the centre


def test_first_frame_prealignment_centres_the_warm_template(samples):
    cfg = get_config("cpu-mini")
    seqs = [samples["large_fastmotion"]]
    naive = PairSampler(seqs, cfg.model, merge(cfg.train, dict(prealign="none"))).batch(0, 8)
    first = PairSampler(seqs, cfg.model, cfg.train).batch(0, 8)
    centre = lambda z: z[:, 0, 24:40, 24:40].mean((1, 2)) - z[:, 0].mean((1, 2))   # warm centre vs crop mean
    assert (centre(first["z_tir"]) > 0.1).all()
    assert centre(naive["z_tir"]).mean() < centre(first["z_tir"]).mean() - 0.1
    assert torch.equal(naive["x_rgb"], first["x_rgb"])                              # same pairs, same RGB crops
    with pytest.raises(PMATrackError, match="template_frame"):
        PairSampler(seqs, cfg.model, cfg.train, template_frame="last")


def test_loader_batches_are_the_same_for_any_number_of_workers(samples):
    """Item k of the loader is the batch of step start + k for this rank, whether the loop's own thread or two
    worker processes cut it, in step order."""
    from pmatrack_mini.data.sampler import batch_loader

    cfg = get_config("cpu-mini", stage=2)
    seqs = list(samples.values())
    sampler = PairSampler(seqs, cfg.model, cfg.train)
    expected = [sampler.batch(step, 2, seed=0, rank=1, float_images=False) for step in (5, 6, 7)]
    assert expected[0]["x_rgb"].dtype == torch.uint8
    assert torch.equal(expected[0]["x_rgb"].float() / 255, sampler.batch(5, 2, seed=0, rank=1)["x_rgb"])
    for workers in (0, 2):
        got = list(batch_loader(seqs, cfg.model, merge(cfg.train, dict(num_workers=workers)), 5, 8, 2, rank=1))
        assert len(got) == 3
        for a, b in zip(expected, got):
            for k in a:
                np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)   # NaN where NaN


def test_inside_fraction_by_hand():
    from pmatrack_mini.data.sampler import inside_fraction

    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2],      # inside
                          [1.0, 0.5, 0.2, 0.2],      # half out on the right
                          [0.0, 0.0, 0.2, 0.2],      # a quarter in the corner
                          [1.5, 0.5, 0.2, 0.2]])     # outside
    assert torch.allclose(inside_fraction(boxes), torch.tensor([1.0, 0.5, 0.25, 0.0]))


def test_target_visibility_reads_the_template_and_search_frames(samples):
    from pmatrack_mini.data.sampler import target_visibility

    cfg = get_config("cpu-mini")
    seqs = list(samples.values())
    naive = PairSampler(seqs, cfg.model, merge(cfg.train, dict(prealign="none")))
    b = naive.batch(step=0, batch_size=64, seed=0)
    assert b["template_frame"].shape == (64,)
    v = target_visibility(naive, b)
    for i in range(64):
        seq = seqs[int(b["seq"][i])]
        assert v["template_occluded"][i] == bool(seq.attributes["occlusion"][int(b["template_frame"][i])])
        assert v["search_dark"][i] == bool(seq.attributes["low_illumination"][int(b["frame"][i])])
    assert v["template_occluded"].any()              # the samples hold occlusion segments
    assert (v["rgb_inside"] > 0.3).all()             # the jitter never pushes the RGB target out of the crop
    assert (v["tir_inside"] == 0).any()              # naive crops of large offsets miss the TIR target
