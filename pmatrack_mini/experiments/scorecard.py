"""The scorecard: each of the paper's claims, and each gap the paper leaves, judged on this project's stored results.

    pmatrack-mini scorecard [--results results] [--json F] [--readme README.md]

One source for notebook 00, the top of notebook 09 and the README (``--readme`` rewrites the block between its
``<!-- scorecard -->`` markers; a test checks that the README's block is what this module prints). Every verdict is
computed from files in ``results/`` (``reproduce``'s tables, the router-input and alignment benchmarks), never typed
in: rerunning a benchmark changes the card. Verdicts:

* **holds**: every difference the claim needs lies on the claimed side (per-sequence bootstrap 95 % interval, or the
  point estimate when the stored file has no per-sequence scores: the line says so);
* **partly**: some of them do;
* **does not hold**: none does, and at least one lies on the other side (the data speak against the claim);
* **not shown**: every difference is within noise (its interval straddles 0): the data neither support nor refute it;
* **not measured**: the stored results lack the rows the claim needs (the line names them).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import PMATrackError
from ..evaluation.intervals import interval_text, mean_difference, paired_interval, paired_values, verdict
from ..utils import read_json, write_json_atomic, write_text_atomic
from .reproduce_report import DPE_ONLY as DPE, FME_ONLY as FME, FULL, NO_TOCU, ONE_SHOT, PHOTO, STAGES, STATIC, STRESS
from .reproduce_report import TRE_ONLY as TRE

BEGIN, END = "<!-- scorecard -->", "<!-- /scorecard -->"
SOURCES = ("reproduce/components.json", "reproduce/progressive.json", "stage2_alignment.json", "router_inputs.json")
LEVEL = "dynamic"                        # the level where alignment matters: the offset drifts through the sequence


@dataclass(frozen=True)
class Claim:
    claim: str                           # what the paper says (or the gap it leaves)
    verdict: str                         # holds / partly / does not hold / not shown / not measured
    number: str                          # the key number(s), with the interval
    reason: str                          # why, from the same files
    notebook: str                        # where a reader sees it


class Table:
    """One of ``reproduce``'s tables (DIR/<table>.json): row results, and per-sequence scores when stored."""

    def __init__(self, path: Path):
        self.path = path
        data = read_json(path) if path.is_file() else {"rows": {}}
        self.rows = {label: r["result"] for label, r in data["rows"].items()}
        self.per_seq = {label: r["per_sequence"] for label, r in data["rows"].items() if "per_sequence" in r}

    def missing(self, *labels) -> list[str]:
        return [lab for lab in labels if lab not in self.rows or LEVEL not in self.rows[lab]]

    def difference(self, a: str, b: str, metric: str = "PR", level: str = LEVEL) -> tuple[str, str]:
        """(reproduced / NOT reproduced / within noise, text) of row b minus row a in points."""
        if a in self.per_seq and b in self.per_seq:
            ci = paired_interval(mean_difference, *paired_values(self.per_seq, [a, b], level, metric))
        else:                            # stored before per-sequence scores were kept: the estimate alone
            ci = (self.rows[b][level][metric] - self.rows[a][level][metric], math.nan, math.nan)
        return verdict(*ci), interval_text(*ci)

    def pr(self, label: str, level: str = LEVEL) -> str:
        return f"{100 * self.rows[label][level]['PR']:.1f}"

    def note(self) -> str:
        return "" if self.per_seq else " (no interval: the stored table has no per-sequence scores)"


def _share(words: list[str]) -> str:
    hits = sum(w == "reproduced" for w in words)
    if hits:
        return "holds" if hits == len(words) else "partly"
    return "does not hold" if "NOT reproduced" in words else "not shown"


def _not_measured(claim: str, table: Table, missing: list[str], notebook: str) -> Claim:
    return Claim(claim, "not measured", "-", f"{table.path.name} has no row {', '.join(missing)} (it predates them: "
                 "`pmatrack-mini reproduce --table all` makes them)", notebook)


def progressive_stages(prog: Table) -> Claim:
    claim = "Progressive alignment: each stage (centre, then scale, then refine) adds accuracy"
    labels = (STATIC,) + STAGES
    if prog.missing(*labels):
        return _not_measured(claim, prog, prog.missing(*labels), "07")
    steps = [prog.difference(a, b) for a, b in zip(labels, labels[1:])]
    return Claim(claim, _share([w for w, _ in steps]),
                 f"PR {LEVEL}: " + " -> ".join(prog.pr(lab) for lab in labels) + "; steps "
                 + ", ".join(t for _, t in steps) + prog.note(),
                 "each stage over the one before (centre over static pre-alignment): "
                 + ", ".join(f"{lab.lower()}: {w}" for lab, (w, _) in zip(STAGES, steps)), "07")


def one_shot(prog: Table) -> Claim:
    claim = "Progressive beats one-shot regression of all four parameters (with as many TCMDA modules)"
    if prog.missing(ONE_SHOT, STAGES[-1]):
        return _not_measured(claim, prog, prog.missing(ONE_SHOT, STAGES[-1]), "07")
    word, text = prog.difference(ONE_SHOT, STAGES[-1])
    return Claim(claim, _share([word]), f"PR {LEVEL}: one-shot {prog.pr(ONE_SHOT)}, progressive "
                 f"{prog.pr(STAGES[-1])}; difference {text}{prog.note()}", f"difference {word}", "07")


def experts_add(comp: Table) -> Claim:
    claim = "Each expert adds accuracy, more for the dearer one (TRE < FME < DPE)"
    labels = (STATIC, TRE, FME, DPE)
    if comp.missing(*labels):
        return _not_measured(claim, comp, comp.missing(*labels), "02-04, 09")
    over = [comp.difference(STATIC, e) for e in labels[1:]]
    order = [comp.difference(a, b) for a, b in zip(labels[1:], labels[2:])]
    beat = [w for w, _ in over]
    word = _share(beat) if "reproduced" not in beat else \
        "holds" if _share(beat + [w for w, _ in order]) == "holds" else "partly"
    return Claim(claim, word, f"PR {LEVEL}: " + ", ".join(f"{lab} {comp.pr(lab)}" for lab in labels)
                 + "; over static " + ", ".join(t for _, t in over) + comp.note(),
                 "over static pre-alignment: " + ", ".join(f"{e.split()[0]} {w}" for e, (w, _) in
                                                            zip(labels[1:], over))
                 + "; ordering TRE < FME < DPE: " + ", ".join(w for w, _ in order), "02-04, 09")


def routing_pays(comp: Table) -> Claim:
    claim = "Routing with CPESL saves compute at equal accuracy (router: 0.89 x DPE only's FLOPs)"
    if comp.missing(NO_TOCU, DPE):
        return _not_measured(claim, comp, comp.missing(NO_TOCU, DPE), "05, 10")
    ratio = comp.rows[NO_TOCU][LEVEL]["macs_per_frame"] / comp.rows[DPE][LEVEL]["macs_per_frame"]
    est = comp.rows[NO_TOCU][LEVEL]["PR"] - comp.rows[DPE][LEVEL]["PR"]
    if NO_TOCU in comp.per_seq and DPE in comp.per_seq:
        ci = paired_interval(mean_difference, *paired_values(comp.per_seq, [DPE, NO_TOCU], LEVEL, "PR"))
    else:
        ci = (est, math.nan, math.nan)
    equal = verdict(*ci, threshold=-0.01 - 1e-12)          # "equal accuracy": no more than 1 point below
    usage = comp.rows[NO_TOCU][LEVEL].get("expert_usage", {})
    use = "; ".join(f"{role}: " + ", ".join(f"{e} {v:.2f}" for e, v in u.items() if v >= 0.005)
                    for role, u in usage.items())
    word = _share(["reproduced" if ratio <= 0.9 else "NOT reproduced", equal])
    return Claim(claim, word, f"MACs {ratio:.2f} x DPE only; PR {LEVEL} {interval_text(*ci)} vs DPE only"
                 + comp.note(), f"cost {'saved' if ratio <= 0.9 else 'not saved'}, accuracy within 1 point: "
                 f"{equal}; the router's choices ({LEVEL}): {use or 'none recorded'}", "05, 10")


def tocu_helps(comp: Table) -> Claim:
    claim = "TOCU (template-checked running homography) adds accuracy"
    if comp.missing(NO_TOCU, FULL):
        return _not_measured(claim, comp, comp.missing(NO_TOCU, FULL), "08")
    word, text = comp.difference(NO_TOCU, FULL)
    full = comp.rows[FULL][LEVEL]
    check = full.get("tocu_macs_per_frame", 0.0) / max(full["macs_per_frame"], 1.0)
    accepted = (full.get("tocu") or {}).get("acceptance_per_frame")
    return Claim(claim, _share([word]), f"PR {LEVEL}: {comp.pr(NO_TOCU)} -> {comp.pr(FULL)}, {text}{comp.note()}",
                 f"difference {word}; its check costs {check:.2f} x the forward's MACs"
                 + (f" and accepts {accepted:.2f} of frames" if accepted is not None else ""), "08")


def modality_failure(comp: Table) -> Claim:
    claim = "Gap: the paper does not test a modality that fails (target gone in RGB or TIR)"
    stress = STRESS
    if comp.missing(STATIC, FULL) or stress not in comp.rows[FULL]:
        return _not_measured(claim, comp, comp.missing(STATIC, FULL) or ["stress set"], "09")
    word, text = comp.difference(STATIC, FULL, level=stress)
    return Claim(claim, _share([word]), f"stress-set PR: static {comp.pr(STATIC, stress)}, Full "
                 f"{comp.pr(FULL, stress)}, {text}{comp.note()}",
                 f"PMATrack over static pre-alignment when one modality fails: {word}", "09")


def photographs(comp: Table) -> Claim:
    claim = "Gap: alignment learned on generated data transfers to scenes of photographs"
    if comp.missing(STATIC, FULL) or PHOTO not in comp.rows[FULL]:
        return _not_measured(claim, comp, comp.missing(STATIC, FULL) or ["photograph set"], "09")
    word, text = comp.difference(STATIC, FULL, level=PHOTO)
    return Claim(claim, _share([word]), f"photograph-set PR: static {comp.pr(STATIC, PHOTO)}, Full "
                 f"{comp.pr(FULL, PHOTO)}, {text}{comp.note()}",
                 f"PMATrack over static pre-alignment on scenes cut from photographs no training set used: {word}",
                 "09")


def routing_interpretable(results: Path) -> Claim:
    claim = "Gap: the paper does not show that the router picks by difficulty (router vs oracle choice)"
    path = results / "router_inputs.json"
    if not path.is_file():
        return Claim(claim, "not measured", "-", f"no {path.name} (benchmarks/bench_router_inputs.py)", "05")
    data = read_json(path)["results"]
    lines, wins, stages = [], [], ()
    for name, levels in data.items():
        stages = levels[LEVEL]
        wins.append(max(r["agreement"] - r["constant_router_agreement"] for r in stages.values()) > 0.05)
        lines.append(f"{name} " + "/".join(f"{r['agreement']:.2f}" for r in stages.values()) + " (constant "
                     + "/".join(f"{r['constant_router_agreement']:.2f}" for r in stages.values()) + ")")
    if not wins:
        return Claim(claim, "not measured", "-", f"{path.name} holds no router results", "05")
    return Claim(claim, "holds" if all(wins) else "partly" if any(wins) else "does not hold",
                 f"agreement with the oracle choice per stage ({'/'.join(stages)}), {LEVEL}: " + ", ".join(lines),
                 "a router input counts when it beats the router that always picks the oracle's most frequent expert "
                 f"(constant) by > 0.05 at one stage; {sum(wins)} of {len(wins)} inputs do (networks of "
                 f"{read_json(path)['steps']} stage-2 steps)", "05")


def exact_target(results: Path) -> Claim:
    claim = "Gap: the paper's alignment target comes from two annotated boxes; with the exact one, is alignment learned?"
    path = results / "stage2_alignment.json"
    if not path.is_file():
        return Claim(claim, "not measured", "-", f"no {path.name} (benchmarks/bench_align.py)", "07")
    rows = {lvl: r["all"] for lvl, r in read_json(path)["alignment"].items()}    # [median, p90] per stage
    med = lambda lvl, stage: rows[lvl]["before"][0] if stage == "before" else rows[lvl]["router"][stage][0]
    before, after = med(LEVEL, "before"), med(LEVEL, "refine")
    worse = [f"{lvl} {med(lvl, 'before'):.1f} -> {med(lvl, 'refine'):.1f} px" for lvl in ("none", "small")
             if lvl in rows and med(lvl, "refine") > med(lvl, "before")]
    word = ("partly" if worse else "holds") if after < before else "does not hold"
    return Claim(claim, word, f"median residual at the target, {LEVEL}: {before:.1f} -> {after:.1f} px (routed)",
                 "alignment " + ("learned on drifting offsets" if after < before else "not learned")
                 + (f"; it adds error where there is little to correct ({'; '.join(worse)})" if worse else "")
                 + " (networks of benchmarks/bench_align.py)", "07")


def scorecard(results: str | Path = "results") -> list[Claim]:
    results = Path(results)
    if not results.is_dir():
        raise PMATrackError(f"{results}: no such results folder")
    comp, prog = Table(results / "reproduce" / "components.json"), Table(results / "reproduce" / "progressive.json")
    return [progressive_stages(prog), one_shot(prog), experts_add(comp), routing_pays(comp), tocu_helps(comp),
            exact_target(results), routing_interpretable(results), modality_failure(comp), photographs(comp)]


def markdown(claims: list[Claim]) -> str:
    L = ["| the paper's claim | here | key number | why | notebook |", "|---|---|---|---|---|"]
    L += [f"| {c.claim} | **{c.verdict}** | {c.number} | {c.reason} | {c.notebook} |" for c in claims]
    return "\n".join(L + ["", f"Read from the results folder's {', '.join(SOURCES)} (`pmatrack-mini scorecard` rebuilds this card)."]) + "\n"


def update_readme(path: Path, text: str) -> None:
    """Rewrite the block between the README's scorecard markers (atomically)."""
    doc = path.read_text()
    if BEGIN not in doc or END not in doc:
        raise PMATrackError(f"{path}: no {BEGIN} ... {END} block to rewrite")
    head, rest = doc.split(BEGIN, 1)
    write_text_atomic(path, head + BEGIN + "\n" + text + rest[rest.index(END):])


def readme_block(path: Path) -> str:
    doc = path.read_text()
    return doc.split(BEGIN, 1)[1].split(END, 1)[0].lstrip("\n")


def add_cli(sub) -> None:
    p = sub.add_parser("scorecard", help="the paper's claims judged on the stored results")
    p.add_argument("--results", default="results", help="folder of stored results (default: results)")
    p.add_argument("--json", help="also write the claims as JSON")
    p.add_argument("--readme", help="rewrite this README's scorecard block")
    p.set_defaults(func=_cmd)


def _cmd(args) -> None:
    claims = scorecard(args.results)
    text = markdown(claims)
    if args.json:
        write_json_atomic(args.json, [asdict(c) for c in claims])
    if args.readme:
        update_readme(Path(args.readme), text)
    print(text, end="")
