"""Checking a composed config against the schema (:mod:`genixer.config.schema`), right after
Hydra composes it and before any stage runs.

Each config group is a dataclass; :func:`check_node` walks a node and its schema together: an
unknown key, a missing key, a wrong type or a value out of range raises :class:`ConfigError`
with the key's dotted name. Values are never changed or filled in: the YAML files hold every
default, the schema only says what may stand there. A dataclass's ``check(path)`` method adds
the rules that span several keys (a band's order, an impossible combination).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from hydra.utils import get_object


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key."""


MISSING = "???"
_UNSET = "must be set, got null (or a value that resolves only inside `python -m genixer.run`)"

# A field whose default is OPTIONAL may be left out of the YAML (nothing is filled in).
OPTIONAL = object()


def optional():
    return dataclasses.field(default=OPTIONAL)


def fail(path: str, message: str) -> typing.NoReturn:
    raise ConfigError(f"{path}: {message}")


def check_node(value: Any, annotation: Any, path: str) -> Any:
    """``value`` checked against a type: a schema dataclass, a builtin, a Literal, a union
    with None, ``list[...]``, ``dict[str, ...]`` or ``Any``."""
    if annotation is Any:
        return value
    if dataclasses.is_dataclass(annotation):
        return _check_dataclass(value, annotation, path)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return _check_union(value, args, path)
    if origin is Literal:
        if value not in args:
            fail(path, f"must be one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            fail(path, f"must be a list, got {value!r}")
        return [check_node(v, args[0], f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            fail(path, f"must be a mapping, got {value!r}")
        return {k: check_node(v, args[1], f"{path}.{k}") for k, v in value.items()}
    return _check_scalar(value, annotation, path)


def _check_scalar(value: Any, annotation: type, path: str) -> Any:
    if value == MISSING:
        fail(path, "is required (set it on the command line or in an experiment file)")
    ok = isinstance(value, annotation) and not (annotation is int and isinstance(value, bool))
    if annotation is float:  # YAML writes 1 for 1.0
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if value is None:
        fail(path, _UNSET)
    if not ok:
        fail(path, f"must be {annotation.__name__}, got {value!r}")
    return value


def _check_union(value: Any, args: tuple, path: str) -> Any:
    if value is None:
        if type(None) in args:
            return None
        fail(path, _UNSET)
    options = [a for a in args if a is not type(None)]
    if len(options) == 1:  # X | None: X's own error, naming the inner key
        return check_node(value, options[0], path)
    errors = []
    for arg in options:
        try:
            return check_node(value, arg, path)
        except ConfigError as err:
            errors.append(str(err))
    fail(path, "; or ".join(e.split(": ", 1)[1] for e in errors))


def _check_dataclass(value: Any, schema: type, path: str) -> Any:
    if not isinstance(value, Mapping):
        fail(path or "config", f"must be a mapping of {schema.__name__}, got {value!r}")
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        where = ", ".join(_join(path, k) for k in unknown)
        fail(where, f"unknown key (known: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(schema)
    kwargs = {}
    for name, f in fields.items():
        key = _join(path, name)
        if name not in value:
            if f.default is OPTIONAL:
                continue
            fail(key, "is missing")
        kwargs[name] = check_node(value[name], hints[name], key)
    obj = schema(**kwargs)
    if hasattr(obj, "check"):
        obj.check(path)
    return obj


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def given(obj: Any, name: str) -> Any:
    """A field's value, or None when an optional field was left out."""
    value = getattr(obj, name)
    return None if value is OPTIONAL else value


def at_least(path: str, value: float | None, low: float) -> None:
    if value is not None and value < low:
        fail(path, f"must be >= {low}, got {value}")


def within(path: str, value: float | None, low: float, high: float) -> None:
    if value is not None and not low <= value <= high:
        fail(path, f"must lie in [{low}, {high}], got {value}")


def check_targeted(node: dict, registry: dict[str, type], path: str) -> Any:
    """A ``_target_`` node against its target's schema; a target of your own against the
    keywords its constructor takes."""
    target = node.get("_target_")
    if not isinstance(target, str):
        fail(f"{path}._target_", "is missing")
    if target in registry:
        return check_node(node, registry[target], path)
    try:
        params = inspect.signature(get_object(target)).parameters
    except (ImportError, AttributeError, ValueError) as err:
        fail(f"{path}._target_", f"cannot import {target!r}: {err}")
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(k for k in node if not k.startswith("_") and k not in params)
        if unknown:
            fail(", ".join(f"{path}.{k}" for k in unknown), f"{target} takes no such keyword")
    return node


def check_trainer(node: dict, path: str) -> dict:
    """Lightning Trainer keywords; a factory that passes ``**kwargs`` on to the Trainer
    (``make_trainer``) is checked against its own keywords plus the Trainer's."""
    target = node.get("_target_")
    check_targeted(node, {}, path)
    params = inspect.signature(get_object(target)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        known = set(params) | set(inspect.signature(get_object("lightning.Trainer")).parameters)
        unknown = sorted(k for k in node if not k.startswith("_") and k not in known)
        if unknown:
            fail(", ".join(f"{path}.{k}" for k in unknown), "no Trainer keyword of that name")
    return node
