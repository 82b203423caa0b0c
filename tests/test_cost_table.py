"""The costs-in-context table: what notebook 04 reads from results/cost_table.json is what the code counts."""
from pathlib import Path

import pytest

from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.cost_context import (cost_context, cost_penalty_note, format_cost_table, frame_rows, paper_style_baseline,
                                   read_cost_table)

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
    lo, hi = rows["Full"]
    assert rows["+TRE"] < lo <= hi < rows["+DPE"]
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
