"""PR / NPR / SR exactly as the LasHeR toolkit computes them.

Per sequence (after the toolkit's repair of the prediction file):

* centre      c = (x + (w - 1) / 2, y + (h - 1) / 2)
* PR error    e = ||c_pred - c_gt||_2                                   (pixels)
* NPR error   e_n = sqrt(((cx_p - cx_g) / w_g)^2 + ((cy_p - cy_g) / h_g)^2)
* IoU         pixel-inclusive: right = x + w - 1, inter = max(0, min(r) - max(l) + 1) * (same in y),
              IoU = inter / (w_a h_a + w_b h_b - inter)
* invalid GT  (any of x, y, w, h <= 0): e = e_n = IoU = -1, i.e. a success at every PR/NPR
              threshold and a failure at every SR threshold; all frames are in the denominator.

Curves: PR(t) = mean(e <= t) for t = 0..50 px, score PR(20); NPR(t) for t = 0..0.5 step 0.01,
score NPR(0.2); SR(t) = mean(IoU > t) (strict) for t = 0..1 step 0.05, score = mean of the 21
points. A data set's curves are the mean of its sequences' curves.

Repair of predictions: rows beyond the GT length are dropped; a row with NaN, w <= 0 or h <= 0
takes the previous prediction; frame 1 is replaced by the GT. A result file with *fewer* rows
than the GT, or a non-numeric field, is an error naming the file.

Which ground truth (``gt``): predictions are boxes in RGB image pixels. ``visible`` (the default, and how
the unaligned benchmarks are scored) compares them with ``visible.txt``. ``infrared`` compares them with
``infrared.txt``, which is in TIR image pixels: on an unaligned set (other resolution, other viewpoint) the
predictions are first mapped into TIR pixels through the sequence's per-frame ``homography.txt``
(``warp_boxes(H_t, box)``, then repaired again in TIR pixels); when the two GT files are identical (aligned
LasHeR) no mapping is needed; a sequence whose GT files differ and that has no homography.txt is refused,
because comparing RGB-pixel boxes with TIR-pixel boxes would give a meaningless score, unless the caller
states that the two cameras are registered (``aligned=True``, ``--aligned``: RGBT234, whose two GTs were
annotated separately on registered frames). ``both`` is RGBT234's MPR/MSR: per frame the smaller error and
the larger IoU over the visible and the (mapped) infrared comparison, each in its own GT's pixels.

Result files (``track_outputs.write_result``): one per sequence, ``<seq>.txt`` or, as RGBT234's toolkit names them,
``<Tracker>_<seq>.txt`` (one prefix for the whole folder, found by looking); rows of 4 values x, y, w, h separated by
commas (``lasher``) or white space (``official``), or of 8 values, the corners x1 y1 x2 y1 x2 y2 x1 y2 of one box
(``corners``), read as the ``rgbt`` package's RGBT234 loader reads them: x1, y1, x2 - x1, y2 - y1. A corner row that
is not one axis-aligned box (e.g. an RGB box then a TIR box), a row of another length, or a folder (or file) mixing
4-value and 8-value rows is an error naming the file and line (commas and spaces may mix: the toolkits read both). Unlike ``rgbt``, predictions are not rounded to integers.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

from ..data.dataset import Sequence, load_dataset
from ..errors import PMATrackError
from ..geometry import box_center, warp_boxes
from ..utils import atomic_path, write_json_atomic

PR_THRESHOLDS = np.arange(0, 51, dtype=np.float64)               # 51 values, score at 20 px
NPR_THRESHOLDS = np.round(np.arange(0, 51) * 0.01, 2)            # 51 values, score at 0.20
SR_THRESHOLDS = np.round(np.arange(0, 21) * 0.05, 2)             # 21 values, score = mean
PR_AT, NPR_AT = 20, 20                                           # indices of 20 px and 0.20


def repair_predictions(pred: np.ndarray, gt: np.ndarray, name: str = "results") -> np.ndarray:
    """The toolkit's repair: cut to GT length, fill bad rows with the previous row, frame 1 := GT."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    if len(pred) < len(gt):
        raise PMATrackError(f"{name}: {len(pred)} prediction rows, but the ground truth has {len(gt)}")
    pred = pred[: len(gt)].copy()
    pred[0] = gt[0]
    for t in range(1, len(pred)):
        row = pred[t]
        if not np.all(np.isfinite(row)) or row[2] <= 0 or row[3] <= 0:
            pred[t] = pred[t - 1]
    return pred


def invalid_gt(gt: np.ndarray) -> np.ndarray:
    return np.any(gt <= 0, axis=1)


def center_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    e = np.linalg.norm(box_center(pred) - box_center(gt), axis=1)
    e[invalid_gt(gt)] = -1.0
    return e


def normalized_center_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    bad = invalid_gt(gt)
    wh = np.where(bad[:, None], 1.0, gt[:, 2:4])
    e = np.linalg.norm((box_center(pred) - box_center(gt)) / wh, axis=1)
    e[bad] = -1.0
    return e


def iou_inclusive(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixel-inclusive IoU of (N, 4) x, y, w, h boxes; -1 where b (the GT) is invalid."""
    ra, rb = a[:, 0] + a[:, 2] - 1, b[:, 0] + b[:, 2] - 1
    ba, bb = a[:, 1] + a[:, 3] - 1, b[:, 1] + b[:, 3] - 1
    iw = np.maximum(0.0, np.minimum(ra, rb) - np.maximum(a[:, 0], b[:, 0]) + 1)
    ih = np.maximum(0.0, np.minimum(ba, bb) - np.maximum(a[:, 1], b[:, 1]) + 1)
    inter = iw * ih
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    iou[invalid_gt(b)] = -1.0
    return iou


def prediction_in(seq: Sequence, pred: np.ndarray, which: str, aligned: bool = False,
                  name: str = "results") -> np.ndarray:
    """``pred`` (RGB image pixels) repaired and expressed in the pixels of the ``which`` GT (see the module
    docstring): through ``homography.txt`` when the sequence has one, unchanged when the two GT files are
    identical or ``aligned``; otherwise a PMATrackError saying why the comparison would be meaningless."""
    pred = repair_predictions(pred, seq.gt_visible, name)
    if which == "visible":
        return pred
    if seq.homography is not None:
        with np.errstate(divide="ignore", invalid="ignore"):   # a degenerate mapped box is repaired below
            mapped = warp_boxes(seq.homography, pred)
        return repair_predictions(mapped, seq.gt_infrared, name)
    if aligned or np.array_equal(seq.gt_visible, seq.gt_infrared):
        return repair_predictions(pred, seq.gt_infrared, name)
    raise PMATrackError(
        f"{seq.path or seq.name}: infrared.txt is in TIR pixels and the predictions in RGB pixels; this "
        "sequence's visible.txt and infrared.txt differ (unaligned) and it has no homography.txt to map the "
        "predictions into TIR pixels: score it with --gt visible, or pass --aligned if its two cameras are "
        "registered (as RGBT234's)")


def sequence_curves(pred: np.ndarray, gts: list[np.ndarray], name: str = "results") -> dict:
    """Curves of one sequence, ``pred`` in the pixels of every GT of ``gts`` (see :func:`pair_curves`)."""
    return pair_curves([(repair_predictions(pred, g, name), g) for g in gts])


def pair_curves(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Curves of one sequence from (repaired prediction, GT) pairs, each pair in one modality's pixels.
    One pair, or two (RGBT234's MPR/MSR: per frame the smaller error and the larger IoU of the two)."""
    err = np.min([center_errors(p, g) for p, g in pairs], axis=0)
    nerr = np.min([normalized_center_errors(p, g) for p, g in pairs], axis=0)
    iou = np.max([iou_inclusive(p, g) for p, g in pairs], axis=0)
    return dict(
        PR=(err[None, :] <= PR_THRESHOLDS[:, None]).mean(axis=1),
        NPR=(nerr[None, :] <= NPR_THRESHOLDS[:, None]).mean(axis=1),
        SR=(iou[None, :] > SR_THRESHOLDS[:, None]).mean(axis=1),
        errors=err, iou=iou,
    )


def scores(curves: dict) -> dict:
    return dict(PR=float(curves["PR"][PR_AT]), NPR=float(curves["NPR"][NPR_AT]), SR=float(np.mean(curves["SR"])))


def _mean_curves(items: list[dict]) -> dict:
    return {k: np.mean([c[k] for c in items], axis=0) for k in ("PR", "NPR", "SR")}


def evaluate_predictions(sequences: list[Sequence], predictions: dict, gt: str = "visible",
                         aligned: bool = False) -> dict:
    """Score ``predictions`` {sequence name: (T, 4) boxes in RGB pixels} on ``sequences``.

    ``gt``: ``visible`` (default; the unaligned benchmarks score against the RGB GT), ``infrared``, or
    ``both`` (RGBT234's MPR/MSR); for the last two, predictions are mapped into TIR pixels as the module
    docstring says (``aligned``: the cameras are registered, take them as they are). Returns the JSON-ready
    report.
    """
    if gt not in ("visible", "infrared", "both"):
        raise PMATrackError(f"gt must be visible, infrared or both; got {gt!r}")
    which = ("visible", "infrared") if gt == "both" else (gt,)
    per_seq, curves = {}, {}
    for seq in sequences:
        if seq.name not in predictions:
            raise PMATrackError(f"no prediction for sequence {seq.name!r}")
        pairs = [(prediction_in(seq, predictions[seq.name], w, aligned, name=seq.name), seq.gt(w)) for w in which]
        c = pair_curves(pairs)
        curves[seq.name] = c
        per_seq[seq.name] = scores(c)
    if not curves:
        raise PMATrackError("no sequences to evaluate")
    overall = _mean_curves(list(curves.values()))
    attributes = {}
    names = sorted({a for s in sequences for a in s.sequence_attributes()})
    for a in names:
        members = [s.name for s in sequences if a in s.sequence_attributes()]
        attributes[a] = dict(scores(_mean_curves([curves[m] for m in members])), sequences=len(members))
    return dict(
        **scores(overall), gt=gt, num_sequences=len(curves),
        sequences=per_seq, attributes=attributes,
        curves=dict(pr_thresholds=PR_THRESHOLDS.tolist(), npr_thresholds=NPR_THRESHOLDS.tolist(),
                    sr_thresholds=SR_THRESHOLDS.tolist(),
                    PR=overall["PR"].tolist(), NPR=overall["NPR"].tolist(), SR=overall["SR"].tolist()),
    )


_SPLIT = re.compile(r"[,\s]+")
_FORMAT_ROWS = {"boxes": "4-value x,y,w,h", "corners": "8-value corner"}


def _corner_box(c: list, where: str) -> list:
    """x1 y1 x2 y1 x2 y2 x1 y2 -> x1, y1, x2 - x1, y2 - y1, once the repeated values are checked to agree."""
    if all(np.isfinite(c)) and not np.allclose([c[6], c[3], c[4], c[7]], [c[0], c[1], c[2], c[5]], atol=1e-3):
        raise PMATrackError(f"{where}: 8 values must be the corners x1 y1 x2 y1 x2 y2 x1 y2 of one box (columns 7, 4, "
                            "5, 8 repeating 1, 2, 3, 6); this row is not (an RGB box then a TIR box?)")
    return [c[0], c[1], c[2] - c[0], c[5] - c[1]]


def read_result_file(path: str | Path, expect: tuple | None = None) -> tuple[np.ndarray, str]:
    """(N, 4) x, y, w, h boxes of one result file and its kind of rows (``boxes``: 4 values, ``corners``: 8; see the
    module docstring). NaN rows are kept (the toolkit repairs them). ``expect`` = (format, file): the format the
    folder's first file had; a file in another one is an error at its first row."""
    path = Path(path)
    rows, fmt = [], expect[0] if expect else None
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        fields = [f for f in _SPLIT.split(line) if f]
        where = f"{path}:{lineno}"
        if len(fields) not in (4, 8):
            raise PMATrackError(f"{where}: expected 4 values (x,y,w,h) or 8 (corners x1 y1 x2 y1 x2 y2 x1 y2), "
                                f"got {len(fields)}: {line!r}")
        kind = "corners" if len(fields) == 8 else "boxes"     # lasher and official rows: commas or spaces alike
        if fmt is None:
            fmt = kind
        elif kind != fmt:
            other = f"{expect[1]} has" if expect and not rows else "earlier rows are"
            raise PMATrackError(f"{where}: {_FORMAT_ROWS[kind]} row, but {other} {_FORMAT_ROWS[fmt]} rows; "
                                "one result format per folder")
        try:
            vals = [float(f) for f in fields]
        except ValueError:
            raise PMATrackError(f"{where}: non-numeric value in {line!r}") from None
        rows.append(_corner_box(vals, where) if kind == "corners" else vals)
    if not rows:
        raise PMATrackError(f"{path}: no box rows")
    return np.asarray(rows, dtype=np.float64), fmt


def result_prefix(results_dir: Path, names: list[str]) -> str:
    """``""`` when every ``<seq>.txt`` is there, else the one prefix P (RGBT234's ``<Tracker>_``) with every
    ``P<seq>.txt`` there; a PMATrackError naming a missing file, or the prefixes when several fit."""
    files = {p.name for p in results_dir.iterdir() if p.is_file() and not p.name.startswith(".")}
    count = Counter()
    for n in names:
        count.update({f[: -len(n) - 4] for f in files if f == f"{n}.txt" or f.endswith(f"_{n}.txt")})
    full = sorted(p for p, c in count.items() if c == len(names))
    if len(full) == 1 or "" in full:
        return full[0]
    if full:
        raise PMATrackError(f"{results_dir}: result files of several trackers ({', '.join(full)}); keep one per folder")
    best = max(sorted(count), key=count.get, default="")     # the prefix most sequences have ("" on a tie)
    missing = [n for n in names if f"{best}{n}.txt" not in files]
    raise PMATrackError(f"{results_dir}: no result file for {len(missing)} sequence(s), e.g. {best}{missing[0]}.txt"
                        + ("" if best else f" (or <Tracker>_{missing[0]}.txt)"))


def read_results(results_dir: str | Path, sequences: list[Sequence]) -> dict:
    """Read every sequence's result file (see the module docstring), all in one format."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise PMATrackError(f"{results_dir}: results folder not found")
    prefix = result_prefix(results_dir, [s.name for s in sequences])
    preds, expect = {}, None
    for s in sequences:
        path = results_dir / f"{prefix}{s.name}.txt"
        preds[s.name], fmt = read_result_file(path, expect)
        expect = expect or (fmt, path)
        if len(preds[s.name]) < len(s):   # checked here too, so that the message names the file
            raise PMATrackError(f"{path}: {len(preds[s.name])} prediction rows, but the ground truth has {len(s)}")
    return preds


def evaluate(dataset: str | Path, results: str | Path, gt: str = "visible", list_file=None,
             aligned: bool = False, layout: str = "auto") -> dict:
    """Score a results folder on a dataset folder (``layout``: see ``data.layouts``; ``auto`` detects it)."""
    sequences = load_dataset(dataset, list_file=list_file, layout=layout)
    return evaluate_predictions(sequences, read_results(results, sequences), gt=gt, aligned=aligned)


def plot_curves(reports: dict, path: str | Path | None = None, title: str = ""):
    """Precision and success plots for one or more reports {label: report}. Saves a PNG if ``path``."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=110)
    for label, rep in reports.items():
        c = rep["curves"]
        ax1.plot(c["pr_thresholds"], c["PR"], label=f"{label} [{rep['PR']:.3f}]")
        ax2.plot(c["sr_thresholds"], c["SR"], label=f"{label} [{rep['SR']:.3f}]")
    ax1.set(xlabel="location error threshold (px)", ylabel="precision", title=f"Precision plot {title}".strip())
    ax2.set(xlabel="overlap threshold", ylabel="success rate", title=f"Success plot {title}".strip())
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=9, loc="lower left" if ax is ax2 else "lower right")
    fig.tight_layout()
    if path is not None:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
    return fig


def format_report(rep: dict) -> str:
    lines = [f"{'sequence':<28} {'PR':>6} {'NPR':>6} {'SR':>6}"]
    for name, s in rep["sequences"].items():
        lines.append(f"{name:<28} {100 * s['PR']:6.1f} {100 * s['NPR']:6.1f} {100 * s['SR']:6.1f}")
    for name, s in rep["attributes"].items():
        lines.append(f"{'[' + name + ']':<28} {100 * s['PR']:6.1f} {100 * s['NPR']:6.1f} {100 * s['SR']:6.1f}  ({s['sequences']} seq)")
    lines.append(f"{'ALL (' + str(rep['num_sequences']) + ' seq, gt=' + rep['gt'] + ')':<28} "
                 f"{100 * rep['PR']:6.1f} {100 * rep['NPR']:6.1f} {100 * rep['SR']:6.1f}")
    return "\n".join(lines)


def save_report(rep: dict, path: str | Path) -> None:
    write_json_atomic(path, rep)
