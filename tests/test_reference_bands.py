"""reference.band_agreement: the band correlations of notebook 03, over whole sequences."""
import numpy as np
import pytest

from pmatrack_mini.data import load_dataset
from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.evaluation.reference import BANDS, band_agreement


def test_shapes_ranges_and_attributes(samples_dir):
    seqs = load_dataset(samples_dir)[:2]
    r = band_agreement(seqs, shifts=(0, 16), step=10)
    n = sum(len(range(0, len(s), 10)) for s in seqs)
    assert len(r["frame"]) == len(r["sequence"]) == n
    for b in BANDS:
        assert r[b].shape == (n, 2) and np.all(np.abs(r[b]) <= 1 + 1e-6)
    for a, flags in r["attributes"].items():
        assert flags.shape == (n,)
        s0 = seqs[0]
        assert list(flags[:4]) == [bool(s0.attributes[a][t]) for t in (0, 10, 20, 30)]


def test_needs_the_true_homography(samples_dir):
    s = load_dataset(samples_dir)[0]
    s.homography = None
    with pytest.raises(PMATrackError, match="homography"):
        band_agreement([s])


def test_summary_statistics_by_hand(samples_dir):
    from pmatrack_mini.evaluation.reference import band_agreement_summary

    seqs = load_dataset(samples_dir)[:2]
    r = band_agreement(seqs, shifts=(0, 8), step=5)
    s = band_agreement_summary(r)
    x = r["high_abs"][:, 0]
    assert s["frames"] == len(x)
    assert np.isclose(s["high_abs"]["mean"], x.mean()) and np.isclose(s["high_abs"]["positive"], (x > 0).mean())
    lo, hi = s["raw"]["by_sequence"]
    means = [r["raw"][r["sequence"] == n, 0].mean() for n in (seqs[0].name, seqs[1].name)]
    assert np.isclose(lo, min(means)) and np.isclose(hi, max(means))
    assert len(s["low"]["mean_abs_by_shift"]) == 2
