"""Execute the notebooks in place so that the stored outputs are the ones the current code produces.

    PMATRACK_FAST=1 python tools/build_notebooks.py [notebooks/00_*.ipynb ...]
"""
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pmatrack_mini.utils import FAST, write_text_atomic  # noqa: E402

# The kernel inherits this process's environment: a non-interactive backend there (MPLBACKEND=Agg) would store no
# figures at all, so the kernel always gets the inline backend.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def main(paths):
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    paths = [Path(p) for p in paths] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for p in paths:
        nb = nbformat.read(p, as_version=4)
        t0 = time.perf_counter()
        # a full-mode cell may train several networks on a first build (tens of minutes on 2 cores): no timeout
        NotebookClient(nb, timeout=900 if FAST else None, kernel_name="python3",
                       resources={"metadata": {"path": str(p.parent)}}).execute()
        write_text_atomic(p, nbformat.writes(nb) + "\n")        # an interrupted build leaves the notebook whole
        print(f"{p.name}: {time.perf_counter() - t0:.1f} s, {p.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main(sys.argv[1:])
