"""Field limits read from the contract: the `(grassroots.type.v1.limits)` field option.

Lengths, ranges, sizes and patterns are declared once, on the proto field (ADR 22).
The server interceptor checks every request against them before a handler runs, so
no adapter or domain repeats them, and the gateway's JSON schemas take the same
bounds through `of` (`gateway/schemas/contract.py`).

A field holding its default (an empty string, zero, no items) is not checked here:
whether a value is required, and what zero means, is the domain's rule.

Every string field, with limits or without, map keys and values included, is refused
when it holds NUL (U+0000): PostgreSQL keeps no NUL in text, so a value one store
would keep and the other refuse is refused by both. `bytes` fields may hold any byte.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from grassroots.type.v1 import annotations_pb2
from services.kit.errors import FieldViolation, InvalidArgument


@dataclass(frozen=True)
class Limits:
    """The bounds one field declares; zero lengths and counts mean no bound."""

    min_length: int = 0
    max_length: int = 0
    minimum: float | None = None
    maximum: float | None = None
    max_items: int = 0
    pattern: str = ""


def _declared(field: Any) -> Limits | None:
    options = field.GetOptions()
    if not options.HasExtension(annotations_pb2.limits):
        return None
    declared = options.Extensions[annotations_pb2.limits]
    return Limits(
        min_length=declared.min_length,
        max_length=declared.max_length,
        minimum=declared.minimum if declared.HasField("minimum") else None,
        maximum=declared.maximum if declared.HasField("maximum") else None,
        max_items=declared.max_items,
        pattern=declared.pattern,
    )


def of(message: type[Message] | Descriptor, field: str) -> Limits:
    """The limits `field` of `message` declares; LookupError when it declares none."""
    descriptor = message if isinstance(message, Descriptor) else message.DESCRIPTOR
    found = _declared(descriptor.fields_by_name[field])
    if found is None:
        raise LookupError(f"{descriptor.full_name}.{field} declares no limits")
    return found


@dataclass(frozen=True)
class _Step:
    field: FieldDescriptor
    limits: Limits | None
    nested: tuple[_Step, ...]
    text: bool  # a string field (or a map with string keys or values): no NUL in it
    map_value: tuple[_Step, ...] = ()  # a map of messages: the steps of its values


NUL = "\x00"
_NUL_SAYS = "must not contain NUL (U+0000)"


def _plan(descriptor: Any, visiting: frozenset[str] = frozenset()) -> tuple[_Step, ...]:
    """The fields of `descriptor` that carry limits or lead to fields that do."""
    return _plan_cached(descriptor, visiting)


@functools.cache
def _plan_cached(descriptor: Any, visiting: frozenset[str]) -> tuple[_Step, ...]:
    steps = []
    inside = visiting | {descriptor.full_name}
    for field in descriptor.fields:
        nested: tuple[_Step, ...] = ()
        map_value: tuple[_Step, ...] = ()
        child = field.message_type
        is_map = child is not None and child.GetOptions().map_entry
        text = field.type == FieldDescriptor.TYPE_STRING
        if is_map:
            key, value = child.fields_by_name["key"], child.fields_by_name["value"]
            string = FieldDescriptor.TYPE_STRING
            text = string in (key.type, value.type)
            inner = value.message_type
            if inner is not None and inner.full_name not in inside:
                map_value = _plan(inner, inside)
        elif child is not None and child.full_name not in inside:
            nested = _plan(child, inside)
        limits = _declared(field)
        if limits is not None or nested or text or map_value:
            steps.append(_Step(field, limits, nested, text, map_value))
    return tuple(steps)


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _matches(pattern: str, value: str) -> bool:
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        compiled = _PATTERNS[pattern] = re.compile(pattern)
    return compiled.fullmatch(value) is not None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _scalar(value: Any, limits: Limits, path: str, out: list[FieldViolation]) -> None:
    if isinstance(value, str | bytes):
        if not value:
            return
        size = len(value)
        if size < limits.min_length:
            out.append(FieldViolation(path, f"has {size} characters; at least {limits.min_length}"))
        if limits.max_length and size > limits.max_length:
            out.append(FieldViolation(path, f"has {size} characters; at most {limits.max_length}"))
        if limits.pattern and isinstance(value, str) and not _matches(limits.pattern, value):
            out.append(FieldViolation(path, f"must match {limits.pattern}"))
        if isinstance(value, str) and NUL in value:
            out.append(FieldViolation(path, _NUL_SAYS))
        return
    if isinstance(value, bool) or value == 0:
        return
    low, high = limits.minimum, limits.maximum
    if (low is not None and not low <= value) or (high is not None and not value <= high):
        bounds = f"[{_number(low) if low is not None else ''}, "
        bounds += f"{_number(high) if high is not None else ''}]"
        out.append(FieldViolation(path, f"{value} is not in {bounds}"))


def _text(value: Any, path: str, out: list[FieldViolation]) -> None:
    if isinstance(value, str) and NUL in value:
        out.append(FieldViolation(path, _NUL_SAYS))


def _walk(message: Message, steps: tuple[_Step, ...], prefix: str, out: list) -> None:
    for step in steps:
        name = step.field.name
        path = prefix + name
        value = getattr(message, name)
        if step.field.message_type is not None and (step.text or step.map_value):  # a map
            for key, item in value.items():
                _text(key, f"{path}[{key!r}]", out)
                if step.map_value:
                    _walk(item, step.map_value, f"{path}[{key!r}].", out)
                else:
                    _text(item, f"{path}[{key!r}]", out)
        elif step.text and step.limits is None:  # with limits, `_scalar` looks for NUL
            if not step.field.is_repeated:
                _text(value, path, out)
            elif NUL in "".join(value):
                for i, item in enumerate(value):
                    _text(item, f"{path}[{i}]", out)
        if step.field.is_repeated:
            most = step.limits.max_items if step.limits is not None else 0
            if most and len(value) > most:
                out.append(FieldViolation(path, f"has {len(value)} items; at most {most}"))
            for i, item in enumerate(value if step.nested or step.limits is not None else ()):
                if step.nested:
                    _walk(item, step.nested, f"{path}[{i}].", out)
                elif step.limits is not None:
                    _scalar(item, step.limits, f"{path}[{i}]", out)
        elif step.nested:
            if message.HasField(name):
                _walk(value, step.nested, path + ".", out)
        elif step.limits is not None:
            _scalar(value, step.limits, path, out)


def violations(message: Message, prefix: str = "") -> list[FieldViolation]:
    """Every value of `message` (nested messages included) outside its declared limits."""
    out: list[FieldViolation] = []
    steps = _plan(message.DESCRIPTOR)
    if steps:
        _walk(message, steps, prefix, out)
    return out


def check(message: Message) -> None:
    """INVALID_ARGUMENT naming every field of `message` outside its limits, at once."""
    found = violations(message)
    if found:
        raise InvalidArgument(found)
