"""What ``pmatrack-mini track`` writes besides the toolkit's ``<seq>.txt``: per frame ``<seq>.align.csv``, per run
``track_summary.json``.

``<seq>.align.csv``, one row per tracked frame (frame 1 is the initialisation and has none):
  frame, score (windowed peak), raw_score, macs (the frame's network forward), tocu_macs (its TOCU check's forwards),
  per stage ``<role>_expert`` and ``<role>_dx, _dy, _log_sx, _log_sy`` (crop px / log scale),
  ``tocu`` (accepted / rejected / skipped / off), ``tocu_reason``, ``tocu_change_px``, ``tocu_iou_proposed``,
  ``tocu_iou_current``;
  with the generator's ``homography.txt``: ``residual_crop_px``, the true alignment residual at the target of the
  homography the TIR crops were cut through, and ``residual_network_px``, of that homography corrected by the
  network's alignment (RGB px; ``tocu.residual_px``), so alignment error over time can be plotted.

``track_summary.json``: per sequence and overall, frames, FPS, MACs per frame (the network's forward, and TOCU's
checks apart), expert usage per stage, TOCU's
acceptance rate (accepted / frames, and accepted / checked), the mean residuals.

The toolkits' result file itself, in one of :data:`RESULT_FORMATS` (:func:`write_result`).
"""
from __future__ import annotations

import csv
import io
import re
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import PMATrackError
from ..utils import write_boxes, write_json_atomic, write_text_atomic
from .tocu import residual_px


def frame_row(t: int, info: dict, H_true=None, gt_box=None) -> dict:
    """One CSV row from the tracker's ``last_info`` of frame t (0-based)."""
    row = dict(frame=t + 1, score=info["score"], raw_score=info["raw_score"], macs=info.get("macs", 0),
               tocu_macs=info.get("tocu_macs", 0))
    for a in info.get("align", []):
        r = a["role"]
        row[f"{r}_expert"] = a["expert"]
        for k, v in zip(("dx", "dy", "log_sx", "log_sy"), a["params"]):
            row[f"{r}_{k}"] = v
    d = info.get("tocu")
    if d is None:
        row.update(tocu="off" if "delta" in info else "", tocu_reason="")
    else:
        checked = not np.isnan(d["iou_proposed"])
        row.update(tocu="accepted" if d["accept"] else "rejected" if checked else "skipped", tocu_reason=d["reason"],
                   tocu_change_px=d["change_px"], tocu_iou_proposed=d["iou_proposed"], tocu_iou_current=d["iou_current"])
    if H_true is not None and gt_box is not None and np.all(np.asarray(gt_box)[2:] > 0):
        row["residual_crop_px"] = residual_px(info["H_used"], H_true, gt_box)
        if "delta" in info:
            row["residual_network_px"] = residual_px(info["H_used"] @ info["delta"], H_true, gt_box)
    return row


def write_align_csv(path, rows: list[dict]) -> None:
    """Rows -> CSV (the union of their columns, in first-seen order), written atomically."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, restval="")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text_atomic(path, buf.getvalue())


def sequence_summary(rows: list[dict], fps: float) -> dict:
    """Frames, FPS, MACs per frame, expert usage per stage, TOCU decisions, mean residuals of one sequence."""
    out = dict(frames=len(rows), fps=fps, macs_per_frame=float(np.mean([r["macs"] for r in rows])) if rows else 0.0,
               tocu_macs_per_frame=float(np.mean([r.get("tocu_macs", 0) for r in rows])) if rows else 0.0)
    roles = [k[: -len("_expert")] for k in (rows[0] if rows else {}) if k.endswith("_expert")]
    out["expert_usage"] = {r: dict(Counter(row[f"{r}_expert"] for row in rows)) for r in roles}
    decisions = Counter(r.get("tocu", "") for r in rows)
    if decisions.get("accepted", 0) + decisions.get("rejected", 0) + decisions.get("skipped", 0):
        checked = decisions["accepted"] + decisions["rejected"]
        out["tocu"] = dict(decisions, acceptance_per_frame=decisions["accepted"] / len(rows),
                           acceptance_per_check=decisions["accepted"] / checked if checked else None)
    for k in ("residual_crop_px", "residual_network_px"):
        vals = [r[k] for r in rows if k in r]
        if vals:
            out[f"mean_{k}"] = float(np.mean(vals))
    return out


def overall_summary(per_sequence: dict) -> dict:
    """Frame-weighted means over sequences; expert usage and TOCU decisions as fractions of all frames."""
    frames = sum(s["frames"] for s in per_sequence.values()) or 1
    out = dict(sequences=len(per_sequence), frames=frames,
               fps=float(np.mean([s["fps"] for s in per_sequence.values()])) if per_sequence else 0.0,
               macs_per_frame=sum(s["macs_per_frame"] * s["frames"] for s in per_sequence.values()) / frames,
               tocu_macs_per_frame=sum(s.get("tocu_macs_per_frame", 0) * s["frames"] for s in per_sequence.values())
               / frames)
    usage: dict = {}
    for s in per_sequence.values():
        for role, counts in s["expert_usage"].items():
            for e, n in counts.items():
                usage.setdefault(role, Counter())[e] += n
    out["expert_usage"] = {r: {e: n / frames for e, n in c.items()} for r, c in usage.items()}
    tocu = Counter()
    for s in per_sequence.values():
        tocu.update({k: v for k, v in s.get("tocu", {}).items() if k in ("accepted", "rejected", "skipped")})
    if tocu:
        checked = tocu["accepted"] + tocu["rejected"]
        out["tocu"] = dict(tocu, acceptance_per_frame=tocu["accepted"] / frames,
                           acceptance_per_check=tocu["accepted"] / checked if checked else None)
    for k in ("mean_residual_crop_px", "mean_residual_network_px"):
        vals = [(s[k], s["frames"]) for s in per_sequence.values() if k in s]
        if vals:
            out[k] = sum(v * n for v, n in vals) / sum(n for _, n in vals)
    return out


def write_summary(path, per_sequence: dict, meta: dict) -> dict:
    summary = dict(meta, overall=overall_summary(per_sequence), sequences=per_sequence)
    write_json_atomic(Path(path), summary)
    return summary


def decision_quality(rows: list[dict], margin_px: float = 0.5) -> dict:
    """How good a judge TOCU was, from ``<seq>.align.csv`` rows with the true residuals: per decision (accepted,
    rejected, skipped), how many proposals were better than the running homography at that frame (the proposal's
    residual ``residual_network_px`` below the running one's ``residual_crop_px`` by more than ``margin_px``),
    worse (above by more), or about the same. Rows without residuals (no homography.txt) are left out."""
    out = {d: dict(better=0, same=0, worse=0) for d in ("accepted", "rejected", "skipped")}
    for r in rows:
        d = r.get("tocu")
        if d not in out or "residual_network_px" not in r or "residual_crop_px" not in r:
            continue
        gain = float(r["residual_crop_px"]) - float(r["residual_network_px"])
        out[d]["better" if gain > margin_px else "worse" if gain < -margin_px else "same"] += 1
    return out


RESULT_FORMATS = ("lasher", "official", "corners")
_TRACKER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def result_file_name(name: str, fmt: str, tracker: str = "PMATrack") -> str:
    """``<name>.txt``, or for ``corners`` ``<tracker>_<name>.txt``: RGBT234's result files carry the tracker's name
    as a prefix, given to the ``rgbt`` package's loaders as ``prefix="<tracker>_"``."""
    return f"{tracker}_{name}.txt" if fmt == "corners" else f"{name}.txt"


def write_result(out_dir, name: str, boxes, fmt: str = "lasher", tracker: str = "PMATrack", init_box=None) -> Path:
    """Write one sequence's (N, 4) x, y, w, h boxes (RGB pixels) as the toolkits read them; returns the file's path.

    * ``lasher``: ``<name>.txt``, ``x,y,w,h`` rows with 2 decimals, comma-separated (:func:`utils.write_boxes`);
    * ``official``: ``<name>.txt``, 4 integers ``x y w h`` separated by single spaces, as the official PMATrack
      tracker writes them (float boxes cast to int, i.e. truncated toward zero); frame 1 is ``init_box`` when given
      (the official tracker writes the first ground-truth row there), else ``boxes[0]``; a non-finite value is an
      error, as it has no integer;
    * ``corners``: ``<tracker>_<name>.txt``, 8 values ``x1 y1 x2 y1 x2 y2 x1 y2`` separated by single spaces, with
      x2 = x + w and y2 = y + h: the four corners of the one box (never an RGB box then a TIR box), which the
      ``rgbt`` package's RGBT234 loader (``bbox_type="corner"``) reads back as x, y, x2 - x, y2 - y (its LasHeR-style
      loaders read corners 1 px wider and taller, x2 - x + 1: give those the lasher or official files).

    ``rgbt`` rounds every value it loads to an integer (half to even); ``eval`` does not, so the two agree exactly
    on integer boxes (the official format, or boxes that happen to be whole pixels).

    The file is written atomically; every check is made before anything is written.
    """
    if fmt not in RESULT_FORMATS:
        raise PMATrackError(f"unknown result format {fmt!r}; use one of {', '.join(RESULT_FORMATS)}")
    if fmt == "corners" and not _TRACKER_NAME.fullmatch(tracker or ""):
        raise PMATrackError(f"tracker name {tracker!r} cannot prefix a file name (letters, digits, _ . + -)")
    b = np.array(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4 or not len(b):
        raise PMATrackError(f"{name}: expected (N, 4) boxes, got shape {b.shape}")
    path = Path(out_dir) / result_file_name(name, fmt, tracker)
    if fmt == "lasher":
        write_boxes(path, b)
        return path
    if fmt == "official":
        if init_box is not None:
            b[0] = np.asarray(init_box, dtype=np.float64).reshape(4)
        bad = np.flatnonzero(~np.all(np.isfinite(b), axis=1))
        if len(bad):
            raise PMATrackError(f"{name}: frame {bad[0] + 1} is not finite ({b[bad[0]].tolist()}); the official "
                                "format holds integers only (use the lasher format)")
        lines = [" ".join(str(v) for v in row) for row in np.trunc(b).astype(np.int64).tolist()]
    else:
        x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
        corners = np.stack([x1, y1, x2, y1, x2, y2, x1, y2], axis=1)
        lines = [" ".join(f"{v:.2f}" for v in row) for row in corners]
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
