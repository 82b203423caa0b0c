import cv2
import numpy as np
import pytest

from pmatrack_mini.data.dataset import load_sequence
from pmatrack_mini.data.synth import OFFSET_LEVELS, SynthConfig, render_sequence
from pmatrack_mini.data.synth_sets import generate_dataset, read_record, samples_record, write_sequence
from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.evaluation.reference import center_displacement
from pmatrack_mini.geometry import apply_homography, box_center, invert, resize_homography, warp_boxes


@pytest.fixture(scope="module")
def seqs():
    out = {}
    for level in OFFSET_LEVELS:
        out[level] = [render_sequence(SynthConfig(frames=40, offset=level), seed) for seed in range(12)]
    return out


def test_modalities_and_resolutions():
    s = render_sequence(SynthConfig(frames=12, offset="small"), 0)
    assert s["rgb"].shape == (12, 256, 320, 3) and s["tir"].shape == (12, 128, 160)
    s2 = render_sequence(SynthConfig(frames=12, offset="small", rgb_size=(200, 160), tir_size=(120, 100)), 0)
    assert s2["rgb"].shape[1:3] == (160, 200) and s2["tir"].shape[1:] == (100, 120)
    # RGB is coloured; TIR is one channel
    assert np.abs(s["rgb"][..., 0].astype(int) - s["rgb"][..., 1]).mean() > 10


def test_no_pixelwise_function_maps_rgb_to_tir():
    """Warp TIR back onto RGB exactly; grey level of RGB explains little of the TIR variance."""
    s = render_sequence(SynthConfig(frames=10, offset="small", challenges=()), 3)
    ratios = []
    for t in range(0, 10, 3):
        back = cv2.warpPerspective(s["tir"][t].astype(np.float32), invert(s["homography"][t]), (320, 256),
                                   flags=cv2.INTER_LINEAR)
        grey = cv2.cvtColor(s["rgb"][t], cv2.COLOR_RGB2GRAY)
        valid = back > 0
        g, v = grey[valid] // 8, back[valid]
        cond_means = np.array([v[g == k].mean() if np.any(g == k) else 0 for k in range(32)])
        eta2 = np.var(cond_means[g]) / np.var(v)  # correlation ratio: 1 = a function of RGB grey
        ratios.append(eta2)
    assert max(ratios) < 0.5


def test_offset_ranges_per_level(seqs):
    disp = {lvl: np.stack([s["displacement"] for s in ss]) for lvl, ss in seqs.items()}
    assert disp["none"].max() < 1e-6
    assert disp["small"].max() <= 15.0                         # LasHeR-Unaligned regime
    assert disp["small"].mean() > 1.0
    sizes = np.stack([s["visible"][:, 2:].max(axis=1) for s in seqs["large"]])
    for d, sz in zip(disp["large"], sizes):                     # MUART244 regime, each sequence
        assert d.max() >= 40.0 and d.max() >= sz.mean()
    assert np.median(disp["large"]) >= 30.0


def test_dynamic_level_outruns_first_frame_prealignment(seqs):
    """MUART244's moving-platform regime: a homography fitted to the first frame's boxes falls behind."""
    mean = {lvl: np.array([s["prealign_residual"].mean() for s in ss]) for lvl, ss in seqs.items()}
    peak = {lvl: np.array([s["prealign_residual"].max() for s in ss]) for lvl, ss in seqs.items()}
    assert (mean["dynamic"] > 20).mean() >= 2 / 3 and (peak["dynamic"] > 20).all()
    assert peak["small"].max() < 10 and mean["large"].max() < 12      # a static rig: H0 stays good
    for s in seqs["dynamic"]:
        np.testing.assert_array_equal(s["attributes"]["prealign_drift"], s["prealign_residual"] > 15)
        np.testing.assert_allclose(warp_boxes(s["homography"], s["visible"]), s["infrared"], atol=1e-9)
    assert np.mean([s["attributes"]["prealign_drift"].mean() for s in seqs["dynamic"]]) > 0.5


def test_modality_failure_removes_the_target_from_one_modality_only():
    plain = render_sequence(SynthConfig(frames=40, offset="small", challenges=()), 3)
    seen = set()
    for seed in range(3, 9):
        s = render_sequence(SynthConfig(frames=40, offset="small", challenges=(), failure=True), seed)
        ref = render_sequence(SynthConfig(frames=40, offset="small", challenges=()), seed) if seed != 3 else plain
        fail = s["attributes"]["modality_failure"]
        assert 6 <= fail.sum() <= 10 and not fail[:4].any()
        failed = s["meta"]["failed_modality"]
        seen.add(failed)
        np.testing.assert_array_equal(s["visible"], ref["visible"])          # same scene and motion otherwise
        np.testing.assert_array_equal(s["rgb"][~fail], ref["rgb"][~fail])
        np.testing.assert_array_equal(s["tir"][~fail], ref["tir"][~fail])
        t = int(np.flatnonzero(fail)[len(np.flatnonzero(fail)) // 2])
        if failed == "rgb":
            assert s["rgb"][t].mean() < 12 and np.array_equal(s["tir"][t], ref["tir"][t])
        else:
            box = s["infrared"][t].round().astype(int)
            patch = lambda img: img[box[1]:box[1] + box[3], box[0]:box[0] + box[2]].astype(float).mean()
            assert patch(s["tir"][t]) < patch(ref["tir"][t]) - 20          # the warm target is gone
            assert np.array_equal(s["rgb"][t], ref["rgb"][t])
    assert seen == {"rgb", "tir"}
    assert not plain["attributes"]["modality_failure"].any()


def test_homography_consistent_with_boxes(seqs):
    for s in seqs["large"][:4] + seqs["small"][:4]:
        np.testing.assert_allclose(warp_boxes(s["homography"], s["visible"]), s["infrared"], atol=1e-9)
        # H_t = S_res @ (rig, drift): removing the resolution change leaves a near-identity scale
        S = resize_homography((320, 256), (160, 128))
        rest = invert(S) @ s["homography"][0]
        assert abs(rest[0, 0] - 1) < 0.2 and abs(rest[2, 2] - 1) < 1e-9


def test_written_files_agree_and_reload(tmp_path):
    s = render_sequence(SynthConfig(frames=15, offset="large"), 5)
    write_sequence(s, tmp_path / "seq")
    seq = load_sequence(tmp_path / "seq")
    assert len(seq) == 15 and seq.sizes() == ((320, 256), (160, 128))
    np.testing.assert_allclose(seq.gt_visible, s["visible"])
    np.testing.assert_allclose(warp_boxes(seq.homography, seq.gt_visible), seq.gt_infrared, atol=0.006)
    np.testing.assert_allclose(center_displacement(seq), s["displacement"], atol=1e-6)
    assert set(seq.attributes) >= {"low_illumination", "thermal_crossover", "occlusion", "fast_motion",
                                   "large_offset", "distractor", "prealign_drift"}
    assert not list(tmp_path.glob(".*partial"))


def test_deterministic_for_a_seed():
    a = render_sequence(SynthConfig(frames=12, offset="small"), 42)
    b = render_sequence(SynthConfig(frames=12, offset="small"), 42)
    c = render_sequence(SynthConfig(frames=12, offset="small"), 43)
    assert np.array_equal(a["rgb"], b["rgb"]) and np.array_equal(a["tir"], b["tir"])
    assert np.array_equal(a["homography"], b["homography"])
    assert not np.array_equal(a["rgb"], c["rgb"])


def _target_contrast(s, t, which):
    """|mean inside target - mean of a ring around it| in the given modality."""
    if which == "rgb":
        img = cv2.cvtColor(s["rgb"][t], cv2.COLOR_RGB2GRAY).astype(float)
        x, y, w, h = s["visible"][t].astype(int)
    else:
        img = s["tir"][t].astype(float)
        x, y, w, h = np.round(s["infrared"][t]).astype(int)
    inner = img[y + 1:y + h - 1, x + 1:x + w - 1].mean()
    ring = np.concatenate([img[max(y - 4, 0):y, x:x + w].ravel(), img[y + h:y + h + 4, x:x + w].ravel()])
    return abs(inner - ring.mean()), img.std()


def test_challenges_degrade_their_modality():
    s = render_sequence(SynthConfig(frames=60, offset="none", challenges=("low_illumination", "thermal_crossover")), 1)
    li, tc = s["attributes"]["low_illumination"], s["attributes"]["thermal_crossover"]
    assert li.sum() >= 10 and tc.sum() >= 10 and not li[:5].any()
    t_li = np.flatnonzero(li)[len(np.flatnonzero(li)) // 2]
    t_tc = np.flatnonzero(tc)[len(np.flatnonzero(tc)) // 2]
    clean = [t for t in range(5)]
    assert s["rgb"][t_li].mean() < 0.3 * np.mean([s["rgb"][t].mean() for t in clean])   # dark RGB
    warm = np.mean([_target_contrast(s, t, "tir")[0] for t in clean])
    assert _target_contrast(s, t_tc, "tir")[0] < 0.35 * warm                            # target ~ background in TIR


def test_occlusion_partial_then_full_and_distractors():
    s = render_sequence(SynthConfig(frames=60, offset="none", challenges=("occlusion",)), 2)
    occ = np.flatnonzero(s["attributes"]["occlusion"])
    assert len(occ) >= 10
    ref = _target_contrast(s, 0, "tir")[0]
    mid = occ[len(occ) // 2]
    # in the middle of the sweep the cold occluder hides the warm target completely
    x, y, w, h = s["visible"][mid].astype(int)
    assert s["rgb"][mid, y:y + h, x:x + w].std(axis=(0, 1)).max() < 12
    assert ref > 40
    assert s["attributes"]["distractor"].dtype == bool


def test_fast_motion_moves_faster():
    s = render_sequence(SynthConfig(frames=80, offset="none", challenges=("fast_motion",)), 4)
    fm = s["attributes"]["fast_motion"]
    step = np.linalg.norm(np.diff(box_center(s["visible"]), axis=0), axis=1)
    assert step[fm[1:]].mean() > 2.5 * step[~fm[1:]].mean()


def test_bad_config_is_rejected():
    with pytest.raises(PMATrackError, match="offset"):
        SynthConfig(offset="huge")
    with pytest.raises(PMATrackError, match="challenge"):
        SynthConfig(challenges=("rain",))
    with pytest.raises(PMATrackError, match="frames"):
        SynthConfig(frames=3)
    with pytest.raises(PMATrackError, match="GiB in memory"):
        SynthConfig(frames=10**9)


def test_parallax_drift_changes_over_time(seqs):
    s = seqs["small"][0]
    back = invert(resize_homography((320, 256), (160, 128)))
    shifts = np.stack([apply_homography(back @ h, [[160, 128]])[0] for h in s["homography"]])
    assert np.ptp(shifts, axis=0).max() > 0.5   # the offset is not a fixed transform


def test_data_samples_are_what_the_documented_command_regenerates(tmp_path, samples_dir):
    """data_samples/README says `pmatrack-mini synth data_samples --preset samples` regenerates them."""
    from pmatrack_mini.data.synth_sets import SAMPLE_FRAMES, SAMPLE_SET

    name, offset, challenges, seed = SAMPLE_SET[3]
    s = render_sequence(SynthConfig(frames=SAMPLE_FRAMES, offset=offset, challenges=challenges), seed)
    write_sequence(s, tmp_path / name)
    for f in ("visible.txt", "infrared.txt", "homography.txt", "attributes.txt"):
        assert (tmp_path / name / f).read_text() == (samples_dir / name / f).read_text(), f
    assert read_record(samples_dir) == samples_record()


def _make(folder, **kw):
    args = dict(sequences=1, cfg=SynthConfig(frames=10, offset="none", challenges=()), seed=3, progress=False)
    args.update(kw)
    return generate_dataset(folder, **args)


def test_generated_folders_record_their_parameters(tmp_path):
    from pmatrack_mini import __version__

    _make(tmp_path / "d", sequences=2)
    rec = read_record(tmp_path / "d")
    assert rec["sequences"] == 2 and rec["frames"] == 10 and rec["offset"] == "none" and rec["seed"] == 3
    assert rec["rgb_size"] == [320, 256] and rec["challenges"] == [] and rec["generator"].endswith(__version__)
    assert (tmp_path / "d" / "list.txt").read_text().split() == ["synth_none_0003_000", "synth_none_0003_001"]
    assert not [p for p in (tmp_path / "d").iterdir() if p.name.startswith(".")]   # no partial folder or file


def test_a_folder_made_otherwise_is_refused_then_replaced(tmp_path):
    d = tmp_path / "d"
    _make(d, sequences=2)
    _make(d, sequences=2)                                   # same parameters: fine (identical data)
    with pytest.raises(PMATrackError, match=r"other parameters \(frames: recorded 10, asked 12; sequences"):
        _make(d, sequences=1, cfg=SynthConfig(frames=12, offset="none", challenges=()))
    assert read_record(d)["frames"] == 10                   # refused: nothing changed
    _make(d, seed=4, overwrite=True)
    assert read_record(d)["seed"] == 4
    assert sorted(p.name for p in d.iterdir()) == ["list.txt", "synth.json", "synth_none_0004_000"]
    (d / "synth.json").unlink()                             # sequences of unknown origin
    with pytest.raises(PMATrackError, match="no synth.json"):
        _make(d, seed=4)
    (d / "synth.json").write_text("{broken")
    with pytest.raises(PMATrackError, match="unreadable generation record"):
        _make(d, seed=4)


def test_cached_dataset_regenerates_unless_the_record_matches(tmp_path):
    from pmatrack_mini.data.synth_sets import cached_dataset

    d = tmp_path / "c"
    seqs = cached_dataset(d, 1, 12, "small", 0, progress=False)
    assert len(seqs) == 1 and len(seqs[0]) == 12
    stamp = (d / "synth.json").stat().st_mtime_ns
    cached_dataset(d, 1, 12, "small", 0, progress=False)   # same parameters: reused as it is
    assert (d / "synth.json").stat().st_mtime_ns == stamp
    seqs = cached_dataset(d, 2, 10, "small", 0, progress=False)  # other parameters: regenerated, not reused
    assert [len(s) for s in seqs] == [10, 10] and read_record(d)["frames"] == 10


def test_smallest_rgb_frame_renders():
    """The size check leaves room for the largest target and its margins: the smallest allowed frame renders."""
    cfg = SynthConfig(frames=10, offset="large", tir_size=(64, 48))
    small = SynthConfig(frames=10, offset="large", rgb_size=cfg.min_rgb_size(), tir_size=(64, 48))
    for seed in range(20):
        assert render_sequence(small, seed)["rgb"].shape[1:3] == cfg.min_rgb_size()[::-1]
    with pytest.raises(PMATrackError, match="rgb_size must be at least"):
        SynthConfig(rgb_size=(cfg.min_rgb_size()[0] - 1, 256))


def test_photo_backgrounds_keep_the_sequence_and_change_its_look():
    """``background="photo"``: the same motion, offsets and challenges as the textured sequence of that seed, with a
    photograph's background, target and thermal structure, recorded in the sequence's meta; deterministic."""
    cfg = dict(frames=12, offset="dynamic")
    tex = render_sequence(SynthConfig(**cfg), 42)
    photo = render_sequence(SynthConfig(**cfg, background="photo"), 42)
    for key in ("visible", "infrared", "homography"):
        np.testing.assert_array_equal(tex[key], photo[key])
    assert np.abs(tex["rgb"].astype(int) - photo["rgb"]).mean() > 10             # another look
    assert tex["meta"]["background"] == "procedural" and tex["meta"]["photos"] is None
    assert photo["meta"]["background"] == "photo" and set(photo["meta"]["photos"]) == {"background", "target",
                                                                                       "thermal"}
    again = render_sequence(SynthConfig(**cfg, background="photo"), 42)
    np.testing.assert_array_equal(photo["rgb"], again["rgb"])
    np.testing.assert_array_equal(photo["tir"], again["tir"])
    assert tex["meta"]["rig"] == photo["meta"]["rig"] and all(
        np.array_equal(tex["attributes"][k], photo["attributes"][k]) for k in tex["attributes"])
    kinds = {render_sequence(SynthConfig(**cfg, background="mixed"), s)["meta"]["background"] for s in range(8)}
    assert kinds == {"procedural", "photo"}


def test_held_out_photographs_are_never_in_training_sets():
    from pmatrack_mini.data import photos

    pools = {k: set(photos.SCENES[k]) | set(photos.OBJECTS[k]) for k in ("train", "heldout")}
    assert not pools["train"] & pools["heldout"]
    for background, pool in (("photo", "train"), ("photo-heldout", "heldout")):
        for seed in range(4):
            used = render_sequence(SynthConfig(frames=10, background=background), seed)["meta"]["photos"]
            assert set(used.values()) <= pools[pool], (background, used)


def test_background_records_and_bad_values(tmp_path, monkeypatch):
    from pmatrack_mini.data import photos
    from pmatrack_mini.errors import PMATrackError

    generate_dataset(tmp_path / "p", 1, SynthConfig(frames=10, background="photo"), progress=False)
    generate_dataset(tmp_path / "t", 1, SynthConfig(frames=10), progress=False)
    assert read_record(tmp_path / "p")["background"] == "photo" and "background" not in read_record(tmp_path / "t")
    with pytest.raises(PMATrackError, match="background must be one of"):
        SynthConfig(background="sky")
    monkeypatch.setattr(photos.importlib.util, "find_spec", lambda name: None)
    photos.load_photo.cache_clear()
    with pytest.raises(PMATrackError, match="scikit-image"):
        render_sequence(SynthConfig(frames=10, background="photo"), 1)
    photos.load_photo.cache_clear()
