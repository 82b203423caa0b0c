"""Frames from a video file, a folder of images or one image: what ``track --rgb/--tir`` and ``calibrate`` read.

A video is read through OpenCV, one frame after the other (a frame out of order seeks); frame counts come from the
container and are checked when a frame is decoded: a truncated or damaged video is an error naming the file and the
frame, found when tracking reaches it. Grey or 4-channel frames become 3-channel RGB, as images do in ``dataset``.

:func:`video_sequence` turns an RGB and a TIR source into a :class:`~pmatrack_mini.data.dataset.Sequence` without
ground truth (the rows are NaN: unknown), started from the RGB box and either the TIR box of the first frame or a
calibration homography (``calibrate``). :func:`write_video` writes frames atomically (a ``.part`` file renamed when
complete); :func:`sequence_to_videos` makes a video pair from a sequence folder (tests, benchmarks, the README's
example).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import PMATrackError
from ..geometry import valid_box
from .dataset import IMAGE_EXTS, Sequence, _read_image, list_frames

VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg"}
CODECS = {".mp4": "mp4v", ".avi": "FFV1"}        # what OpenCV writes here; FFV1 is lossless


class VideoReader:
    """A video file read frame by frame. ``len`` is the container's frame count; :meth:`read` decodes frame i (0-based)
    and names the file and frame when it cannot."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise PMATrackError(f"{self.path}: video file not found")
        self.cap = cv2.VideoCapture(str(self.path))
        if not self.cap.isOpened():
            raise PMATrackError(f"{self.path}: not a video OpenCV can read")
        self.frames = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS)) or 25.0
        if self.frames <= 0:
            raise PMATrackError(f"{self.path}: the video has no frames")
        self.next = 0

    def __len__(self) -> int:
        return self.frames

    def read(self, i: int) -> np.ndarray:
        """Frame i as (H, W, 3) uint8, RGB order."""
        if i != self.next:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, img = self.cap.read()
        if not ok or img is None or img.size == 0:
            self.next = -1                                 # position unknown: seek next time
            raise PMATrackError(f"{self.path}: frame {i + 1} of {self.frames} unreadable (the video ends early or "
                                "is damaged there)")
        self.next = i + 1
        return _to_rgb(img)


@dataclass(frozen=True)
class VideoFrame:
    """Frame ``index`` of a video: read like an image file (``dataset._read_image`` calls :meth:`read`)."""
    reader: VideoReader
    index: int

    def read(self) -> np.ndarray:
        return self.reader.read(self.index)

    def __str__(self) -> str:
        return f"{self.reader.path} frame {self.index + 1}"


def _to_rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def frame_refs(path: str | Path) -> list:
    """The frames of a video file (``VideoFrame`` each), a folder of images (ordered by the number in their names) or
    one image file, as references read on demand."""
    path = Path(path)
    if path.is_dir():
        return list_frames(path)
    if not path.exists():
        raise PMATrackError(f"{path}: not found (expected a video file, a folder of frames or an image)")
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        return [path]
    if ext not in VIDEO_EXTS:
        raise PMATrackError(f"{path}: unknown kind of file (videos: {', '.join(sorted(VIDEO_EXTS))}; "
                            f"images: {', '.join(sorted(IMAGE_EXTS))}; or a folder of images)")
    reader = VideoReader(path)
    return [VideoFrame(reader, i) for i in range(len(reader))]


def first_frame(path: str | Path) -> np.ndarray:
    """The first frame of a video, folder of frames or image, (H, W, 3) uint8 RGB."""
    return _read_image(frame_refs(path)[0])


def frame_rate(refs: list) -> float:
    """Frames per second of a video's references (25 for images)."""
    return refs[0].reader.fps if refs and isinstance(refs[0], VideoFrame) else 25.0


def video_sequence(rgb: str | Path, tir: str | Path, init_box, init_tir=None, calibration=None,
                   name: str | None = None, truncate: bool = False) -> Sequence:
    """A sequence to track from two frame sources (videos, folders or images; sizes may differ). ``init_box``: the
    target in the first RGB frame (x, y, w, h, RGB px); the first TIR frame's box ``init_tir`` (TIR px) or the rig's
    ``calibration`` (3x3, RGB px -> TIR px) places it in the thermal frame. Frame counts must agree unless
    ``truncate`` (then the common length is tracked). No ground truth: its rows are NaN, except frame 1."""
    rgb_refs, tir_refs = frame_refs(rgb), frame_refs(tir)
    if len(rgb_refs) != len(tir_refs):
        if not truncate:
            raise PMATrackError(f"{rgb} has {len(rgb_refs)} frames but {tir} has {len(tir_refs)} (give --truncate to "
                                f"track the first {min(len(rgb_refs), len(tir_refs))})")
        n = min(len(rgb_refs), len(tir_refs))
        rgb_refs, tir_refs = rgb_refs[:n], tir_refs[:n]
    n = len(rgb_refs)
    box = valid_box(init_box, "--init")
    gt_v, gt_i = np.full((n, 4), np.nan), np.full((n, 4), np.nan)
    gt_v[0] = box
    if init_tir is not None:
        gt_i[0] = valid_box(init_tir, "--init-tir")
    elif calibration is None:
        raise PMATrackError("give the first TIR box (--init-tir) or the rig's homography (--homography)")
    name = name or Path(rgb).stem
    return Sequence(name=name, path=Path(rgb), rgb_files=rgb_refs, tir_files=tir_refs, gt_visible=gt_v,
                    gt_infrared=gt_i, init_box=box,
                    calibration=None if calibration is None else np.asarray(calibration, dtype=np.float64))


def write_video(frames, path: str | Path, fps: float = 25.0) -> Path:
    """Write (H, W, 3) uint8 RGB frames to a video (codec by extension: ``CODECS``), atomically."""
    path = Path(path)
    codec = CODECS.get(path.suffix.lower())
    if codec is None:
        raise PMATrackError(f"{path}: write videos as {' or '.join(CODECS)}")
    part = path.with_name(path.stem + ".part" + path.suffix)
    writer, size = None, None
    try:
        for img in frames:
            if writer is None:
                size = (img.shape[1], img.shape[0])
                writer = cv2.VideoWriter(str(part), cv2.VideoWriter_fourcc(*codec), fps, size)
                if not writer.isOpened():
                    raise PMATrackError(f"{path}: OpenCV cannot write {codec} videos here")
            if (img.shape[1], img.shape[0]) != size:
                raise PMATrackError(f"{path}: frames of different sizes ({size} then {img.shape[1::-1]})")
            writer.write(cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
        if writer is None:
            raise PMATrackError(f"{path}: no frames to write")
        writer.release()
        os.replace(part, path)
    finally:
        if writer is not None:
            writer.release()
        part.unlink(missing_ok=True)
    return path


def sequence_to_videos(seq: Sequence, out_dir: str | Path, ext: str = ".avi", fps: float = 25.0) -> tuple[Path, Path]:
    """The sequence's RGB and TIR frames as two videos ``<name>_rgb<ext>`` and ``<name>_tir<ext>`` in ``out_dir``
    (``.avi``: lossless FFV1, the same pixels as the folder; ``.mp4``: compressed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rgb = write_video((seq.rgb(t) for t in range(len(seq))), out / f"{seq.name}_rgb{ext}", fps)
    tir = write_video((seq.tir(t) for t in range(len(seq))), out / f"{seq.name}_tir{ext}", fps)
    return rgb, tir
