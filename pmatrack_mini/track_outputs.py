"""What ``pmatrack-mini track`` writes besides the toolkit's ``<seq>.txt``: per frame ``<seq>.align.csv``, per run
``track_summary.json``.

``<seq>.align.csv``, one row per tracked frame (frame 1 is the initialisation and has none):
  frame, score (windowed peak), raw_score, macs (this frame's forwards, TOCU's check included),
  per stage ``<role>_expert`` and ``<role>_dx, _dy, _log_sx, _log_sy`` (crop px / log scale),
  ``tocu`` (accepted / rejected / skipped / off), ``tocu_reason``, ``tocu_change_px``, ``tocu_iou_proposed``,
  ``tocu_iou_current``;
  with the generator's ``homography.txt``: ``residual_crop_px``, the true alignment residual at the target of the
  homography the TIR crops were cut through, and ``residual_network_px``, of that homography corrected by the
  network's alignment (RGB px; ``tocu.residual_px``), so alignment error over time can be plotted.

``track_summary.json``: per sequence and overall, frames, FPS, MACs per frame, expert usage per stage, TOCU's
acceptance rate (accepted / frames, and accepted / checked), the mean residuals.
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import numpy as np

from .tocu import residual_px
from .utils import write_json_atomic, write_text_atomic


def frame_row(t: int, info: dict, H_true=None, gt_box=None) -> dict:
    """One CSV row from the tracker's ``last_info`` of frame t (0-based)."""
    row = dict(frame=t + 1, score=info["score"], raw_score=info["raw_score"], macs=info.get("macs", 0))
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
    out = dict(frames=len(rows), fps=fps, macs_per_frame=float(np.mean([r["macs"] for r in rows])) if rows else 0.0)
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
               macs_per_frame=sum(s["macs_per_frame"] * s["frames"] for s in per_sequence.values()) / frames)
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
