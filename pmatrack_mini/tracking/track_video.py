"""Your own cameras: ``track --rgb RGB --tir TIR``, and the annotated side-by-side video of a tracked sequence.

    pmatrack-mini track --checkpoint CK --rgb RGB --tir TIR --init x,y,w,h (--init-tir x,y,w,h | --homography H.txt)
                        --out DIR [--video] [--truncate] [--name NAME]

RGB and TIR are video files OpenCV reads or folders of frames (``data.videos``); their frame sizes may differ. The
tracker starts from the RGB box and places the TIR crops through a homography fitted to the two first-frame boxes
(``--init-tir``) or through the rig's calibration (``--homography``, written by ``calibrate``). It writes what
``track --dataset`` writes for one sequence (``<name>.txt``, ``<name>.align.csv``, ``track_summary.json``) and, with
``--video``, ``<name>.mp4``: the RGB frame with its box beside the TIR frame with the same box mapped through the
running homography and the RGB frame's grid drawn through it, so a drifting alignment shows as a bending grid.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..cli_args import box_arg
from ..errors import PMATrackError
from ..evaluation.viz import draw_homography_grid, draw_mapped_box, side_by_side

GRID = 8                                      # grid lines per side of the RGB frame drawn on the TIR frame


def add_video_arguments(t) -> None:
    """The ``track`` options of the own-cameras path."""
    g = t.add_argument_group("your own cameras (instead of --dataset)")
    g.add_argument("--rgb", help="RGB video file or folder of frames")
    g.add_argument("--tir", help="thermal video file or folder of frames (its frame size may differ)")
    g.add_argument("--init", type=box_arg, help="the target in the first RGB frame: x,y,w,h (RGB px)")
    g.add_argument("--init-tir", type=box_arg, help="the target in the first TIR frame: x,y,w,h (TIR px)")
    g.add_argument("--homography", help="the rig's RGB -> TIR homography (one line of 9 numbers, from calibrate)")
    g.add_argument("--name", help="results name (default: the RGB file's stem)")
    g.add_argument("--truncate", action="store_true", help="track the common length when the frame counts differ")
    g.add_argument("--video", action="store_true", help="also write <name>.mp4, RGB and TIR side by side")


def video_input(args):
    """The sequence ``--rgb/--tir`` describe, with every option checked first (nothing is written on bad input)."""
    from .calibrate import read_homography_file
    from ..data.videos import video_sequence

    if not (args.rgb and args.tir):
        raise PMATrackError("give --dataset DIR, or --rgb and --tir (videos or folders of frames)")
    if args.init is None:
        raise PMATrackError("--rgb/--tir need --init x,y,w,h (the target in the first RGB frame)")
    if (args.init_tir is None) == (args.homography is None):
        raise PMATrackError("give exactly one of --init-tir x,y,w,h and --homography FILE")
    if args.prealign == "oracle":
        raise PMATrackError("--prealign oracle needs the generated data's homography.txt; use --dataset")
    H0 = read_homography_file(args.homography) if args.homography else None
    return video_sequence(args.rgb, args.tir, args.init, init_tir=args.init_tir, calibration=H0, name=args.name,
                          truncate=args.truncate)


def annotate(rgb: np.ndarray, tir: np.ndarray, box, H: np.ndarray, label: str = "") -> np.ndarray:
    """One side-by-side frame: RGB with ``box``; TIR (scaled to the RGB height) with the box's corners and the RGB
    frame's grid mapped through ``H`` (RGB px -> TIR px). (H, W_rgb + W_tir', 3) uint8."""
    left, right, S = side_by_side(rgb, tir)
    h, w = left.shape[:2]
    if np.all(np.isfinite(box)):
        x, y, bw, bh = (int(round(v)) for v in box)
        cv2.rectangle(left, (x, y), (x + bw, y + bh), (255, 60, 60), 2)
    draw_homography_grid(right, S @ H, (w, h), GRID)                  # RGB px -> displayed TIR px
    draw_mapped_box(right, box, S @ H, (255, 60, 60))
    out = np.concatenate([left, right], axis=1)
    if label:
        cv2.putText(out, label, (6, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def write_annotated_video(seq, boxes: np.ndarray, Hs: list, path: str | Path, progress: bool = True) -> Path:
    """``<name>.mp4`` of a tracked sequence: frame t with ``boxes[t]`` and the running homography ``Hs[t]``
    (frame 0: the homography the tracker started from)."""
    from tqdm.auto import tqdm

    from ..data.videos import frame_rate, write_video

    def frames():
        for t in tqdm(range(len(seq)), desc="video", disable=not progress, unit="frame"):
            yield annotate(seq.rgb(t), seq.tir(t), boxes[t], Hs[t], f"{seq.name} {t + 1}/{len(seq)}")

    return write_video(frames(), path, fps=frame_rate(seq.rgb_files))
