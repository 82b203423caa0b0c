"""The reports of ``pmatrack-mini reproduce``: DIR/{components,progressive}.{md,json}.

Each table: PR / NPR / SR per offset level beside the paper's numbers, MACs per frame, expert usage, TOCU's
acceptance, the modality-failure stress set (``failure_report``), one line per ordering the paper claims
(``ordering_lines``: reproduced, NOT reproduced or within noise by per-sequence bootstrap intervals,
``intervals``), the precision / success curves of every row and level
(recomputed from the tracked boxes kept in DIR), and what the whole DIR cost to compute.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..evaluation.intervals import gap_share, interval_text, mean_difference, paired_interval, paired_values, verdict
from ..utils import machine_info, read_json, write_json_atomic, write_text_atomic

STRESS = "stress"                        # the modality-failure set, reported on its own
PHOTO = "photo"                          # the photograph set (dynamic offset), reported on its own
# what the paper tuple of a row holds (reproduce.Row.paper)
PAPER_COLUMNS = ("LasHeR-UA PR", "LasHeR-UA NPR", "LasHeR-UA SR", "MUART244 PR", "MUART244 NPR", "MUART244 SR",
                 "GFLOPs")

# The paper's orderings, as (table, [row labels in the claimed increasing order], metric, level of ours)
_COMPONENTS = ["Baseline", "TRE only", "FME only", "DPE only", "Full (router + TOCU)"]
STATIC = "Baseline + static pre-alignment"
STAGES = ("Centre only", "Centre + scale", "Centre + scale + refine")
ONE_SHOT = "One-shot (all four parameters at one stage)"     # ours: progressive against one-shot, equal fusion
_PROGRESSIVE = [STATIC, *STAGES]
ORDERINGS = (("components", _COMPONENTS, "PR", "small"), ("components", _COMPONENTS, "PR", "dynamic"),
             ("progressive", _PROGRESSIVE, "PR", "small"), ("progressive", _PROGRESSIVE, "PR", "dynamic"),
             ("progressive", [ONE_SHOT, STAGES[-1]], "PR", "dynamic"))


def failure_report(seqs: list, preds: dict, folder: Path) -> dict:
    """During and after the stretch where the target vanishes in one modality: the share of frames whose centre
    error is <= 20 px (during, the 10 frames after, elsewhere), and how often TOCU accepted an update during the
    failure vs elsewhere (from ``<seq>.align.csv``)."""
    import csv

    import numpy as np

    from ..evaluation.evaluate import center_errors

    ok = {"during": [], "after": [], "elsewhere": []}
    accepted = {"during": [], "elsewhere": []}
    for seq in seqs:
        fail = seq.attributes["modality_failure"]
        err = center_errors(preds[seq.name], seq.gt_visible)
        after = np.zeros_like(fail)
        if fail.any():
            end = int(np.flatnonzero(fail)[-1]) + 1
            after[end:end + 10] = True
        for name, mask in (("during", fail), ("after", after), ("elsewhere", ~fail & ~after)):
            ok[name] += list((err[mask] <= 20) & (err[mask] >= 0))
        rows = list(csv.DictReader((folder / f"{seq.name}.align.csv").open()))
        for r in rows:
            if r.get("tocu") in ("accepted", "rejected", "skipped"):
                where = "during" if fail[int(r["frame"]) - 1] else "elsewhere"
                accepted[where].append(r["tocu"] == "accepted")
    mean = lambda v: float(np.mean(v)) if v else None
    return dict(success_at_20px={k: mean(v) for k, v in ok.items()},
                tocu_accepted={k: mean(v) for k, v in accepted.items()},
                failed_modality={s.name: read_json(s.path / "meta.json").get("failed_modality") for s in seqs})


def ordering_lines(table: str, results: dict, per_seq: dict | None = None) -> list[str]:
    """One line per ordering the paper claims for ``table``. With ``per_seq`` ({label: {level: {sequence: scores}}})
    each step of the ordering carries the per-sequence bootstrap 95 % interval of its difference (``intervals``):
    reproduced when every step's interval lies above 0, NOT reproduced when one lies at or below 0, else within
    noise. Without it, a strict rise of the point estimates decides (a tie is no gain)."""
    lines = []
    for tab, labels, metric, level in ORDERINGS:
        if tab != table or level not in next(iter(results.values())) or any(lab not in results for lab in labels):
            continue                              # (a table written before these rows existed has none)
        vals = [results[lab][level][metric] for lab in labels]
        if per_seq is None:
            ok = all(a < b for a, b in zip(vals, vals[1:]))
            word, steps = ("reproduced" if ok else "NOT reproduced"), ""
        else:
            series = paired_values(per_seq, labels, level, metric)
            cis = [paired_interval(mean_difference, a, b) for a, b in zip(series, series[1:])]
            words = [verdict(*ci) for ci in cis]
            word = ("NOT reproduced" if "NOT reproduced" in words else
                    "within noise" if "within noise" in words else "reproduced")
            n = len(series[0])
            steps = (f"; steps, 95 % interval over {n} sequences: " if n > 1 else "; steps (one sequence: no "
                     "interval): ") + ", ".join(interval_text(*ci) for ci in cis)
        lines.append(f"- {' < '.join(labels)} in {metric} at offset {level}: {word}"
                     f" ({' / '.join(f'{100 * v:.1f}' for v in vals)}{steps})")
    return lines


FULL, NO_TOCU, ORACLE = "Full (router + TOCU)", "Router without TOCU", "Oracle alignment (stage 1)"
TRE_ONLY, FME_ONLY, DPE_ONLY = "TRE only", "FME only", "DPE only"
BASELINES = ("Baseline", "Baseline + static pre-alignment")


def goal_lines(results: dict, per_seq: dict | None = None) -> list[str]:
    """The goals set for the full model, each met, NOT met (or, with ``per_seq``, within noise: the per-sequence
    bootstrap 95 % interval straddles the goal's threshold) with its numbers (levels missing from a run are
    skipped): on dynamic, at least half of the better baseline's gap to the oracle closed in PR, NPR and SR; on
    small and none, no more than 1 PR point below the better baseline; routing pays: the router without TOCU at most
    0.9 x DPE only's MACs per frame (the paper: 72.6 / 81.4 = 0.89), PR / NPR / SR no more than 1 point below DPE
    only and above TRE only; the cheapest expert on most aligned frames, heavier ones more often on the dynamic set
    (frame shares: no interval); on the photograph set, at least 0.3 of static pre-alignment's NPR gap to the oracle
    closed (alignment that transfers beyond the generator's textures)."""
    lines, full = [], results[FULL]
    words = ("met", "NOT met", "within noise")
    better = lambda lvl: max(BASELINES, key=lambda b: results[b][lvl]["PR"])

    def judged(labels, level, metric, statistic, threshold, scale=100.0, signed=True):
        """(verdict, text) of ``statistic`` over the rows' per-sequence values, or of the table values alone."""
        if per_seq is None:
            est = statistic(*[[results[lab][level][metric]] for lab in labels])
            return verdict(est, float("nan"), float("nan"), threshold, words), interval_text(
                est, float("nan"), float("nan"), scale, signed)
        ci = paired_interval(statistic, *paired_values(per_seq, labels, level, metric))
        return verdict(*ci, threshold, words), interval_text(*ci, scale, signed)

    def combined(parts):
        ws = [w for w, _ in parts]
        return "NOT met" if "NOT met" in ws else "within noise" if "within noise" in ws else "met"

    if "dynamic" in full:
        labels = [FULL, better("dynamic"), ORACLE]
        parts = {m: judged(labels, "dynamic", m, gap_share, 0.5 - 1e-12, scale=1.0, signed=False)
                 for m in ("PR", "NPR", "SR")}
        lines.append(f"- dynamic: closes >= 1/2 of the gap from the better baseline ({better('dynamic')}) to the oracle "
                     f"in PR, NPR and SR: {combined(parts.values())} ("
                     + ", ".join(f"{m} {t}" for m, (_, t) in parts.items()) + ")")
    for lvl in ("small", "none"):
        if lvl in full:
            b = results[better(lvl)][lvl]["PR"]
            word, text = judged([better(lvl), FULL], lvl, "PR", mean_difference, -0.01 - 1e-12)
            lines.append(f"- {lvl}: PR not below the better baseline ({better(lvl)}) by more than 1 point: "
                         f"{word} ({100 * full[lvl]['PR']:.1f} vs {100 * b:.1f}; difference {text})")
    if "dynamic" in full and all(lab in results for lab in (NO_TOCU, DPE_ONLY, TRE_ONLY)):
        r, dpe = results[NO_TOCU]["dynamic"], results[DPE_ONLY]["dynamic"]
        ratio = r["macs_per_frame"] / dpe["macs_per_frame"]
        near = {m: judged([DPE_ONLY, NO_TOCU], "dynamic", m, mean_difference, -0.01 - 1e-12) for m in ("PR", "NPR", "SR")}
        above = {m: judged([TRE_ONLY, NO_TOCU], "dynamic", m, mean_difference, 0.0) for m in ("PR", "NPR", "SR")}
        word = "NOT met" if ratio > 0.9 else combined(list(near.values()) + list(above.values()))
        lines.append(f"- routing pays (dynamic): the router without TOCU costs <= 0.9 x DPE only's MACs per frame with "
                     f"PR, NPR and SR no more than 1 point below DPE only and above TRE only: {word} (ratio "
                     f"{ratio:.2f}; vs DPE only " + ", ".join(f"{m} {t}" for m, (_, t) in near.items())
                     + "; vs TRE only " + ", ".join(f"{m} {t}" for m, (_, t) in above.items()) + ")")
    usage = {lvl: full[lvl]["expert_usage"] for lvl in ("none", "dynamic") if lvl in full and full[lvl]["expert_usage"]}
    if usage:
        cheapest = "tre"
        share = {lvl: {role: u.get(cheapest, 0.0) for role, u in use.items()} for lvl, use in usage.items()}
        aligned = share.get("none")
        if aligned is not None:
            lines.append(f"- the cheapest expert (TRE) on at least half of the aligned frames (offset none), every "
                         f"stage: {words[0] if all(v >= 0.5 for v in aligned.values()) else words[1]} ("
                         + ", ".join(f"{r} {v:.2f}" for r, v in aligned.items()) + ")")
        if aligned is not None and "dynamic" in share:
            heavier = {r: (1 - share["dynamic"][r], 1 - aligned[r]) for r in aligned}
            lines.append("- heavier experts (FME, DPE): their share on the dynamic set at least 0.2 above their share "
                         "on aligned frames, at one stage at least: "
                         f"{words[0] if any(d - a >= 0.2 for d, a in heavier.values()) else words[1]} ("
                         + ", ".join(f"{r} {d:.2f} vs {a:.2f}" for r, (d, a) in heavier.items()) + ")")
    static = BASELINES[1]
    if PHOTO in full and all(PHOTO in results[lab] for lab in (static, ORACLE)):
        word, text = judged([FULL, static, ORACLE], PHOTO, "NPR", gap_share, 0.3 - 1e-12, scale=1.0, signed=False)
        lines.append(f"- photographs (dynamic offset, scenes no training set used): closes >= 0.3 of the NPR gap from "
                     f"{static} to the oracle: {word} (NPR {text})")
    return lines


COST_RANK = {"tre": 0, "fme": 1, "dpe": 2}      # the experts from the cheapest to the dearest


def difficulty_line(folder: Path, seqs: list, label: str) -> str:
    """Within one set, does the router send the frames whose crops are further from aligned to dearer experts?
    Spearman's rank correlation, per stage and pooled over frames, between the chosen expert's cost rank (TRE 0,
    FME 1, DPE 2) and the true residual at the target of the crop the frame was cut through (``<seq>.align.csv``,
    ``residual_crop_px``); the goal is 0.3 or more at one stage at least. A stage whose router always chose one
    expert has no correlation (n/a)."""
    import csv

    from scipy.stats import spearmanr

    rows = []
    for s in seqs:
        path = folder / f"{s.name}.align.csv"
        if path.is_file():
            with open(path, newline="") as f:
                rows += [r for r in csv.DictReader(f) if r.get("residual_crop_px")]
    roles = [k[: -len("_expert")] for k in (rows[0] if rows else {}) if k.endswith("_expert")]
    rho = {}
    for role in roles:
        ranks = [COST_RANK[r[f"{role}_expert"]] for r in rows]
        residual = [float(r["residual_crop_px"]) for r in rows]
        rho[role] = float(spearmanr(ranks, residual).statistic) if len(set(ranks)) > 1 else float("nan")
    met = any(v >= 0.3 for v in rho.values() if v == v)
    return (f"- within the dynamic set, dearer experts where the true residual is larger (Spearman >= 0.3 at one "
            f"stage at least): {'met' if met else 'NOT met'} ("
            + ", ".join(f"{r} {v:.2f}" if v == v else f"{r} n/a (one expert only)" for r, v in rho.items())
            + f"; {len(rows)} frames, {label})")


def write_table(ws, table: str, rows: tuple, results: dict, command: str, seconds: float) -> None:
    """DIR/<table>.md and .json: ours beside the paper's, usage, stress set, orderings, curves and the cost."""
    levels, info = ws.rc.levels, machine_info()
    cost = ws.cost()
    L = [f"# The paper's {table} ablation, reproduced on generated data", "",
         f"Command: `{command}`  ", f"Machine: {info['processor']} ({info['cpu_count']} cores), torch {info.get('torch')}; "
         f"time for this call {seconds / 60:.1f} min (cached networks and tracked rows are reused).  ",
         f"What everything in DIR cost to compute (from the logged training speeds and the measured tracking FPS): "
         f"{cost_line(cost)}.  ",
         f"Size: {dataclasses.asdict(ws.rc)}", "",
         "Ours: PR / NPR / SR (%) per offset level; MACs per frame of the network's forward on the dynamic set, and of "
         "TOCU's check forwards apart. The paper's numbers (LasHeR-"
         "Unaligned, ViT-B) beside: small is our LasHeR-Unaligned regime, large / dynamic MUART244's.", "",
         "| row | " + " | ".join(levels) + " | GMACs/frame | TOCU check GMACs/frame | paper LasHeR-UA | paper MUART244 "
         "| paper GFLOPs |",
         "|---|" + "---|" * (len(levels) + 5)]
    for row in rows:
        r = results[row.label]
        cells = [f"{100 * r[l]['PR']:.1f} / {100 * r[l]['NPR']:.1f} / {100 * r[l]['SR']:.1f}" for l in levels]
        p = row.paper or (None,) * 7
        paper = [" / ".join(str(v) for v in p[:3]) if p[0] else "-",
                 " / ".join(str(v) for v in p[3:6]) if p[3] else "-", str(p[6]) if p[6] else "-"]
        macs = r[levels[-1]]["macs_per_frame"] / 1e9
        check = r[levels[-1]].get("tocu_macs_per_frame", 0.0) / 1e9
        L.append(f"| {row.label} | " + " | ".join(cells) + f" | {macs:.3f} | {check:.3f} | " + " | ".join(paper) + " |")
    L += ["", "Expert usage (fraction of frames, last level) and TOCU acceptance:", ""]
    for row in rows:
        r = results[row.label][levels[-1]]
        if r["expert_usage"]:
            use = "; ".join(f"{role}: " + ", ".join(f"{e} {v:.2f}" for e, v in u.items())
                            for role, u in r["expert_usage"].items())
            t = r["tocu"]
            L.append(f"- {row.label}: {use}" + (f"; TOCU accepted {t['acceptance_per_frame']:.2f} of frames" if t else ""))
    L += ["", f"Modality-failure stress set ({ws.rc.stress_sequences} dynamic sequences, the target vanishes in one "
          "modality for 15-25 % of the frames): PR / NPR / SR; share of frames within 20 px during the failure, in the "
          "10 frames after it, elsewhere; TOCU's acceptance during the failure vs elsewhere.", ""]
    for row in rows:
        r = results[row.label][STRESS]
        f = r["failure"]
        fmt = lambda v: "-" if v is None else f"{v:.2f}"
        L.append(f"- {row.label}: {100 * r['PR']:.1f} / {100 * r['NPR']:.1f} / {100 * r['SR']:.1f}; within 20 px "
                 + ", ".join(f"{k} {fmt(v)}" for k, v in f["success_at_20px"].items())
                 + ("; TOCU accepted " + ", ".join(f"{k} {fmt(v)}" for k, v in f["tocu_accepted"].items())
                    if row.tocu else ""))
    if PHOTO in ws.test_sets():
        L += ["", f"Photographs ({ws.rc.photo_sequences} dynamic sequences whose backgrounds and targets are "
              f"photographs; training sets: {ws.rc.train_background}): PR / NPR / SR.", ""]
        L += [f"- {row.label}: " + " / ".join(f"{100 * results[row.label][PHOTO][m]:.1f}" for m in ("PR", "NPR", "SR"))
              for row in rows]
    reports = {row.label: {lvl: ws.report(row, lvl) for lvl in ws.test_sets()} for row in rows}
    per_seq = {label: {lvl: rep["sequences"] for lvl, rep in by_level.items()} for label, by_level in reports.items()}
    L += ["", "Orderings the paper claims (a step's difference in points with its per-sequence bootstrap 95 % "
          "interval; within noise: the interval straddles 0):", ""] + ordering_lines(table, results, per_seq)
    if table == "components":
        L += ["", "This project's goals for the full model (per-sequence bootstrap 95 % intervals, given two or more "
              "sequences):", ""] \
            + goal_lines(results, per_seq)
        full = next(r for r in rows if r.label == FULL)
        if "dynamic" in ws.rc.levels:
            L.append(difficulty_line(ws.root / "results" / ws.row_key(full) / "dynamic", ws.data("test", "dynamic"),
                                     FULL))
    write_text_atomic(ws.root / f"{table}.md", "\n".join(L) + "\n")
    curves = {label: {lvl: rep["curves"] for lvl, rep in by_level.items()} for label, by_level in reports.items()}
    write_json_atomic(ws.root / f"{table}.json", dict(command=command, machine=info, seconds=seconds, cost=cost,
                                                       config=dataclasses.asdict(ws.rc), paper_columns=PAPER_COLUMNS,
                                                       rows={row.label: dict(result=results[row.label],
                                                                             curves=curves[row.label],
                                                                             per_sequence=per_seq[row.label],
                                                                             network=row.network, prealign=row.prealign,
                                                                             routing=row.routing, tocu=row.tocu,
                                                                             paper=row.paper) for row in rows}))


def cost_line(cost: dict) -> str:
    m = lambda s: f"{s / 60:.1f} min"
    return (f"stage-1 training {m(cost['stage1_train_s'])}, stage-2 training {m(cost['stage2_train_s'])} "
            f"({len(cost['stage2_runs'])} networks), tracking {m(cost['tracking_s'])} "
            f"({cost['tracked_frames']} frames); total {m(cost['total_s'])}")
