"""Readers for the LasHeR / LasHeR-Unaligned / RGBT234 / MUART244 sequence layout.

A sequence folder holds ``visible/`` and ``infrared/`` frames, ``visible.txt`` and
``infrared.txt`` (one ``x,y,w,h`` row per frame; commas or white space) and, optionally,
``init.txt`` (LasHeR), ``homography.txt`` (one row-major 3x3 per frame, RGB pixel -> TIR pixel; commas or
white space) and ``attributes.txt`` (written by our generator).
Frame names may be LasHeR's (``v000000.jpg`` / ``i000000.jpg``) or RGBT234's
(``00001v.jpg`` / ``00001i.jpg``): frames are ordered by the number in their name.

Rules, applied with an error that names the file (and line) when broken:

* every box row has 4 finite numbers; a row with w <= 0 or h <= 0 is *kept*: it marks an
  invalid frame that the metrics count as the LasHeR toolkit does;
* every homography row has 9 finite numbers, and there is one row per frame (or more);
* the number of frames in ``visible/`` (``infrared/``) equals the number of rows of
  ``visible.txt`` (``infrared.txt``); ``strict=False`` instead keeps the first min(frames, rows)
  frames and warns;
* the two modalities have the same number of frames;
* the box the tracker starts from (first row of ``init.txt``, else ``visible.txt``) has w, h > 0.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import PMATrackError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp"}
_SPLIT = re.compile(r"[,\s]+")


def read_rows(path: str | Path, columns: int, kind: str, what: str, allow_nan: bool = False) -> np.ndarray:
    """Read an (N, ``columns``) float array from a text file, one row per line, comma or white-space
    separated. ``kind`` ("box") and ``what`` ("x,y,w,h") name the file and its values in errors.

    Blank lines are skipped. A missing file, a non-numeric field, a row with another number of values, no
    rows at all, or (unless ``allow_nan``) a NaN/inf value raises :class:`PMATrackError` naming the file and
    line.
    """
    path = Path(path)
    if not path.is_file():
        raise PMATrackError(f"{path}: {kind} file not found")
    rows = []
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        fields = [f for f in _SPLIT.split(line) if f]
        if len(fields) != columns:
            raise PMATrackError(f"{path}:{lineno}: expected {columns} values {what}, got {len(fields)}: {line!r}")
        try:
            row = [float(f) for f in fields]
        except ValueError:
            raise PMATrackError(f"{path}:{lineno}: non-numeric value in {line!r}") from None
        if not allow_nan and not all(np.isfinite(row)):
            raise PMATrackError(f"{path}:{lineno}: NaN or infinite value in {line!r}")
        rows.append(row)
    if not rows:
        raise PMATrackError(f"{path}: no {kind} rows")
    return np.asarray(rows, dtype=np.float64)


def read_boxes(path: str | Path, allow_nan: bool = False) -> np.ndarray:
    """Read an (N, 4) float array of x, y, w, h rows (see :func:`read_rows`)."""
    return read_rows(path, 4, "box", "x,y,w,h", allow_nan=allow_nan)


def read_homographies(path: str | Path, frames: int) -> np.ndarray:
    """Read (frames, 3, 3) homographies, one row-major 3x3 per line (9 values), as written by the generator.
    Extra rows are ignored (as extra frames are); fewer rows than frames is an error."""
    from ..geometry import homography_problem

    rows = read_rows(path, 9, "homography", "(a row-major 3x3 matrix)")
    if len(rows) < frames:
        raise PMATrackError(f"{path}: {len(rows)} homography rows, but the sequence has {frames} frames")
    for t, row in enumerate(rows[:frames]):
        problem = homography_problem(row.reshape(3, 3))
        if problem:
            raise PMATrackError(f"{path}: the homography of frame {t + 1} cannot be used: {problem}")
    return rows[:frames].reshape(-1, 3, 3)


def _frame_key(p: Path):
    nums = re.findall(r"\d+", p.stem)
    return (int(nums[-1]) if nums else -1, p.name)


def list_frames(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise PMATrackError(f"{folder}: frame folder not found")
    frames = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS), key=_frame_key)
    if not frames:
        raise PMATrackError(f"{folder}: no image frames ({', '.join(sorted(IMAGE_EXTS))})")
    return frames


def _read_image(ref) -> np.ndarray:
    """A frame -> (H, W, 3) uint8, RGB order. ``ref``: an image file, or a frame of a video (``data.videos``)."""
    if hasattr(ref, "read"):
        return ref.read()
    img = cv2.imread(str(ref), cv2.IMREAD_COLOR)
    if img is None:
        raise PMATrackError(f"{ref}: unreadable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@dataclass
class Sequence:
    """One RGBT sequence; frames are read from disk only when asked for."""

    name: str
    path: Path
    rgb_files: list
    tir_files: list
    gt_visible: np.ndarray                 # (T, 4) x, y, w, h in RGB pixels
    gt_infrared: np.ndarray                # (T, 4) x, y, w, h in TIR pixels
    init_box: np.ndarray                   # (4,) box the tracker starts from (RGB pixels)
    homography: np.ndarray | None = None   # (T, 3, 3) RGB pixel -> TIR pixel, synthetic data only
    attributes: dict = field(default_factory=dict)  # name -> (T,) bool
    calibration: np.ndarray | None = None  # (3, 3) RGB pixel -> TIR pixel of the rig (``calibrate``), if given

    def __len__(self) -> int:
        return len(self.rgb_files)

    def rgb(self, i: int) -> np.ndarray:
        """Frame i of the visible camera, (H, W, 3) uint8, RGB order."""
        return _read_image(self.rgb_files[i])

    def tir(self, i: int) -> np.ndarray:
        """Frame i of the thermal camera, (h, w, 3) uint8 (grey images are replicated to 3 channels)."""
        return _read_image(self.tir_files[i])

    def gt(self, which: str = "visible") -> np.ndarray:
        if which not in ("visible", "infrared"):
            raise PMATrackError(f"gt must be 'visible' or 'infrared', got {which!r}")
        return self.gt_visible if which == "visible" else self.gt_infrared

    def sizes(self) -> tuple:
        """((W_rgb, H_rgb), (W_tir, H_tir)) read from the first frames."""
        a, b = self.rgb(0), self.tir(0)
        return (a.shape[1], a.shape[0]), (b.shape[1], b.shape[0])

    def sequence_attributes(self) -> list[str]:
        """Attributes present in at least one frame (LasHeR tags sequences this way)."""
        return [k for k, v in self.attributes.items() if np.any(v)]


def _read_attributes(path: Path, n: int) -> dict:
    lines = path.read_text(errors="replace").splitlines()
    if not lines or not lines[0].startswith("#"):
        raise PMATrackError(f"{path}:1: expected a header line '# name,name,...'")
    names = [s.strip() for s in lines[0][1:].split(",")]
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if line.strip():
            vals = line.split(",")
            if len(vals) != len(names) or any(v.strip() not in ("0", "1") for v in vals):
                raise PMATrackError(f"{path}:{lineno}: expected {len(names)} values of 0/1")
            rows.append([v.strip() == "1" for v in vals])
    arr = np.asarray(rows, dtype=bool).reshape(-1, len(names))
    if len(arr) != n:
        raise PMATrackError(f"{path}: {len(arr)} rows, but the sequence has {n} frames")
    return {name: arr[:, k] for k, name in enumerate(names)}


def _check_count(n_frames: int, n_rows: int, folder: Path, gt_file: Path, strict: bool) -> int:
    if n_frames == n_rows:
        return n_rows
    msg = f"{folder} has {n_frames} frames but {gt_file} has {n_rows} rows"
    if strict:
        raise PMATrackError(msg + " (they must match; strict=False keeps the first min of the two)")
    warnings.warn(msg + f"; keeping the first {min(n_frames, n_rows)}", stacklevel=3)
    return min(n_frames, n_rows)


def load_sequence(path: str | Path, strict: bool = True, layout: str = "auto") -> Sequence:
    """Read one sequence folder (frames are listed, not decoded). With ``layout="auto"`` a sequence of another
    benchmark's layout (LUART's ``NotAlign/``, or in a dataset folder with ``annos/``) is read by :mod:`.layouts`;
    ``"lasher"`` always reads LasHeR's."""
    path = Path(path)
    if not path.is_dir():
        raise PMATrackError(f"{path}: sequence folder not found")
    if layout != "lasher":
        from .layouts import load_layout_sequence, sequence_layout   # layouts imports this module
        found = sequence_layout(path)
        if found is not None:
            return load_layout_sequence(path, *found, strict=strict)
    return assemble_sequence(path, path / "visible", path / "infrared", path / "visible.txt", path / "infrared.txt",
                             strict)


def assemble_sequence(seq_dir: Path, rgb_dir: Path, tir_dir: Path, vis_file: Path, ir_file: Path,
                      strict: bool = True) -> Sequence:
    """A sequence from its two frame folders and ground-truth files, in any layout (``layouts`` finds them), with
    this module's rules: row and frame counts, the initial box (``init.txt``, else the sequence's ``visible.txt``,
    else ``vis_file``: its first row, w and h > 0), and the generator's optional ``homography.txt`` and
    ``attributes.txt``."""
    rgb_files, tir_files = list_frames(rgb_dir), list_frames(tir_dir)
    gt_v, gt_i = read_boxes(vis_file), read_boxes(ir_file)
    n_v = _check_count(len(rgb_files), len(gt_v), rgb_dir, vis_file, strict)
    n_i = _check_count(len(tir_files), len(gt_i), tir_dir, ir_file, strict)
    if n_v != n_i:
        msg = f"{seq_dir}: visible has {n_v} frames, infrared has {n_i}"
        if strict:
            raise PMATrackError(msg + " (mismatched modalities)")
        warnings.warn(msg + f"; keeping the first {min(n_v, n_i)}", stacklevel=3)
    n = min(n_v, n_i)
    init_src = next((p for p in (seq_dir / "init.txt", seq_dir / "visible.txt") if p.is_file()), vis_file)
    init = read_boxes(init_src)[0]
    if init[2] <= 0 or init[3] <= 0:
        raise PMATrackError(f"{init_src}:1: the initial box must have positive size, got {init.tolist()}")
    hfile, afile = seq_dir / "homography.txt", seq_dir / "attributes.txt"
    H = read_homographies(hfile, n) if hfile.is_file() else None
    attrs = {k: v[:n] for k, v in _read_attributes(afile, len(gt_v)).items()} if afile.is_file() else {}
    return Sequence(name=seq_dir.name, path=seq_dir, rgb_files=rgb_files[:n], tir_files=tir_files[:n],
                    gt_visible=gt_v[:n], gt_infrared=gt_i[:n], init_box=init, homography=H, attributes=attrs)


def sequence_names(root: str | Path, list_file: str | Path | None = None) -> list[str]:
    """Names from a sequence-list file (one per line; default ``root/list.txt`` when present),
    else every sub-folder of ``root`` that has a ``visible/`` folder."""
    root = Path(root)
    if not root.is_dir():
        raise PMATrackError(f"{root}: dataset folder not found")
    lf = Path(list_file) if list_file else root / "list.txt"
    if list_file and not lf.is_file():
        raise PMATrackError(f"{lf}: sequence list not found")
    if lf.is_file():
        names = [ln.strip() for ln in lf.read_text(errors="replace").splitlines() if ln.strip() and not ln.startswith("#")]
        missing = [n for n in names if not (root / n).is_dir()]
        if missing:
            raise PMATrackError(f"{lf}: {len(missing)} listed sequence(s) not found under {root}, e.g. {missing[0]!r}")
    else:
        names = sorted(p.name for p in root.iterdir() if (p / "visible").is_dir())
    if not names:
        raise PMATrackError(f"{root}: no sequences (no list.txt and no sub-folder with visible/)")
    return names


def load_dataset(root: str | Path, list_file: str | Path | None = None, strict: bool = True,
                 layout: str = "auto") -> list[Sequence]:
    """Load every sequence of a dataset folder in LasHeR's layout (see :func:`sequence_names`) or another benchmark's
    (``layout``: ``auto`` to detect it, or one of ``layouts.LAYOUTS``; see :mod:`.layouts`)."""
    from .layouts import detect_layout, load_layout_dataset   # layouts imports this module
    root = Path(root)
    kind = detect_layout(root, layout, list_file)
    if kind != "lasher":
        return load_layout_dataset(root, kind, list_file=list_file, strict=strict)
    return [load_sequence(root / n, strict=strict, layout="lasher") for n in sequence_names(root, list_file)]
