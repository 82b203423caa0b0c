"""reproduce --fast: the whole pipeline runs, writes both tables, reuses its cache, refuses another one's."""
import json

from pmatrack_mini.cli import main
from pmatrack_mini.reproduce import COMPONENT_ROWS, PROGRESSIVE_ROWS, Workspace
from pmatrack_mini.reproduce_report import ordering_lines


def test_reproduce_fast_pipeline_and_cache(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["reproduce", "--table", "all", "--out", str(out), "--fast", "--quiet"]) == 0
    comp = json.loads((out / "components.json").read_text())
    prog = json.loads((out / "progressive.json").read_text())
    assert list(comp["rows"]) == [r.label for r in COMPONENT_ROWS]
    assert list(prog["rows"]) == [r.label for r in PROGRESSIVE_ROWS]
    full = comp["rows"]["Full (hard routing + TOCU)"]["result"]["dynamic"]
    assert full["tocu"] is not None and set(full["expert_usage"]) == {"center", "scale", "refine"}
    assert comp["rows"]["Baseline"]["result"]["dynamic"]["tocu"] is None
    stress = comp["rows"]["Full (hard routing + TOCU)"]["result"]["stress"]["failure"]
    assert set(stress["success_at_20px"]) == {"during", "after", "elsewhere"}
    assert list(stress["failed_modality"].values())[0] in ("rgb", "tir")
    curves = comp["rows"]["Baseline"]["curves"]["dynamic"]                   # recomputed from the kept boxes
    assert len(curves["PR"]) == len(curves["pr_thresholds"]) and 0 <= min(curves["SR"]) <= max(curves["SR"]) <= 1
    cost = prog["cost"]                                       # written last: everything DIR holds
    assert cost["stage2_runs"] == ["stage2_all", "stage2_center", "stage2_center_scale", "stage2_tre", "stage2_tre_fme"]
    assert cost["tracked_frames"] > 0 and cost["total_s"] > cost["tracking_s"] > 0
    text = (out / "components.md").read_text()
    assert "Orderings the paper claims" in text and "61.5 / 56.4 / 48.5" in text
    # the same rows tracked once: the progressive table reuses the full network's results
    assert prog["rows"]["Centre + scale + refine"]["result"]["dynamic"] == full
    settings = sorted(p.name for p in (out / "results").glob("*.json"))       # one record per tracked setting
    assert len(settings) == len({(r.network, r.prealign, r.routing, r.tocu) for r in COMPONENT_ROWS + PROGRESSIVE_ROWS})
    trained = sorted(p.name for p in (out / "runs").iterdir())
    assert trained == ["stage1", "stage2_all", "stage2_center", "stage2_center_scale", "stage2_tre", "stage2_tre_fme"]
    # a row tracked with other tracker settings (here TOCU's floor) is tracked again, never reused
    full_row = next(r for r in COMPONENT_ROWS if r.label == "Full (hard routing + TOCU)")
    record = out / "results" / f"{Workspace.row_key(full_row)}.json"
    kept = json.loads(record.read_text())
    assert kept["setting"] == Workspace.row_setting(full_row) and kept["setting"]["tocu"]
    kept["setting"]["tocu"]["min_change_px"] += 1.0
    kept["levels"]["dynamic"]["PR"] = -1.0
    record.write_text(json.dumps(kept))
    capsys.readouterr()
    assert main(["reproduce", "--table", "components", "--out", str(out), "--fast", "--quiet"]) == 0
    assert "tracked with other tracker settings" in capsys.readouterr().err
    again = json.loads(record.read_text())
    assert again["setting"] == Workspace.row_setting(full_row)
    assert {k: again["levels"]["dynamic"][k] for k in ("PR", "NPR", "SR")} == {k: full[k] for k in ("PR", "NPR", "SR")}
    # a cache made with another configuration is refused, nothing written
    (out / "reproduce.json").write_text(json.dumps({"config": {"stage1_steps": 1}}))
    assert main(["reproduce", "--table", "components", "--out", str(out), "--quiet"]) == 2
    assert "another configuration" in capsys.readouterr().err


def test_ordering_lines_need_a_strict_rise():
    labels = ["Baseline", "+TRE", "+TRE +FME", "+TRE +FME +DPE (soft, no TOCU)", "Full (hard routing + TOCU)"]
    rising = {lab: {"small": {"PR": 0.5 + 0.01 * k}, "dynamic": {"PR": 0.5}} for k, lab in enumerate(labels)}
    lines = ordering_lines("components", rising)
    assert "small: reproduced" in lines[0] and "dynamic: NOT reproduced" in lines[1]


def test_goal_lines_say_met_or_not_with_the_numbers():
    from pmatrack_mini.reproduce_report import goal_lines

    def row(pr, npr, sr, macs=1.0, usage=None):
        return dict(PR=pr, NPR=npr, SR=sr, macs_per_frame=macs, expert_usage=usage or {})

    use_aligned = {"center": {"tre": 0.9, "dpe": 0.1}, "scale": {"tre": 0.6, "fme": 0.4}}
    use_dynamic = {"center": {"tre": 0.5, "dpe": 0.5}, "scale": {"tre": 0.2, "fme": 0.8}}
    results = {
        "Baseline": {"dynamic": row(0.2, 0.1, 0.1), "small": row(0.80, 0.7, 0.6), "none": row(0.9, 0.8, 0.7)},
        "Baseline + static pre-alignment": {"dynamic": row(0.4, 0.2, 0.2), "small": row(0.70, 0.6, 0.5),
                                            "none": row(0.9, 0.8, 0.7)},
        "Oracle alignment (stage 1)": {"dynamic": row(0.8, 0.6, 0.6)},
        "+TRE +FME +DPE (soft, no TOCU)": {"dynamic": row(0.6, 0.4, 0.4, macs=10.0)},
        "Full (hard routing + TOCU)": {"dynamic": row(0.7, 0.4, 0.5, macs=8.0, usage=use_dynamic),
                                       "small": row(0.795, 0.7, 0.6), "none": row(0.9, 0.8, 0.7, usage=use_aligned)},
    }
    lines = goal_lines(results)
    assert lines[0].endswith(": met (PR 0.75, NPR 0.50, SR 0.75)")           # half of the NPR gap is enough
    assert "small: PR not below" in lines[1] and "met (79.5 vs 80.0)" in lines[1] and "NOT" not in lines[1]
    assert "MACs" in lines[3] and "met (ratio 0.80" in lines[3] and "NOT" not in lines[3]
    assert "NOT" not in lines[4] and "center 0.90, scale 0.60" in lines[4]
    assert "NOT" not in lines[5] and "center 0.50 vs 0.10" in lines[5]
    results["Full (hard routing + TOCU)"]["dynamic"]["NPR"] = 0.3
    results["Full (hard routing + TOCU)"]["small"]["PR"] = 0.78
    lines = goal_lines(results)
    assert "NOT met (PR 0.75, NPR 0.25, SR 0.75)" in lines[0] and "NOT met (78.0 vs 80.0)" in lines[1]
