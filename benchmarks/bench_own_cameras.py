"""Your own cameras, measured: videos tracked as the frame folders are, and calibration from noisy point pairs.

    python benchmarks/bench_own_cameras.py [--work runs/bench_batch] [--sequences 4] [--frames 100]
                                           [--out results/own_cameras.json]

1. Videos: held-out generated dynamic sequences (seed 9450, never used for training; RGB 320x256, TIR 160x128) are
   written as two MP4 files each (``data.videos.sequence_to_videos``, OpenCV's mp4v: lossy; and as lossless FFV1
   AVI files, which must give the folders' boxes exactly) and tracked with the
   documented command ``track --rgb --tir --init --init-tir`` (first-frame boxes from the sequence's ground truth),
   and as frame folders with ``track --dataset``; both scored against the visible ground truth. The network: the
   cpu-mini stage-2 network of ``pmatrack_mini.experiments.trained`` (``--steps`` steps; the one
   ``bench_long_run.py`` uses), hard routing and TOCU. Goal: PR, NPR and SR of the videos within 0.5 point of
   the folders'.
2. Calibration: ``calibrate.fit_homography`` on 4 exact and on 20 pairs with 1-px Gaussian noise on the TIR points,
   drawn where each held-out sequence's first-frame homography puts them (``--draws`` seeded draws per sequence);
   the error at the four corners of the RGB frame against the true homography (TIR px). Goal: under 2 px at 20 pairs.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from pmatrack_mini.cli import main as cli
from pmatrack_mini.data.synth_sets import cached_dataset
from pmatrack_mini.data.videos import sequence_to_videos
from pmatrack_mini.evaluation.evaluate import evaluate_predictions, read_result_file
from pmatrack_mini.experiments.trained import run_folder, stage2_network
from pmatrack_mini.geometry import apply_homography
from pmatrack_mini.tracking.calibrate import fit_homography
from pmatrack_mini.utils import run_record, write_json_atomic


def corner_errors(H_true: np.ndarray, size: tuple, pairs: int, noise: float, rng) -> np.ndarray:
    """Fit H to ``pairs`` points drawn in the RGB frame (``size`` W, H) and mapped by ``H_true`` plus noise ->
    the fitted H's error at the frame's four corners (TIR px)."""
    w, h = size
    p = rng.uniform([10, 10], [w - 10, h - 10], size=(pairs, 2))
    q = apply_homography(H_true, p) + rng.normal(0, noise, size=(pairs, 2))
    H, _, _ = fit_homography(np.hstack([p, q]))
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    return np.linalg.norm(apply_homography(H, corners) - apply_homography(H_true, corners), axis=1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="runs/bench_batch")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--sequences", type=int, default=4)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--draws", type=int, default=50)
    p.add_argument("--out", default="results/own_cameras.json")
    a = p.parse_args(argv)
    work, t_start = Path(a.work), time.perf_counter()
    _, cfg = stage2_network(work, a.steps, progress=True)
    checkpoint = run_folder(work, "stage2", cfg) / "final.pt"
    folder = work / f"own_cameras_{a.sequences}x{a.frames}"
    seqs = cached_dataset(folder, a.sequences, a.frames, "dynamic", 9450)
    out = {"folders": work / "results" / "own_folders", "videos": work / "results" / "own_videos",
           "lossless videos": work / "results" / "own_videos_lossless"}
    assert cli(["track", "--checkpoint", str(checkpoint), "--dataset", str(folder), "--out", str(out["folders"]),
                "--quiet"]) == 0
    for kind, ext in (("videos", ".mp4"), ("lossless videos", ".avi")):
        for seq in seqs:
            rgb, tir = sequence_to_videos(seq, work / "videos", ext=ext)
            box = lambda b: ",".join(f"{v:g}" for v in b)                    # noqa: E731
            assert cli(["track", "--checkpoint", str(checkpoint), "--rgb", str(rgb), "--tir", str(tir), "--init",
                        box(seq.init_box), "--init-tir", box(seq.gt_infrared[0]), "--name", seq.name, "--out",
                        str(out[kind]), "--quiet"]) == 0
    scores = {k: evaluate_predictions(seqs, {s.name: read_result_file(d / f"{s.name}.txt")[0] for s in seqs})
              for k, d in out.items()}
    table = {k: {m: 100 * s[m] for m in ("PR", "NPR", "SR")} for k, s in scores.items()}
    diff = {m: table["videos"][m] - table["folders"][m] for m in ("PR", "NPR", "SR")}
    lossless = {m: table["lossless videos"][m] - table["folders"][m] for m in ("PR", "NPR", "SR")}
    video_met = all(abs(d) <= 0.5 for d in diff.values())
    for k, t in table.items():
        print(f"{k:<16} PR / NPR / SR " + "{PR:.1f} / {NPR:.1f} / {SR:.1f}".format(**t))
    print(f"goal (videos within 0.5 point of folders): {'met' if video_met else 'NOT met'} "
          f"({', '.join(f'{m} {d:+.2f}' for m, d in diff.items())})")
    rng = np.random.default_rng(0)
    calib = {}
    for pairs, noise in ((4, 0.0), (20, 1.0)):
        errs = np.stack([corner_errors(s.homography[0], s.sizes()[0], pairs, noise, rng)
                         for s in seqs for _ in range(a.draws)])                       # (draws x seqs, 4)
        calib[f"{pairs} pairs, noise {noise:g} px"] = dict(
            mean_corner_px_median=float(np.median(errs.mean(1))), mean_corner_px_p90=float(np.percentile(errs.mean(1), 90)),
            worst_corner_px_median=float(np.median(errs.max(1))), worst_corner_px_p90=float(np.percentile(errs.max(1), 90)),
            fits=len(errs))
    c20 = calib["20 pairs, noise 1 px"]
    calib_met = c20["mean_corner_px_median"] < 2.0
    for k, c in calib.items():
        print(f"calibration, {k}: corner error (mean of 4) median {c['mean_corner_px_median']:.2g} px, p90 "
              f"{c['mean_corner_px_p90']:.2g}; worst corner median {c['worst_corner_px_median']:.2g}, p90 "
              f"{c['worst_corner_px_p90']:.2g} ({c['fits']} fits)")
    write_json_atomic(a.out, dict(
        **run_record(argv),
        threads=torch.get_num_threads(), network=f"trained.stage2_network({a.steps} steps), hard routing + TOCU",
        test_set=dict(level="dynamic", sequences=a.sequences, frames=a.frames, seed=9450, video="mp4v"),
        tracking=table, difference_points=diff, difference_points_lossless=lossless,
        goals=dict(videos=dict(text="videos within 0.5 point of frame folders in PR, NPR, SR", met=bool(video_met)),
                   calibration=dict(text="corner error under 2 px at 20 pairs with 1-px noise (median over fits of "
                                         "the mean over the four corners)", met=bool(calib_met))),
        calibration=calib, total_seconds=time.perf_counter() - t_start))
    print(f"-> {a.out}")


if __name__ == "__main__":
    main()
