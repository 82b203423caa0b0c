"""The paper -> code map: one table (``pmatrack_mini.paper``), shown by the README and by notebook 00."""
import json
from pathlib import Path

from pmatrack_mini import paper

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "pmatrack_mini"


def test_readme_holds_exactly_the_package_table():
    section = paper.readme_section((ROOT / "README.md").read_text())
    assert section == paper.map_table()


def test_every_module_of_the_map_exists_and_every_notebook_is_there_or_announced():
    notebooks = {p.name[:2] for p in (ROOT / "notebooks").glob("*.ipynb")}
    for c in paper.COMPONENTS:
        for m in c.modules:
            assert (PKG / m).is_file(), f"{c.name}: {m} does not exist"
        missing = [n for n in c.notebooks if n not in notebooks]
        assert not missing or "no notebook yet" in c.status or "pending" in c.status, (c.name, missing)
        if not missing:
            assert "no notebook yet" not in c.status, f"{c.name}: notebook {c.notebooks} exists, status says not"


def test_notebook_00_shows_the_current_table():
    nb = json.loads((ROOT / "notebooks" / "00_unaligned_rgbt.ipynb").read_text())
    sources = "\n".join("".join(c["source"]) for c in nb["cells"])
    assert "paper.map_table()" in sources
    shown = "\n".join("".join(o.get("data", {}).get("text/markdown", ""))
                      for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert paper.map_table() in shown, "notebook 00's stored table is stale: re-run the notebook"


def test_citation_names_title_venue_year_and_official_code():
    assert paper.TITLE in paper.CITATION and "CVPR 2026" in paper.CITATION
    assert paper.OFFICIAL_CODE.startswith("https://github.com/") and paper.OFFICIAL_CODE in paper.CITATION
    assert set(paper.OFFICIAL_EXPERT_GFLOPS) == {"tre", "fme", "dpe"}
