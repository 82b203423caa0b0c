"""tools/prose_numbers.py: prose numbers no stored output shows are listed; rounded and percentage forms are not."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import prose_numbers  # noqa: E402


def notebook(tmp_path: Path, prose: str, printed: str) -> Path:
    cells = [dict(cell_type="code", source="print(x)", outputs=[dict(output_type="stream", text=printed)]),
             dict(cell_type="markdown", source=prose)]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(dict(cells=cells)))
    return path


def test_rounded_and_percentage_forms_count_as_shown(tmp_path):
    nb = notebook(tmp_path, "median 3.4 px (p90 1,053.8 M), DPE on 83 % and -0.2 PR", "3.41 1053.77 0.834 +0.21")
    assert prose_numbers.unshown(nb) == []


def test_a_number_no_output_shows_is_listed(tmp_path):
    nb = notebook(tmp_path, "median 3.5 px, 7 % of pairs, step 400, `lr=9.9`, $x_{1.5}$", "3.41 0.834")
    assert prose_numbers.unshown(nb) == [(1, "3.5"), (1, "7 %")]   # integers, code spans and LaTeX are not checked
    also = tmp_path / "table.md"
    also.write_text("| 3.46 | 0.07 |")
    assert prose_numbers.unshown(nb, [also]) == []


def test_exit_status(tmp_path, capsys):
    assert prose_numbers.main([str(notebook(tmp_path, "3.4", "3.4"))]) == 0
    assert prose_numbers.main([str(notebook(tmp_path, "3.9", "3.4"))]) == 1
    assert prose_numbers.main([str(tmp_path / "missing.ipynb")]) == 2
    assert "error: no such file" in capsys.readouterr().err
    (tmp_path / "bad.ipynb").write_text("{")
    assert prose_numbers.main([str(tmp_path / "bad.ipynb")]) == 2
    assert "is not a notebook" in capsys.readouterr().err
