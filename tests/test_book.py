"""make book: pages for the notebooks, the scorecard on the index, embedded images and widget state, all checked."""
import importlib.util
import os
import shutil
from pathlib import Path

import pytest

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


BROWSER = shutil.which("chromium") and shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(not BROWSER and os.environ.get("PMATRACK_REQUIRE_BROWSER") != "1",
                                   reason="no chromium + chromedriver (make test installs them)")


@needs_browser
def test_the_whole_book_in_a_headless_browser(tmp_path):
    """Every page as a reader opens it: no console error, every image loaded, every widget's view drawn, every
    equation typeset, every notebook linked from the index."""
    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
    build_book.build(tmp_path, paths)
    assert build_book.browser_check(tmp_path, paths) == []


@needs_browser
def test_the_browser_check_finds_what_it_is_there_to_find(tmp_path):
    paths = [ROOT / "notebooks" / "09_reproductions.ipynb", ROOT / "notebooks" / "11_own_cameras.ipynb"]
    build_book.build(tmp_path, paths)
    shutil.rmtree(tmp_path / "static" / "html-manager")              # the widget manager gone: no view is drawn
    page = tmp_path / "11_own_cameras.html"                          # an image that cannot load
    page.write_text(page.read_text().replace('src="data:image/jpeg;base64,', 'src="missing.jpg" data-x="', 1))
    index = tmp_path / "index.html"
    index.write_text(index.read_text().replace('href="09_reproductions.html"', 'href="elsewhere.html"'))
    problems = build_book.browser_check(tmp_path, paths, timeout=3.0)
    assert any(p.startswith("09_reproductions.html: console error") and "embed-amd.js" in p for p in problems)
    assert "09_reproductions.html: 4 of 4 widget views not drawn after 3 s" in problems
    assert "11_own_cameras.html: 1 of 2 images did not load" in problems, problems
    assert any(p.startswith("11_own_cameras.html: console error") and "missing.jpg" in p for p in problems)
    assert "index.html: no link to 09_reproductions.html" in problems


def test_missing_book_assets_are_a_clear_error(tmp_path, capsys):
    nb = str(ROOT / "notebooks" / "11_own_cameras.ipynb")
    assert build_book.main(["--out", str(tmp_path / "book"), "--assets", str(tmp_path / "none"), nb]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no requirejs, html-manager" in err and "book_assets.py" in err
    assert not (tmp_path / "book" / "11_own_cameras.html").exists()        # nothing half-built


def test_asset_fetch_into_an_unwritable_folder_is_a_clear_error(tmp_path, capsys):
    import book_assets                                   # on the path once build_book is loaded

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert book_assets.main(["--out", str(blocker / "assets")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert blocker.read_text() == ""                     # nothing written in its place
