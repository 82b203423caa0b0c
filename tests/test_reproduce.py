"""reproduce --fast: the whole pipeline runs, writes both tables, reuses its cache, refuses another one's."""
import json

from pmatrack_mini.cli import main
from pmatrack_mini.reproduce import COMPONENT_ROWS, PROGRESSIVE_ROWS
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
    # a cache made with another configuration is refused, nothing written
    (out / "reproduce.json").write_text(json.dumps({"config": {"stage1_steps": 1}}))
    assert main(["reproduce", "--table", "components", "--out", str(out), "--quiet"]) == 2
    assert "another configuration" in capsys.readouterr().err


def test_ordering_lines_need_a_strict_rise():
    labels = ["Baseline", "+TRE", "+TRE +FME", "+TRE +FME +DPE (soft, no TOCU)", "Full (hard routing + TOCU)"]
    rising = {lab: {"small": {"PR": 0.5 + 0.01 * k}, "dynamic": {"PR": 0.5}} for k, lab in enumerate(labels)}
    lines = ordering_lines("components", rising)
    assert "small: reproduced" in lines[0] and "dynamic: NOT reproduced" in lines[1]
