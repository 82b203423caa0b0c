"""Export the executed notebooks to static HTML with an index page, for readers who will not run Jupyter.

    python tools/build_book.py [--out book] [--assets DIR] [--no-browser] [notebooks/00_*.ipynb ...]

The notebooks are exported as stored (run ``make notebooks`` first to refresh their outputs); nothing is executed.
Figures and each notebook's widget state (stored when it was executed) are embedded in the pages, and the scripts the
pages load (require.js, the widget manager, MathJax) are copied into ``book/static`` (``book_assets.py``), so the book
opens offline with each widget's initial view drawn. The index holds the scorecard of the paper's claims
(``pmatrack_mini.experiments.scorecard``) and, per notebook, its title and the question it answers. Two checks:
``check_book`` reads the files (every notebook has a page linked from the index, every image decodes, every stored
widget state made it into its page); ``browser_check`` opens every page in headless Chromium (no console error, every
image loaded, every widget view drawn, every equation typeset). Files are written atomically; exit status 2 on a
problem.
"""
import argparse
import base64
import html
import io
import re
import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.filters import markdown2html

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from pmatrack_mini.experiments.scorecard import markdown as scorecard_markdown, scorecard  # noqa: E402
from pmatrack_mini.utils import write_text_atomic  # noqa: E402
from book_assets import DEFAULT_OUT as ASSETS, MATHJAX, REQUIRE_JS, WIDGET_RENDERER, AssetError, copy_into  # noqa: E402

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# The MathJax wheel ships the STIX-Web fonts only, so: HTML-CSS output set to STIX-Web (its default, the TeX fonts,
# would be a missing file per page); MathJax 2's probe font "MathJax_Blank" (url('about:blank'), which Chromium
# refuses with a console error) and the TeX web fonts its hidden MathML copies name (the @font-face rules 1-6 of its
# NativeMML styles; absent files) pointed at local fonts, which the browser resolves without a request.
_TEX_WEB_FONTS = ("Caligraphic", "Caligraphic", "AMS", "Script", "Fraktur", "Fraktur")
MATHJAX_FONT = ('<script type="text/x-mathjax-config">MathJax.Hub.Config({"HTML-CSS": {availableFonts: ["STIX-Web"], '
                'preferredFont: "STIX-Web", webFont: "STIX-Web", imageFont: null, styles: {"@font-face": '
                '{"font-family": "MathJax_Blank", src: "local(\'MathJax_Blank\')"}}}, NativeMML: {styles: {'
                + ", ".join(f'"@font-face /*{k}*/": {{"font-family": "MathJax_{f}-WEB", src: "local(\'MathJax_{f}\')"}}'
                            for k, f in enumerate(_TEX_WEB_FONTS, 1))
                + '}}});</script>\n')
NO_FAVICON = '<link rel="icon" href="data:,">'       # a served book: no request for a favicon that is not there


def title_and_summary(nb) -> tuple[str, str]:
    """The first markdown heading and the paragraph after it (the question, where the notebook states one)."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = [ln.strip() for ln in cell.source.splitlines()]
        heads = [ln.lstrip("#").strip() for ln in lines if ln.startswith("#")]
        if heads:
            body = [ln for ln in lines if ln and not ln.startswith("#")]
            question = next((ln for ln in body if ln.startswith("**Question.**")), None)
            return heads[0], question or (body[0] if body else "")
    return "", ""


def build(out: Path, paths: list[Path], assets: Path = ASSETS) -> list[Path]:
    """The pages of ``paths`` and the index in ``out``, with the scripts they load in ``out/static`` (copied from
    ``assets``, see ``book_assets.py``); returns the pages written."""
    copy_into(out, assets)
    exporter = HTMLExporter(require_js_url=REQUIRE_JS, widget_renderer_url=WIDGET_RENDERER, mathjax_url=MATHJAX)
    entries, pages = [], []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        body, _ = exporter.from_notebook_node(nb)
        if f'<script src="{MATHJAX}"' not in body:                # nbconvert's template changed: say so
            raise AssetError(f"{path.name}: the exported page loads no {MATHJAX}")
        body = body.replace(f'<script src="{MATHJAX}"', MATHJAX_FONT + f'<script src="{MATHJAX}"', 1)
        body = body.replace("<head>", "<head>" + NO_FAVICON, 1)
        page = out / f"{path.stem}.html"
        write_text_atomic(page, body)
        title, summary = title_and_summary(nb)
        entries.append((path.stem, title or path.stem, summary))
        pages.append(page)
        print(f"{path.name} -> {page}")
    items = "\n".join(f'<li><a href="{html.escape(stem)}.html">{html.escape(title)}</a><br><small>'
                      f"{markdown2html(summary)}</small></li>" for stem, title, summary in entries)
    card = markdown2html(scorecard_markdown(scorecard(ROOT / "results")))
    index = (f"<!doctype html><html><head><meta charset='utf-8'>{NO_FAVICON}<title>pmatrack-mini notebooks</title>"
             f"<style>table {{border-collapse: collapse; font-size: 90%}} td, th {{border: 1px solid #ccc; "
             f"padding: .3em; vertical-align: top}}</style></head>"
             f"<body style='font-family: sans-serif; max-width: 70em; margin: 2em auto'>"
             f"<h1>pmatrack-mini: the notebooks</h1><p>A small, readable reproduction of PMATrack (Progressive "
             f"Multi-cue Alignment for Unaligned RGBT Tracking, CVPR 2026). Each page is a notebook as executed "
             f"(its first cell says in which mode).</p><h2>Does the paper's story hold here?</h2>{card}"
             f"<h2>The notebooks</h2><ol>{items}</ol></body></html>\n")
    write_text_atomic(out / "index.html", index)
    print(f"index: {out / 'index.html'}")
    return pages


def check_book(out: Path, paths: list[Path]) -> list[str]:
    """Problems of the book in ``out`` built from ``paths`` (empty: none): a notebook without a page or without a
    link from the index, an image that does not decode, a stored widget state missing from its page."""
    from PIL import Image

    problems, index = [], (out / "index.html").read_text()
    for path in paths:
        page = out / f"{path.stem}.html"
        if not page.is_file():
            problems.append(f"{path.name}: no page")
            continue
        if f'href="{path.stem}.html"' not in index:
            problems.append(f"{path.name}: not linked from the index")
        text = page.read_text()
        for k, (kind, data) in enumerate(re.findall(r'<img[^>]*src="data:image/(\w+);base64,([^"]+)"', text)):
            try:
                Image.open(io.BytesIO(base64.b64decode(data))).load()
            except Exception as exc:                 # any decoding failure is a broken image
                problems.append(f"{page.name}: image {k + 1} ({kind}) does not decode: {exc}")
        if "<img" in text and not re.search(r'<img[^>]*src="data:image', text):
            problems.append(f"{page.name}: images that are not embedded")
        if WIDGET_STATE in nbformat.read(path, as_version=4).metadata.get("widgets", {}) and WIDGET_STATE not in text:
            problems.append(f"{page.name}: the notebook's widget state is not embedded")
    return problems


PAGE_STATE = """
const views = Array.from(document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'));
const mj = window.MathJax && window.MathJax.Hub;
return {
  url: location.href,
  ready: document.readyState,
  views: views.length,
  drawn: views.filter(v => v.parentElement.querySelector('.widget-subarea > *')).length,
  images: document.images.length,
  broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length,
  math_pending: mj ? mj.queue.pending + mj.queue.running : 0,
  math_errors: document.querySelectorAll('.MathJax_Error, merror').length,
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')),
};"""


def browser_check(out: Path, paths: list[Path], timeout: float = 30.0) -> list[str]:
    """Open the index and every page in headless Chromium, as a reader opens them (``file://``, offline), and list
    the problems: a console error (any message of level SEVERE: a script or file that did not load, an exception), an
    image that did not load, a stored widget whose view was not drawn, an equation MathJax could not typeset, a
    notebook the index does not link. Waits for each page's widgets and equations (up to ``timeout`` s)."""
    import shutil
    import time

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser, driver_exe = shutil.which("chromium") or shutil.which("google-chrome"), shutil.which("chromedriver")
    if not browser or not driver_exe:
        return ["no headless browser: chromium and chromedriver must be on PATH (`make book` installs them)"]
    opts = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.binary_location = browser
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_exe), options=opts)
    problems = []
    try:
        for page in [out / "index.html"] + [out / f"{p.stem}.html" for p in paths]:
            url = page.resolve().as_uri()
            driver.get(url)
            t0 = time.perf_counter()
            while True:                  # this page loaded (not the one before it), its widgets and equations done
                state = driver.execute_script(PAGE_STATE)
                settled = (state["url"] == url and state["ready"] == "complete" and state["drawn"] == state["views"]
                           and state["math_pending"] == 0)
                if settled or time.perf_counter() - t0 > timeout:
                    break
                time.sleep(0.25)
            if state["url"] != url:
                problems.append(f"{page.name}: did not load within {timeout:.0f} s")
                continue
            for entry in driver.get_log("browser"):
                if entry["level"] == "SEVERE":
                    problems.append(f"{page.name}: console error: {entry['message'][:300]}")
            if state["broken"]:
                problems.append(f"{page.name}: {state['broken']} of {state['images']} images did not load")
            if state["drawn"] < state["views"]:
                problems.append(f"{page.name}: {state['views'] - state['drawn']} of {state['views']} widget views "
                                f"not drawn after {timeout:.0f} s")
            if state["math_pending"] or state["math_errors"]:
                problems.append(f"{page.name}: equations not typeset ({state['math_errors']} errors)")
            if page.name == "index.html":
                problems += [f"index.html: no link to {p.stem}.html" for p in paths
                             if f"{p.stem}.html" not in state["links"]]
    finally:
        driver.quit()
    return problems


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "book"))
    p.add_argument("--assets", default=str(ASSETS), help="the scripts fetched by tools/book_assets.py")
    p.add_argument("--no-browser", action="store_true", help="skip the headless-browser check")
    p.add_argument("notebooks", nargs="*", help="default: every notebook in notebooks/")
    a = p.parse_args(argv)
    paths = [Path(n) for n in a.notebooks] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    try:
        build(Path(a.out), paths, Path(a.assets))
    except AssetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems = check_book(Path(a.out), paths)
    if not a.no_browser:
        problems += browser_check(Path(a.out), paths)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
