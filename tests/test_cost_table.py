"""The costs-in-context table: what notebook 04 reads from results/cost_table.json is what the code counts."""
from pathlib import Path

import pytest
import torch

from pmatrack_mini.config import TOY_EXPERT_SIZES
from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.profiling.cost_context import (cost_context, cost_penalty_note, format_cost_table, frame_rows,
                                                  paper_style_baseline, read_cost_table)

ROOT = Path(__file__).resolve().parents[1]
STORED = ROOT / "results" / "cost_table.json"


@pytest.fixture(scope="module")
def mini():
    return cost_context("cpu-mini")


def test_stored_table_matches_the_current_code_at_cpu_mini(mini):
    stored = read_cost_table(STORED)["table"]["presets"]["cpu-mini"]
    for key in ("backbone", "head", "attention", "head_rgb_only", "stage1", "experts", "projection", "per_stage",
                "stage2_soft"):
        assert stored[key] == mini[key], f"results/cost_table.json is stale ({key}): run benchmarks/cost_table.py"


def test_components_add_up_and_rows_rise(mini):
    assert mini["stage1"] == mini["backbone"] + mini["head"]
    assert 0 < mini["attention"] < mini["backbone"] and mini["head_rgb_only"] < mini["head"]
    assert all(0 < mini["projection"][n] < mini["experts"][n] for n in mini["experts"])
    e, st, k = mini["experts"], mini["per_stage"], mini["stages"]
    assert mini["stage2_soft"] == pytest.approx(mini["stage1"] + k * (sum(e.values()) + sum(st.values())), rel=1e-3)
    rows = frame_rows(mini)
    assert rows["Baseline"] < rows["+TRE"] < rows["+FME"] < rows["+DPE"]
    lo, hi = rows["Full"]                                  # the router on top of the cheapest / the dearest expert
    assert lo - rows["+TRE"] == pytest.approx(hi - rows["+DPE"]) == pytest.approx(k * st["router"])
    assert paper_style_baseline(mini) == mini["backbone"] - mini["attention"] + mini["head_rgb_only"]


def test_table_and_note_name_the_numbers(mini):
    table = dict(presets={"cpu-mini": mini}, paper_gflops={"Baseline": 56.4, "+DPE": 81.4},
                 official_expert_gflops={"tre": 1.529, "fme": 8.896, "dpe": 15.11})
    text = format_cost_table(table)
    assert "| backbone |" in text and "TRE (per call)" in text and "15.110" in text
    note = cost_penalty_note(table)
    assert "cpu-mini" in note and f"{mini['experts']['dpe'] / mini['experts']['tre']:.2f} x" in note


def test_read_cost_table_refuses_other_files(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"command": "something else"}')
    with pytest.raises(PMATrackError, match="not a cost table"):
        read_cost_table(p)


def test_paper_rows_are_single_expert_networks_counted_the_papers_way():
    from pmatrack_mini.config import get_config
    from pmatrack_mini.models import build_model
    from pmatrack_mini.models.head import CenterHead
    from pmatrack_mini.profile import count_macs
    from pmatrack_mini.profiling.cost_context import paper_rows

    toy = dict(model=dict(embed_dim=64, depth=3, num_heads=2, head_channels=32),
               align=dict(layers=(0, 1, 2), tcmda_heads=2, tcmda_points=2, **TOY_EXPERT_SIZES))
    rows = paper_rows("cpu-mini", **toy)["rows"]
    assert list(rows) == ["Baseline", "+TRE", "+FME", "+DPE"]
    assert rows["Baseline"] < rows["+TRE"] < rows["+FME"] < rows["+DPE"]
    m = get_config("cpu-mini", **toy).model
    z, x = torch.rand(1, 3, m.template_size, m.template_size), torch.rand(1, 3, m.search_size, m.search_size)
    tracker = count_macs(build_model(get_config("cpu-mini", **toy)).eval(), (z, x, z, x))
    rgb_head = count_macs(CenterHead(m.embed_dim, m.head_channels, m.feat_size).eval(),
                          (torch.rand(1, m.embed_dim, m.feat_size, m.feat_size),))["linear_conv"]
    by_hand = tracker["linear_conv"] - tracker["linear_conv_by_module"]["head"] + rgb_head
    assert rows["Baseline"] == pytest.approx(by_hand / 1e9)


def test_stored_paper_rows_reproduce_the_papers_flops_column():
    """The goal: Baseline, +TRE, +FME, +DPE counted from our modules at the paper preset within 3 % of the paper."""
    stored = read_cost_table(STORED)["table"]["paper_rows"]
    assert set(stored["rows"]) == {"Baseline", "+TRE", "+FME", "+DPE"}
    for row, ours in stored["rows"].items():
        assert abs(ours / stored["paper"][row] - 1) <= 0.03, (row, ours)
