"""reproduce --fast: the whole pipeline runs, writes both tables, reuses its cache, refuses another one's."""
import dataclasses
import json

import numpy as np
import pytest

from pmatrack_mini.cli import main
from pmatrack_mini.experiments.reproduce import COMPONENT_ROWS, PROGRESSIVE_ROWS, Workspace
from pmatrack_mini.experiments.reproduce_report import ordering_lines


def test_reproduce_fast_pipeline_and_cache(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["reproduce", "--table", "all", "--out", str(out), "--fast", "--quiet"]) == 0
    comp = json.loads((out / "components.json").read_text())
    prog = json.loads((out / "progressive.json").read_text())
    assert list(comp["rows"]) == [r.label for r in COMPONENT_ROWS]
    assert list(prog["rows"]) == [r.label for r in PROGRESSIVE_ROWS]
    full = comp["rows"]["Full (router + TOCU)"]["result"]["dynamic"]
    assert full["tocu"] is not None and set(full["expert_usage"]) == {"center", "scale", "refine"}
    assert comp["rows"]["Baseline"]["result"]["dynamic"]["tocu"] is None
    stress = comp["rows"]["Full (router + TOCU)"]["result"]["stress"]["failure"]
    assert set(stress["success_at_20px"]) == {"during", "after", "elsewhere"}
    assert list(stress["failed_modality"].values())[0] in ("rgb", "tir")
    curves = comp["rows"]["Baseline"]["curves"]["dynamic"]                   # recomputed from the kept boxes
    assert len(curves["PR"]) == len(curves["pr_thresholds"]) and 0 <= min(curves["SR"]) <= max(curves["SR"]) <= 1
    cost = prog["cost"]                                       # written last: everything DIR holds
    assert cost["stage2_runs"] == ["stage2_all", "stage2_center", "stage2_center_scale", "stage2_dpe", "stage2_fme",
                                   "stage2_one_shot", "stage2_tre"]
    assert "- One-shot (all four parameters at one stage) < Centre + scale + refine in PR at offset dynamic: " in \
        (out / "progressive.md").read_text()
    train = json.loads((out / "data" / "train_dynamic" / "synth.json").read_text())
    assert train["background"] == "mixed"                   # both stages train on textures and photographs
    assert "- within the dynamic set, dearer experts where the true residual is larger" in \
        (out / "components.md").read_text()
    assert cost["tracked_frames"] > 0 and cost["total_s"] > cost["tracking_s"] > 0
    text = (out / "components.md").read_text()
    assert "Orderings the paper claims" in text and "61.5 / 56.4 / 48.5" in text
    # the same rows tracked once: the progressive table reuses the full network's results
    assert prog["rows"]["Centre + scale + refine"]["result"]["dynamic"] == full
    settings = sorted(p.name for p in (out / "results").glob("*.json"))       # one record per tracked setting
    assert len(settings) == len({(r.network, r.prealign, r.routing, r.tocu) for r in COMPONENT_ROWS + PROGRESSIVE_ROWS})
    trained = sorted(p.name for p in (out / "runs").iterdir() if p.is_dir())          # (beside each: its build lock)
    assert trained == ["stage1", "stage2_all", "stage2_center", "stage2_center_scale", "stage2_dpe", "stage2_fme",
                       "stage2_one_shot", "stage2_tre"]
    # a row tracked with other tracker settings (here TOCU's floor) is tracked again, never reused
    full_row = next(r for r in COMPONENT_ROWS if r.label == "Full (router + TOCU)")
    record = out / "results" / f"{Workspace.row_key(full_row)}.json"
    kept = json.loads(record.read_text())
    assert kept["setting"] == Workspace.row_setting(full_row, traced=False) and kept["setting"]["tocu"]
    kept["setting"]["tocu"]["min_change_px"] += 1.0
    kept["levels"]["dynamic"]["PR"] = -1.0
    record.write_text(json.dumps(kept))
    capsys.readouterr()
    assert main(["reproduce", "--table", "components", "--out", str(out), "--fast", "--quiet"]) == 0
    assert "tracked with other tracker settings" in capsys.readouterr().err
    again = json.loads(record.read_text())
    assert again["setting"] == Workspace.row_setting(full_row, traced=False)
    assert {k: again["levels"]["dynamic"][k] for k in ("PR", "NPR", "SR")} == {k: full[k] for k in ("PR", "NPR", "SR")}
    # a cache made with another configuration is refused, nothing written
    (out / "reproduce.json").write_text(json.dumps({"config": {"stage1_steps": 1}}))
    assert main(["reproduce", "--table", "components", "--out", str(out), "--quiet"]) == 2
    assert "another configuration" in capsys.readouterr().err


def test_ordering_lines_need_a_strict_rise():
    labels = ["Baseline", "TRE only", "FME only", "DPE only", "Full (router + TOCU)"]
    rising = {lab: {"small": {"PR": 0.5 + 0.01 * k}, "dynamic": {"PR": 0.5}} for k, lab in enumerate(labels)}
    lines = ordering_lines("components", rising)
    assert "small: reproduced" in lines[0] and "dynamic: NOT reproduced" in lines[1]


def test_goal_lines_say_met_or_not_with_the_numbers():
    from pmatrack_mini.experiments.reproduce_report import goal_lines

    def row(pr, npr, sr, macs=1.0, usage=None):
        return dict(PR=pr, NPR=npr, SR=sr, macs_per_frame=macs, expert_usage=usage or {})

    use_aligned = {"center": {"tre": 0.9, "dpe": 0.1}, "scale": {"tre": 0.6, "fme": 0.4}}
    use_dynamic = {"center": {"tre": 0.5, "dpe": 0.5}, "scale": {"tre": 0.2, "fme": 0.8}}
    results = {
        "Baseline": {"dynamic": row(0.2, 0.1, 0.1), "small": row(0.80, 0.7, 0.6), "none": row(0.9, 0.8, 0.7)},
        "Baseline + static pre-alignment": {"dynamic": row(0.4, 0.2, 0.2), "small": row(0.70, 0.6, 0.5),
                                            "none": row(0.9, 0.8, 0.7)},
        "Oracle alignment (stage 1)": {"dynamic": row(0.8, 0.6, 0.6)},
        "TRE only": {"dynamic": row(0.5, 0.3, 0.3, macs=6.0)},
        "DPE only": {"dynamic": row(0.6, 0.4, 0.4, macs=10.0)},
        "Router without TOCU": {"dynamic": row(0.65, 0.395, 0.45, macs=8.0)},
        "Full (router + TOCU)": {"dynamic": row(0.7, 0.4, 0.5, macs=8.0, usage=use_dynamic),
                                       "small": row(0.795, 0.7, 0.6), "none": row(0.9, 0.8, 0.7, usage=use_aligned)},
    }
    lines = goal_lines(results)
    assert lines[0].endswith(": met (PR 0.75, NPR 0.50, SR 0.75)")           # half of the NPR gap is enough
    assert "small: PR not below" in lines[1] and "met (79.5 vs 80.0; difference -0.5)" in lines[1] and "NOT" not in lines[1]
    assert "routing pays" in lines[3] and "met (ratio 0.80; vs DPE only PR +5.0, NPR -0.5" in lines[3] and "NOT" not in lines[3]
    assert "NOT" not in lines[4] and "center 0.90, scale 0.60" in lines[4]
    assert "NOT" not in lines[5] and "center 0.50 vs 0.10" in lines[5]
    results["Full (router + TOCU)"]["dynamic"]["NPR"] = 0.3
    results["Full (router + TOCU)"]["small"]["PR"] = 0.78
    results["Router without TOCU"]["dynamic"]["NPR"] = 0.38              # 2 points below DPE only
    lines = goal_lines(results)
    assert "NOT met (PR 0.75, NPR 0.25, SR 0.75)" in lines[0] and "NOT met (78.0 vs 80.0; difference -2.0)" in lines[1]
    assert "routing pays" in lines[3] and ": NOT met (ratio 0.80" in lines[3]
    results["Router without TOCU"]["dynamic"].update(NPR=0.4, macs_per_frame=9.5)       # accurate, but too dear
    assert ": NOT met (ratio 0.95" in goal_lines(results)[3]
    assert not any("photographs" in line for line in goal_lines(results))    # no photograph set: no line
    for label, npr in (("Baseline + static pre-alignment", 0.1), ("Oracle alignment (stage 1)", 0.6),
                       ("Full (router + TOCU)", 0.3)):
        results[label]["photo"] = row(0.5, npr, 0.4)
    assert goal_lines(results)[-1].endswith("to the oracle: met (NPR 0.40)")           # 0.2 of a 0.5 gap
    results["Full (router + TOCU)"]["photo"]["NPR"] = 0.2
    assert goal_lines(results)[-1].endswith("to the oracle: NOT met (NPR 0.20)")


def _per_seq(labels, level, gains, noise, n=12, seed=0):
    """Per-sequence PR of rows rising by ``gains`` on average, each sequence with its own difficulty and ``noise``."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.3, 0.7, n)
    out = {}
    for k, lab in enumerate(labels):
        vals = base + sum(gains[:k]) + (rng.normal(0, noise, n) if k else 0)
        out[lab] = {level: {f"s{i}": dict(PR=v, NPR=v, SR=v) for i, v in enumerate(vals)}}
    return out


def test_orderings_carry_intervals_and_say_within_noise():
    labels = ["Baseline + static pre-alignment", "Centre only", "Centre + scale", "Centre + scale + refine"]
    for gains, noise, word in (([0.05, 0.05, 0.05], 0.005, "reproduced"), ([0.005, 0.005, 0.005], 0.05, "within noise"),
                               ([0.05, -0.05, 0.05], 0.005, "NOT reproduced")):
        per_seq = _per_seq(labels, "dynamic", gains, noise)
        results = {lab: {"dynamic": {"PR": float(np.mean([v["PR"] for v in per_seq[lab]["dynamic"].values()]))}}
                   for lab in labels}
        line = ordering_lines("progressive", results, per_seq)[0]
        assert f"dynamic: {word} (" in line and "95 % interval over 12 sequences" in line, line


def test_intervals_match_a_direct_resampling():
    from pmatrack_mini.evaluation.intervals import mean_difference, paired_interval, verdict

    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, 30)
    b = a + 0.1 + rng.normal(0, 0.05, 30)
    est, lo, hi = paired_interval(mean_difference, a, b, resamples=4000)
    idx = np.random.default_rng(2).integers(0, 30, (4000, 30))       # the same percentile bootstrap, by hand
    means = (b - a)[idx].mean(1)
    assert est == pytest.approx(np.mean(b - a))
    assert lo == pytest.approx(np.percentile(means, 2.5), abs=0.005) and hi == pytest.approx(np.percentile(means, 97.5), abs=0.005)
    assert verdict(est, lo, hi) == "reproduced" and verdict(-est, -hi, -lo) == "NOT reproduced"
    assert verdict(0.01, -0.02, 0.04) == "within noise"
    assert np.isnan(paired_interval(mean_difference, [0.5], [0.7])[1:]).all()          # one sequence: no interval


def test_the_photograph_set_is_dynamic_offset_with_photographs(tmp_path):
    """Every row is tracked on it (``Workspace.test_sets``) unless ``photo_sequences`` is 0 (``--fast``)."""
    from pmatrack_mini.experiments.reproduce import FAST
    from pmatrack_mini.experiments.reproduce_report import PHOTO, STRESS

    ws = Workspace(tmp_path, dataclasses.replace(FAST, photo_sequences=2), progress=False)
    assert ws.test_sets() == ("dynamic", STRESS, PHOTO)
    seqs = ws.data("test", PHOTO)
    record = json.loads((tmp_path / "data" / "test_photo" / "synth.json").read_text())
    assert len(seqs) == 2 and record["background"] == "photo-heldout" and record["offset"] == "dynamic"
    assert record["photographs"].startswith("scikit-image ")
    assert json.loads((seqs[0].path / "meta.json").read_text())["background"] == "photo"
    assert PHOTO not in Workspace(tmp_path / "fast", FAST, progress=False).test_sets()


def test_difficulty_line_ranks_experts_against_the_true_residual(tmp_path):
    """Spearman between the chosen expert's cost rank and the crop's residual, per stage; n/a for a constant choice."""
    import types

    from pmatrack_mini.experiments.reproduce_report import difficulty_line

    def write(residuals):
        rows = ["frame,center_expert,refine_expert,residual_crop_px"]
        for t, res in enumerate(residuals):             # TRE on frames 1-10, FME on 11-20, DPE on 21-30
            rows.append(f"{t + 1},{['tre', 'fme', 'dpe'][min(int(t // 10), 2)]},tre,{res:.2f}")
        (tmp_path / "s0.align.csv").write_text("\n".join(rows) + "\n")
        return difficulty_line(tmp_path, [types.SimpleNamespace(name="s0")], "Full")

    growing = np.linspace(1, 30, 30)                    # dearer experts on the frames with the larger residual
    assert write(growing).endswith(": met (center 0.94, refine n/a (one expert only); 30 frames, Full)")
    assert ": NOT met (center -0.94, refine n/a" in write(growing[::-1])    # dearer where the residual is smaller
