"""msgspec's validation errors, re-said for the operator who has to fix the file.

msgspec names a bad value by a JSON path (``$.server.port``) and hides a table's keys
(``$.regions.routes[...]``): an operator needs the TOML key (``regions.routes.DE``) and, when
the value is a choice, the values allowed. The types of ``signaling.config`` are the only
source of both: the path is walked through them, so a new setting needs nothing here.
"""

from __future__ import annotations

import enum
import json
import re
import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import msgspec

_AT = re.compile(r"(?P<what>.*?)(?: - at `\$(?P<path>.*)`)?", re.DOTALL)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[([^\]]*)\]")
_TYPE_WORDS: dict[Any, str] = {int: "a whole number", float: "a number", str: "any text"}
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>[^`]*)`")


def explain(exc: msgspec.ValidationError, data: Mapping[str, Any], root: type) -> str:
    """`exc`, raised converting `data` to `root`, as ``key: problem``."""
    match = _AT.fullmatch(str(exc))
    assert match is not None  # the pattern matches any text
    what, path = match["what"], match["path"] or ""
    keys: list[str] = []
    tp: Any = root
    value: Any = data
    for name, index in _SEGMENT.findall(path):
        if name:
            keys.append(name)
            tp = _field_type(tp, name)
            value = value.get(name) if isinstance(value, Mapping) else None
        elif index == "...":  # a table's value: find which key holds the bad one
            tp = _type_arg(tp, -1)
            key, value = _first_invalid(value, tp)
            keys.append(key)
        else:
            keys[-1] += f"[{index}]"
            tp = _type_arg(tp, 0)
            value = value[int(index)] if isinstance(value, list) else None
    if (unknown := _UNKNOWN.fullmatch(what)) is not None:
        known = ", ".join(get_type_hints(tp)) if _is_struct(tp) else "?"
        where = f"[{'.'.join(keys)}]" if keys else "the top level"
        return f"{'.'.join([*keys, unknown['name']])}: unknown key; {where} has: {known}"
    key = ".".join(keys) or "the file"
    choices = _choices(tp)
    if choices is None:
        return f"{key}: {what}"
    if what.startswith("Invalid enum value"):
        return f"{key} = {json.dumps(value)} is not allowed; choose one of: {choices}"
    return f"{key}: {what}; choose one of: {choices}"


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _field_type(tp: Any, name: str) -> Any:
    return _without_none(get_type_hints(tp)[name]) if _is_struct(tp) else Any


def _type_arg(tp: Any, position: int) -> Any:
    """A container's item type (0 of a list) or value type (-1 of a dict); Any if unknown."""
    args = get_args(tp)
    return _without_none(args[position]) if args else Any


def _without_none(tp: Any) -> Any:
    """``X | None`` is X here: None is never what a TOML file says."""
    if get_origin(tp) in (Union, types.UnionType):
        rest = [arg for arg in get_args(tp) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp


def _first_invalid(table: Any, value_type: Any) -> tuple[str, Any]:
    for key, value in table.items() if isinstance(table, Mapping) else ():
        try:
            msgspec.convert(value, value_type)
        except msgspec.ValidationError:
            return str(key), value
    return "[...]", None


def _choices(tp: Any) -> str | None:
    """The allowed values of a choice (an enum, a Literal, or a union holding one)."""
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return ", ".join(str(member.value) for member in tp)
    origin = get_origin(tp)
    if origin is Literal:
        return ", ".join(str(arg) for arg in get_args(tp))
    if origin in (Union, types.UnionType):
        return ", ".join(_choices(arg) or _TYPE_WORDS.get(arg, str(arg)) for arg in get_args(tp))
    return None
