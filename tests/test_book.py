"""make book: pages for the notebooks, the scorecard on the index, embedded images and widget state, all checked."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
build_book = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_book)


def test_book_pages_index_and_check(tmp_path):
    paths = [ROOT / "notebooks" / "09_reproductions.ipynb", ROOT / "notebooks" / "11_own_cameras.ipynb"]
    build_book.build(tmp_path, paths)
    assert build_book.check_book(tmp_path, paths) == []
    index = (tmp_path / "index.html").read_text()
    assert "Does the paper's story hold here?" in index and "<table>" in index      # the scorecard, rendered
    assert build_book.WIDGET_STATE in (tmp_path / "09_reproductions.html").read_text()
    # the check finds what it is there to find: a broken image, a missing link, a missing page
    page = tmp_path / "11_own_cameras.html"
    page.write_text(page.read_text().replace('src="data:image/jpeg;base64,', 'src="data:image/jpeg;base64,AAAA', 1))
    (tmp_path / "index.html").write_text(index.replace('href="09_reproductions.html"', 'href="elsewhere.html"'))
    problems = build_book.check_book(tmp_path, paths + [ROOT / "notebooks" / "10_flops_profiling.ipynb"])
    assert any(p.startswith("11_own_cameras.html: image ") and "(jpeg) does not decode" in p for p in problems)
    assert "09_reproductions.ipynb: not linked from the index" in problems
    assert "10_flops_profiling.ipynb: no page" in problems
