"""requirements.txt (pins), environment.yml (conda + pip) and pyproject.toml (ranges) must agree."""
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
