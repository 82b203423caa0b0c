"""requirements.txt (pins), environment.yml (conda + pip) and pyproject.toml (ranges) must agree; the package's
folders are layered in the order of the pipeline and every one of them is installed."""
import ast
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pins(lines):
    out = {}
    for ln in lines:
        ln = ln.split("#", 1)[0].strip()
        if ln and not ln.startswith("-"):
            assert "==" in ln, f"not pinned: {ln}"
            name, ver = ln.split("==")
            out[_name(name)] = ver.strip()
    return out


def test_requirements_environment_and_pyproject_agree():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    env_lines = [ln.strip()[2:] for ln in (ROOT / "environment.yml").read_text().splitlines()
                 if ln.strip().startswith("- ") and "==" in ln]
    env = _pins(env_lines)
    assert req == env, f"environment.yml and requirements.txt differ: {set(req.items()) ^ set(env.items())}"
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(d) for d in py["dependencies"]} | {_name(d) for d in py["optional-dependencies"]["dev"]}
    assert declared == set(req), f"pyproject vs requirements: {declared ^ set(req)}"
    # torch and torchvision are pinned as a pair (timm imports torchvision)
    assert req["torch"] == "2.14.1" and req["torchvision"] == "0.29.1"
    # ranges, not pins, in pyproject
    assert not any("==" in d for d in py["dependencies"])


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme


# The package's layers, in the order of the pipeline: the rank of each top-level module and sub-package of
# pmatrack_mini. A module may import from its own rank or a lower one, never from a higher one ("upward"); imports
# inside functions count too. Every top-level module and sub-package must have a rank here, so a new one takes its
# place explicitly. README's "Package layout" lists the same order.
RANKS = {
    # the foundation every other module uses
    "__init__": 0, "errors": 0, "utils": 0, "config": 0, "config_checks": 0, "geometry": 0, "ot": 0, "paper": 0,
    "listing": 0, "cli_args": 0,
    "data": 1,
    # the MAC counter ranks with the networks: models.router takes its measured expert costs from it, and it builds
    # the experts to count them
    "models": 2, "profile": 2,
    "training": 3,
    "evaluation": 4,     # routing_oracle scores the experts with training's losses
    "profiling": 5,      # cost_context takes the cost penalty's break-even residual from training's losses
    "tracking": 6,       # the tracker counts MACs, TOCU's check uses evaluation's overlap, track_video its pictures
    "experiments": 7,    # reproduce, demo and the notebooks' networks train, track and evaluate
    "cli": 8,            # the command line gathers every subcommand; nothing imports it
}
PACKAGE = ROOT / "pmatrack_mini"


def _unit(dotted: str) -> str:
    """The top-level module or sub-package a dotted name of the package lies in (``__init__`` for the package)."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported_units(source: str, module: str, is_package: bool = False):
    """(line, unit) for every import of the package in ``source``, the text of ``module`` (dotted name), relative or
    absolute, at any depth (inside functions too). ``from pmatrack_mini import x`` / ``from .. import x`` name the
    unit ``x`` when ``x`` is a module of its own."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                assert node.level <= len(parts), f"{module}:{node.lineno}: relative import beyond the package"
                base = ".".join(parts[:len(parts) - node.level + 1])
                target = base + ("." + node.module if node.module else "")
            else:
                target = node.module or ""
            targets = [f"{target}.{a.name}" if target == "pmatrack_mini" and a.name in RANKS else target
                       for a in node.names]
        else:
            continue
        for t in targets:
            if t == "pmatrack_mini" or t.startswith("pmatrack_mini."):
                yield node.lineno, _unit(t)


def upward_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """Each import in ``source`` (the text of ``module``) of a unit ranked above ``module``'s own."""
    own = _unit(module)
    return [f"{module}:{line} imports {unit} (rank {RANKS[unit]}) above {own} (rank {RANKS[own]})"
            for line, unit in imported_units(source, module, is_package) if RANKS[unit] > RANKS[own]]


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        yield path, ".".join(parts[:-1] if is_package else parts), is_package


def test_no_module_imports_upward():
    found = [msg for path, module, is_package in _modules()
             for msg in upward_imports(path.read_text(encoding="utf-8"), module, is_package)]
    assert not found, "imports against the layers (see RANKS):\n" + "\n".join(found)


def test_the_layer_check_reports_an_upward_import():
    # a fabricated training module that imports the experiments above it, at the top and inside a function
    source = ("from ..geometry import invert\n"
              "from .losses import cpesl\n"
              "from ..experiments.trained import stage2_network\n"
              "def f():\n"
              "    from pmatrack_mini.cli import main\n"
              "    from .. import tracking\n")
    assert sorted(upward_imports(source, "pmatrack_mini.training.train")) == [
        "pmatrack_mini.training.train:3 imports experiments (rank 7) above training (rank 3)",
        "pmatrack_mini.training.train:5 imports cli (rank 8) above training (rank 3)",
        "pmatrack_mini.training.train:6 imports tracking (rank 6) above training (rank 3)"]
    # the foundation importing anything above it is reported too; downward and sideways imports are not
    assert upward_imports("from .data.dataset import Sequence\n", "pmatrack_mini.geometry")
    assert upward_imports("from . import profile\n", "pmatrack_mini", is_package=True)
    assert not upward_imports("from ..models import build_model\nfrom .tocu import TOCU\n",
                              "pmatrack_mini.tracking.tracker")


def test_every_top_level_module_and_sub_package_has_a_rank():
    units = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir()
                                                      if p.is_dir() and any(p.rglob("*.py"))}
    assert units - set(RANKS) == set(), f"give these a rank in RANKS: {sorted(units - set(RANKS))}"
    assert set(RANKS) - units == set(), f"RANKS names what the package no longer has: {sorted(set(RANKS) - units)}"


def test_every_sub_package_is_installed():
    from setuptools import find_packages

    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    installed = set(find_packages(str(ROOT), include=find["include"]))
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py")}
    assert folders <= installed, f"not installed: {sorted(folders - installed)}"
