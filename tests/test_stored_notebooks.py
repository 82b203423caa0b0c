"""What the committed notebooks store: outputs of a full-mode run (``make notebooks``), with their figures.

The suite executes the notebooks in fast mode under nbval without writing them back; these tests read the files as
committed, so a copy stored from fast mode or by a kernel whose matplotlib backend stores no figures is caught."""
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
DRAWS = re.compile(r"plt\.(subplots|figure|show|imshow|plot)\b|\.imshow\(|fig\.")


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def mode_line(nb: dict) -> str:
    """The first stored line saying in which mode the notebook ran."""
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            for line in "".join(out.get("text", "")).splitlines():
                if line.startswith("This copy ran in"):
                    return line
    return ""


def figures_drawn_and_stored(nb: dict) -> tuple[int, int]:
    """(code cells that draw, image outputs stored)."""
    drawing = [c for c in nb["cells"] if c["cell_type"] == "code" and DRAWS.search("".join(c["source"]))]
    images = sum(1 for c in nb["cells"] for o in c.get("outputs", [])
                 if {"image/png", "image/jpeg"} & set(o.get("data", {})))
    return len(drawing), images


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_outputs_are_from_full_mode(path):
    line = mode_line(load(path))
    assert line, f"{path.name}: no stored line says in which mode it ran (run `make notebooks`)"
    assert "FULL mode" in line, f"{path.name} stores fast-mode outputs ({line!r}): run `make notebooks`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_that_draw_store_their_figures(path):
    drawing, images = figures_drawn_and_stored(load(path))
    assert drawing == 0 or images > 0, f"{path.name}: {drawing} cells draw, no figure stored"


def test_the_figure_check_can_fail():
    cell = {"cell_type": "code", "source": ["fig, ax = plt.subplots()\n", "plt.show()"], "outputs": []}
    assert figures_drawn_and_stored({"cells": [cell]}) == (1, 0)
    cell["outputs"] = [{"output_type": "display_data", "data": {"image/jpeg": "..."}}]
    assert figures_drawn_and_stored({"cells": [cell]}) == (1, 1)
    assert mode_line({"cells": [{"outputs": [{"text": "x\nThis copy ran in FAST mode (...)."}]}]}).endswith("(...).")
