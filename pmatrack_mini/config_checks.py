"""The config's checks and overrides: range and type checks with messages naming the key and the value, the strict
typed :func:`merge` of overrides into a dataclass config, the CLI's ``--set`` items (:func:`parse_overrides`), and
the differences between two configs. ``pmatrack_mini.config`` re-exports them.
"""
from __future__ import annotations

import dataclasses
import json
import math

from .errors import PMATrackError


def require(ok: bool, key: str, value, rule: str) -> None:
    """Raise a PMATrackError naming ``key`` and ``value`` unless ``ok``."""
    if not ok:
        raise PMATrackError(f"{key}={value!r} is out of range: must be {rule}")


def require_positive(obj, section: str, names) -> None:
    for name in names:
        require(getattr(obj, name) > 0, f"{section}.{name}", getattr(obj, name), "> 0")


def require_nonnegative(obj, section: str, names) -> None:
    for name in names:
        require(getattr(obj, name) >= 0, f"{section}.{name}", getattr(obj, name), ">= 0")


# What each annotation accepts. bool is a subclass of int in Python, but True is not a depth.
ACCEPTS = {
    "bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "tuple": lambda v: isinstance(v, (list, tuple)),
    "None": lambda v: v is None,
}


def _annotation_kinds(annotation) -> list[str]:
    """``"tuple[int, int] | None"`` -> ``["tuple", "None"]``. Under ``from __future__ import annotations``
    dataclass field types are these strings; a real type is read by its name."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return [part.strip().split("[")[0] for part in text.split("|")]


def check_field_value(key: str, value, annotation):
    """``value`` for a field annotated ``annotation``, converted (int -> float, list -> tuple), or a
    PMATrackError naming ``key``. Floats must be finite. Annotations other than bool / int / float / str /
    tuple / None are not checked here (the dataclass's ``__post_init__`` may check them)."""
    kinds = _annotation_kinds(annotation)
    if any(k not in ACCEPTS for k in kinds):
        return value
    kind = next((k for k in kinds if ACCEPTS[k](value)), None)
    if kind is None:
        raise PMATrackError(f"config key {key!r} expects {' or '.join(kinds)}, got {value!r} ({type(value).__name__})")
    if kind == "float":
        try:
            number = float(value)
        except OverflowError:   # an int beyond the float range
            number = math.inf
        require(math.isfinite(number), key, value, "a finite number")
        return number
    return tuple(value) if kind == "tuple" else value


def flat_dict(d: dict, where: str = "") -> dict:
    """``{"model": {"depth": 6}}`` -> ``{"model.depth": 6}``."""
    out = {}
    for k, v in d.items():
        out.update(flat_dict(v, f"{where}{k}.") if isinstance(v, dict) else {where + k: v})
    return out


def differences(a, b, ignore=()) -> dict:
    """``{dotted key: (a's value, b's value)}`` for the settings where two configs (or sections) differ,
    leaving out the keys in ``ignore``."""
    fa, fb = flat_dict(dataclasses.asdict(a)), flat_dict(dataclasses.asdict(b))
    return {k: (fa.get(k), fb.get(k)) for k in sorted(fa.keys() | fb.keys())
            if k not in ignore and fa.get(k) != fb.get(k)}


def merge(obj, overrides: dict, where: str = ""):
    """Return a copy of dataclass ``obj`` with ``overrides`` applied.

    Strict: an unknown key, a value of the wrong type for its field's annotation (see
    :func:`check_field_value`) or out of the range the dataclass's ``__post_init__`` checks raises a
    PMATrackError naming the key and the value.
    """
    if not isinstance(overrides, dict):
        raise PMATrackError(f"config section {where.rstrip('.') or 'root'!r} expects a mapping, got {overrides!r}")
    names = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in overrides.items():
        if key not in names:
            raise PMATrackError(f"unknown config key {where + str(key)!r}; known: {sorted(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = merge(current, value, where=f"{where}{key}.")
        else:
            if isinstance(current, tuple) and isinstance(value, str):   # --set align.experts=tre,fme
                kind = type(current[0]) if current else str              # layers=0,1,2: elements as the default's
                try:
                    value = [kind(v.strip()) for v in value.split(",") if v.strip()]
                except ValueError:
                    raise PMATrackError(f"config key {where + key!r} expects {kind.__name__} values, got {value!r}") from None
            changes[key] = check_field_value(where + key, value, names[key].type)
    return dataclasses.replace(obj, **changes)


def parse_overrides(items) -> dict:
    """The CLI's ``--set`` items as nested overrides: ``["model.depth=4", "train.lr=1e-3"]`` ->
    ``{"model": {"depth": 4}, "train": {"lr": 0.001}}``.

    Values are read as JSON when they parse (numbers, true / false, null, lists), else kept as text; their
    types are checked against the dataclass fields by :func:`merge`. A key given twice, or given both a
    value and sub-keys, is an error.
    """
    out: dict = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        parts = key.split(".")
        if not sep or not all(parts):
            raise PMATrackError(f"--set expects key=value with a dotted key such as model.depth=4, got {item!r}")
        try:
            value = json.loads(raw)
        except ValueError:   # not JSON (or an integer too long to convert): keep the text
            value = raw
        node = out
        for depth, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise PMATrackError(f"--set {item!r}: {'.'.join(parts[:depth + 1])} was already given a value")
        if parts[-1] in node:
            raise PMATrackError(f"--set {item!r}: {key} is given twice (or also has sub-keys)")
        node[parts[-1]] = value
    return out
