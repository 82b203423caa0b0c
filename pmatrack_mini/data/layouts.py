"""Readers for the folder layouts of the unaligned RGBT benchmarks, producing the package's :class:`Sequence` objects
(frames listed, not decoded), so that ``eval``, ``track --dataset`` and ``reference`` work on them.

``ROOT`` is the folder given as ``--dataset``; ``HOME`` is ``ROOT/sequence`` when that folder exists (the official
test script's sequence home for MUART244 and LUART), else ``ROOT``.

``lasher``            ``ROOT/<seq>/visible/``, ``infrared/``, ``visible.txt``, ``infrared.txt`` [, ``init.txt``]:
                      read by :mod:`.dataset` (also RGBT234's sequence layout).
``lasher-unaligned``  ``ROOT/annos/<seq>.txt``: the visible ground truth the official evaluation scores against
                      (one ``x,y,w,h`` row per frame); frames in ``HOME/<seq>/visible/`` and ``infrared/``;
                      the TIR ground truth in ``HOME/<seq>/infrared.txt`` (the official tracker reads it to fit H0).
``muart244``          ``ROOT/annos/visible/<seq>.txt`` (visible ground truth, what the evaluation scores against)
                      and ``ROOT/annos/infrared/<seq>.txt`` (else ``HOME/<seq>/infrared.txt``); frames in
                      ``HOME/<seq>/visible/`` and ``infrared/``.
``luart``             ``HOME/<seq>/NotAlign/visible/`` and ``NotAlign/infrared/`` frames, ``HOME/<seq>/visible.txt``
                      and ``infrared.txt``.

In every layout the tracker starts from the first row of ``<seq>/init.txt``, else of ``<seq>/visible.txt``, else of
the visible ground truth; ``<seq>/homography.txt`` and ``attributes.txt`` are read when present, as for LasHeR.
Sequence names come from a list file (``--list``, default ``ROOT/list.txt``), else from the annotation files
(``annos/<seq>.txt``, ``annos/visible/<seq>.txt``), else (LUART) from the sub-folders of ``HOME`` that hold
``NotAlign/visible/``. GT files take commas or white space.

What is certain and what is not: the ``annos`` paths are those of the official evaluation's ground-truth folders
(``annos/<seq>.txt``, ``annos/visible/<seq>.txt``) and the frame folders those the official tracker reads; how the
released archives place ``annos/`` beside the sequences (and whether MUART244 ships ``annos/infrared/``) is not
documented there, hence ``HOME`` and the fallbacks above. The official LUART evaluation uses its own MATLAB-style
metrics; this package scores LUART with the LasHeR rules.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import PMATrackError
from .dataset import Sequence, assemble_sequence, sequence_names

LAYOUTS = ("lasher", "lasher-unaligned", "muart244", "luart")
LABELS = {"lasher": "LasHeR", "lasher-unaligned": "LasHeR-Unaligned", "muart244": "MUART244", "luart": "LUART"}
FRAMES = {"lasher": ("visible", "infrared"), "lasher-unaligned": ("visible", "infrared"),
          "muart244": ("visible", "infrared"), "luart": ("NotAlign/visible", "NotAlign/infrared")}
_SHAPES = ("LasHeR (<seq>/visible/ and <seq>/visible.txt, or a list.txt), LasHeR-Unaligned (annos/<seq>.txt), "
           "MUART244 (annos/visible/<seq>.txt), LUART (<seq>/NotAlign/visible/)")


def sequence_home(root: Path) -> Path:
    """Where the sequence folders of ``root`` are: ``root/sequence`` if that is a folder of sequences, else ``root``."""
    home = root / "sequence"
    if home.is_dir() and not (home / "visible").is_dir() and not (home / "NotAlign").is_dir():
        return home
    return root


def _has_luart_sequences(home: Path) -> bool:
    return any((p / "NotAlign" / "visible").is_dir() for p in home.iterdir() if p.is_dir())


def detect_layout(root: str | Path, layout: str = "auto", list_file=None) -> str:
    """The layout of dataset folder ``root``: ``layout`` itself when named (after checking that ``root`` has its
    marker), else found from the markers: ``annos/visible/`` (MUART244), ``annos/`` (LasHeR-Unaligned), a sequence
    with ``NotAlign/visible/`` (LUART), a list file or a sequence with ``visible/`` (LasHeR). A folder with none of
    them is a :class:`PMATrackError` that names it and lists the layouts."""
    root = Path(root)
    if layout != "auto" and layout not in LAYOUTS:
        raise PMATrackError(f"unknown layout {layout!r}; use auto or one of {', '.join(LAYOUTS)}")
    if not root.is_dir():
        raise PMATrackError(f"{root}: dataset folder not found")
    annos = root / "annos"
    if layout == "lasher-unaligned" and not annos.is_dir():
        raise PMATrackError(f"{root}: not a LasHeR-Unaligned folder: {annos}/ (the visible ground truth, "
                            "annos/<seq>.txt) not found")
    if layout == "muart244" and not (annos / "visible").is_dir():
        raise PMATrackError(f"{root}: not a MUART244 folder: {annos / 'visible'}/ (the visible ground truth, "
                            "annos/visible/<seq>.txt) not found")
    if layout != "auto":
        return layout
    if (annos / "visible").is_dir():
        return "muart244"
    if annos.is_dir():
        return "lasher-unaligned"
    if _has_luart_sequences(sequence_home(root)):
        return "luart"
    if list_file is not None or (root / "list.txt").is_file() or any(
            (p / "visible").is_dir() for p in root.iterdir() if p.is_dir()):
        return "lasher"
    raise PMATrackError(f"{root}: no sequences in any known dataset layout: {_SHAPES}")


def layout_sequence_names(root: Path, layout: str, list_file=None) -> list[str]:
    """Sequence names of a folder in ``layout`` (see the module docstring); each must have its sequence folder."""
    if layout == "lasher":
        return sequence_names(root, list_file)
    home = sequence_home(root)
    lf = Path(list_file) if list_file else root / "list.txt"
    if list_file and not lf.is_file():
        raise PMATrackError(f"{lf}: sequence list not found")
    if lf.is_file():
        names = [ln.strip() for ln in lf.read_text(errors="replace").splitlines()
                 if ln.strip() and not ln.startswith("#")]
    elif layout == "luart":
        names = sorted(p.name for p in home.iterdir() if (p / "NotAlign" / "visible").is_dir())
    else:
        gt_dir = root / "annos" / ("visible" if layout == "muart244" else "")
        names = sorted(p.stem for p in gt_dir.glob("*.txt") if not p.name.startswith("."))
    if not names:
        raise PMATrackError(f"{root}: no sequences in this {LABELS[layout]} folder (no list.txt and no "
                            f"{'annotation files' if layout != 'luart' else 'sub-folder with NotAlign/visible/'})")
    missing = [n for n in names if not (home / n).is_dir()]
    if missing:
        raise PMATrackError(f"{root}: incomplete {LABELS[layout]} folder: {len(missing)} sequence folder(s) not "
                            f"found, e.g. {home / missing[0]} (give --list to score a subset)")
    return names


def gt_files(seq_dir: Path, layout: str, root: Path) -> tuple[list[Path], list[Path]]:
    """Candidate files of the visible and of the infrared ground truth of one sequence, the first present wins."""
    name = seq_dir.name
    own = [seq_dir / "visible.txt"], [seq_dir / "infrared.txt"]
    if layout == "lasher-unaligned":
        return [root / "annos" / f"{name}.txt"], own[1]
    if layout == "muart244":
        return [root / "annos" / "visible" / f"{name}.txt"], [root / "annos" / "infrared" / f"{name}.txt"] + own[1]
    return own


def _first_present(candidates: list[Path], what: str, layout: str) -> Path:
    for p in candidates:
        if p.is_file():
            return p
    tried = " or ".join(str(p) for p in candidates)
    raise PMATrackError(f"{tried}: not found: incomplete {LABELS[layout]} folder (the {what} ground truth)")


def load_layout_sequence(seq_dir: str | Path, layout: str, root: str | Path, strict: bool = True) -> Sequence:
    """One sequence of a folder in ``layout`` (not ``lasher``: :func:`.dataset.load_sequence` reads that), with the
    checks of :mod:`.dataset` (frame and row counts, positive initial box)."""
    seq_dir, root = Path(seq_dir), Path(root)
    if not seq_dir.is_dir():
        raise PMATrackError(f"{seq_dir}: sequence folder not found")
    rgb_dir, tir_dir = (seq_dir / f for f in FRAMES[layout])
    vis_c, ir_c = gt_files(seq_dir, layout, root)
    vis_file, ir_file = _first_present(vis_c, "visible", layout), _first_present(ir_c, "infrared", layout)
    return assemble_sequence(seq_dir, rgb_dir, tir_dir, vis_file, ir_file, strict)


def sequence_layout(seq_dir: Path) -> tuple[str, Path] | None:
    """(layout, dataset root) of a single sequence folder that is not in LasHeR's layout, else None: LUART when it
    holds ``NotAlign/``, MUART244 / LasHeR-Unaligned when its dataset folder (parent, or grandparent through
    ``sequence/``) holds ``annos/visible/`` / ``annos/``."""
    if (seq_dir / "NotAlign").is_dir():
        return "luart", seq_dir.parent
    roots = [seq_dir.parent] + ([seq_dir.parent.parent] if seq_dir.parent.name == "sequence" else [])
    for root in roots:
        if (root / "annos" / "visible").is_dir():
            return "muart244", root
        if (root / "annos").is_dir():
            return "lasher-unaligned", root
    return None


def load_layout_dataset(root: str | Path, layout: str, list_file=None, strict: bool = True) -> list[Sequence]:
    """Every sequence of a folder in ``layout`` (not ``lasher``), in name order or the list file's order."""
    root = Path(root)
    home = sequence_home(root)
    return [load_layout_sequence(home / n, layout, root, strict=strict)
            for n in layout_sequence_names(root, layout, list_file)]
