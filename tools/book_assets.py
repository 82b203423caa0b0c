"""The JavaScript the book's pages load, fetched once from the npm registry so that the book works offline.

    python tools/book_assets.py [--out .venv/share/book-assets]

nbconvert's pages load require.js and the widget manager (``@jupyter-widgets/html-manager``, which draws each
stored widget's initial view) from public CDNs, and MathJax from a third; a reader offline, or a headless browser in
CI, gets none of them. This script downloads the two npm packages at pinned versions, checks each tarball against the
registry's published sha512, and unpacks the files the pages need into OUT (written to a temporary folder first,
then renamed: an interrupted run leaves no half folder). MathJax comes from the ``jupyter-server-mathjax`` wheel
(``mathjax_dir``). ``tools/build_book.py`` copies all three into ``book/static``.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import io
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / ".venv" / "share" / "book-assets"
REGISTRY = "https://registry.npmjs.org"

# name, version, the registry's sha512 of the tarball, files wanted (prefix inside the tarball) -> folder in OUT
PACKAGES = (
    ("requirejs", "2.3.7",
     "DouTG8T1WanGok6Qjg2SXuCMzszOo0eHeH9hDZ5Y4x8Je+9JB38HdTLT4/VA8OaUhBa0JPVHJ0pyBkM1z+pDsw==",
     "package/require.js", "requirejs"),
    ("@jupyter-widgets/html-manager", "1.0.15",
     "5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
     "package/dist/", "html-manager"),
)
# the page's relative URLs of the three scripts, once copied into book/static
REQUIRE_JS = "static/requirejs/require.js"
WIDGET_RENDERER = "static/html-manager/embed-amd.js"
MATHJAX = "static/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"


class AssetError(RuntimeError):
    pass


def mathjax_dir() -> Path:
    try:
        import jupyter_server_mathjax
    except ImportError as exc:
        raise AssetError("jupyter-server-mathjax is not installed (pip install -r requirements.txt)") from exc
    return Path(jupyter_server_mathjax.__file__).parent / "static"


def tarball(name: str, version: str, sha512: str) -> bytes:
    url = f"{REGISTRY}/{name}/-/{name.split('/')[-1]}-{version}.tgz"
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            data = r.read()
    except OSError as exc:
        raise AssetError(f"cannot download {url}: {exc}") from exc
    if base64.b64encode(hashlib.sha512(data).digest()).decode() != sha512:
        raise AssetError(f"{url}: the tarball's sha512 is not the registry's published one")
    return data


def fetch(out: Path) -> Path:
    """Download and unpack every package into ``out`` (replaced whole); returns ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".book-assets-"))
    try:
        for name, version, sha512, prefix, folder in PACKAGES:
            with tarfile.open(fileobj=io.BytesIO(tarball(name, version, sha512)), mode="r:gz") as tar:
                members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(prefix)
                           and not m.name.endswith(".map")]                   # source maps: not loaded by a page
                if not members:
                    raise AssetError(f"{name}@{version}: no {prefix} in its tarball")
                base = Path(prefix) if prefix.endswith("/") else Path(prefix).parent    # a folder, or one file's
                for m in members:
                    dest = tmp / folder / Path(m.name).relative_to(base)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(tar.extractfile(m).read())
            print(f"{name}@{version}: {len(members)} files")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def copy_into(book: Path, assets: Path) -> None:
    """Copy the fetched packages and MathJax into ``book/static`` (what the pages' script URLs point at)."""
    missing = [folder for *_, folder in PACKAGES if not (assets / folder).is_dir()]
    if missing:
        raise AssetError(f"{assets}: no {', '.join(missing)} (run `python tools/book_assets.py --out {assets}`, "
                         "or `make book`, which does)")
    static = book / "static"
    for *_, folder in PACKAGES:
        shutil.copytree(assets / folder, static / folder, dirs_exist_ok=True)
    shutil.copytree(mathjax_dir(), static / "mathjax", dirs_exist_ok=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(DEFAULT_OUT))
    a = p.parse_args(argv)
    try:
        fetch(Path(a.out))
    except (AssetError, OSError) as exc:            # OSError: an --out that cannot be written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
