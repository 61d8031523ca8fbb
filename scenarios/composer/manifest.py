"""Scenario manifests: read, checked against the committed JSON Schema, settings resolved.

A manifest (`scenarios/<id>/manifest.yaml`) says what a scenario needs from each
component and which settings a village may override. Every mistake is one
`ManifestError` naming the path of the bad field (`command.routing_rules[0].category`,
`overrides.radius_m`), so a village developer or district IT can fix it without a
stack trace.

Values in resource specifications may name a setting: `${radius_m}` as a whole value
keeps the setting's type; `${response_minutes|minutes}` and `|hours`/`|seconds` give
a protobuf duration ("300s"); inside a longer string the setting is written as text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent / "manifest.schema.json"
API_VERSION = "grassroots.scenarios/v1"
# The sections of a manifest that declare resources, in the order they are applied:
# what others refer to comes first (models before rules, categories before routing).
KINDS: tuple[str, ...] = (
    "map.layers",
    "events.categories",
    "twin.models",
    "twin.rules",
    "command.routing_rules",
    "command.emergency_plans",
    "command.service_plans",
    "empower.forms",
    "empower.report_templates",
    "empower.points_rules",
    "empower.credit_policies",
    "empower.notices",
)
_REFERENCE = re.compile(r"\$\{([a-z][a-z0-9_]{0,62})(?:\|(minutes|hours|seconds))?\}")
# Names every manifest may use without declaring them: the village's resource name
# (`tenants/sh-jiading-anting-xingming`) and its path (`sh/jiading/anting/xingming`).
BUILTINS = ("tenant", "village")
_UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600}
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
}


class ManifestError(ValueError):
    """A manifest or a village's override that cannot be used, naming the bad field."""

    def __init__(self, path: str, message: str, source: str = "") -> None:
        self.path = path or "(manifest)"
        self.message = message
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{self.path}: {message}")


def format_path(parts: Iterable[Any]) -> str:
    """jsonschema's path as a reader writes it: `command.routing_rules[0].category`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(frozen=True)
class Setting:
    """A value a village may override, with its default, type and bounds."""

    name: str
    type: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] = ()
    max_length: int | None = None
    pattern: str | None = None
    description: str = ""

    def check(self, value: Any, path: str) -> Any:
        """The value if it fits, else ManifestError naming `path`."""
        types = _PY_TYPES[self.type]
        if (isinstance(value, bool) and self.type != "boolean") or not isinstance(value, types):
            raise ManifestError(path, f"must be of type {self.type}, not {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ManifestError(path, f"must be a finite number, not {value}")
        return self._bounded(value, path)

    def _bounded(self, value: Any, path: str) -> Any:
        if self.minimum is not None and value < self.minimum:
            raise ManifestError(path, f"must be at least {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ManifestError(path, f"must be at most {self.maximum:g}")
        if self.enum and value not in self.enum:
            raise ManifestError(path, f"must be one of {list(self.enum)}")
        if self.max_length is not None and len(value) > self.max_length:
            raise ManifestError(path, f"must be at most {self.max_length} characters")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise ManifestError(path, f"must match {self.pattern}")
        return value


@dataclass(frozen=True)
class Declared:
    """One resource a manifest declares: its kind, key and specification as written."""

    kind: str
    key: str
    spec: Mapping[str, Any]
    path: str  # where it is in the manifest, for errors


@dataclass(frozen=True)
class Manifest:
    id: str
    version: str
    title: str
    area: str
    scenario_class: str
    components: tuple[str, ...]
    description: str = ""
    settings: Mapping[str, Setting] = field(default_factory=dict)
    handler_roles: tuple[str, ...] = ()
    resources: tuple[Declared, ...] = ()
    source: str = ""

    @property
    def catalog_item(self) -> str:
        """The catalog's name of this template (`catalogItems/scenario-<id>`)."""
        return f"catalogItems/scenario-{self.id}"

    def defaults(self) -> dict[str, Any]:
        return {name: s.default for name, s in self.settings.items()}


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


def _first_error(data: Any, source: str) -> None:
    errors = sorted(
        _validator().iter_errors(data), key=lambda e: (list(e.absolute_path), e.message)
    )
    if not errors:
        return
    error = errors[0]
    # A oneOf/anyOf failure names its most specific cause.
    best = jsonschema.exceptions.best_match([error]) or error
    raise ManifestError(format_path(best.absolute_path), best.message, source)


def parse(data: Any, source: str = "") -> Manifest:
    """A checked manifest from its parsed YAML/JSON, or ManifestError naming the field."""
    _first_error(data, source)
    settings: dict[str, Setting] = {}
    for name, given in (data.get("settings") or {}).items():
        if name in BUILTINS:
            raise ManifestError(f"settings.{name}", "is a name every manifest has already", source)
        setting = Setting(
            name=name,
            type=given["type"],
            default=given["default"],
            minimum=given.get("minimum"),
            maximum=given.get("maximum"),
            enum=tuple(given.get("enum", ())),
            max_length=given.get("maxLength"),
            pattern=given.get("pattern"),
            description=given.get("description", ""),
        )
        try:
            setting.check(setting.default, f"settings.{name}.default")
        except ManifestError as exc:
            raise ManifestError(exc.path, exc.message, source) from None
        settings[name] = setting
    resources: list[Declared] = []
    used_components = set()
    for kind in KINDS:
        component, section = kind.split(".")
        items = (data.get(component) or {}).get(section) or []
        seen: set[str] = set()
        for i, item in enumerate(items):
            path = f"{component}.{section}[{i}]"
            key = item["id"]
            if key in seen:
                raise ManifestError(f"{path}.id", f"{key!r} is declared twice", source)
            seen.add(key)
            spec = {k: v for k, v in item.items() if k != "id"}
            _check_references(spec, settings, path, source)
            resources.append(Declared(kind, key, spec, path))
            used_components.add(component)
    components = tuple(data["components"])
    missing = sorted(used_components - set(components))
    if missing:
        raise ManifestError(
            "components", f"declares resources of {missing} but does not list them", source
        )
    return Manifest(
        id=data["id"],
        version=data["version"],
        title=data["title"],
        area=data["area"],
        scenario_class=data["class"],
        components=components,
        description=data.get("description", ""),
        settings=settings,
        handler_roles=tuple((data.get("requires") or {}).get("handler_roles", ())),
        resources=tuple(resources),
        source=source,
    )


def load(path: Path) -> Manifest:
    """Read and check a manifest file (YAML or JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ManifestError("(file)", f"cannot be read: {exc}", str(path)) from None
    return parse(data, str(path))


def _check_references(value: Any, settings: Mapping[str, Setting], path: str, source: str) -> None:
    if isinstance(value, str):
        for match in _REFERENCE.finditer(value):
            name, unit = match.groups()
            if name in BUILTINS:
                if unit:
                    raise ManifestError(path, f"uses |{unit} on {name!r}, which is text", source)
                continue
            if name not in settings:
                raise ManifestError(path, f"names setting {name!r}, which is not declared", source)
            if unit and settings[name].type not in ("integer", "number"):
                raise ManifestError(
                    path, f"uses |{unit} on {name!r}, which is not a number", source
                )
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _check_references(v, settings, f"{path}.{k}", source)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_references(v, settings, f"{path}[{i}]", source)


def resolve_settings(manifest: Manifest, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults with a village's overrides, each checked against its type and bounds."""
    values = manifest.defaults()
    for name, value in (overrides or {}).items():
        setting = manifest.settings.get(name)
        if setting is None:
            known = ", ".join(sorted(manifest.settings)) or "none"
            raise ManifestError(
                f"overrides.{name}", f"is not a setting of {manifest.id} (settings: {known})"
            )
        values[name] = setting.check(value, f"overrides.{name}")
    return values


def render(value: Any, settings: Mapping[str, Any]) -> Any:
    """A specification with the settings it names filled in."""
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole:
            return _substitute(whole, settings)
        return _REFERENCE.sub(lambda m: str(_substitute(m, settings)), value)
    if isinstance(value, Mapping):
        return {k: render(v, settings) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, settings) for v in value]
    return value


def _substitute(match: re.Match[str], settings: Mapping[str, Any]) -> Any:
    name, unit = match.groups()
    value = settings[name]
    if unit:
        seconds = value * _UNIT_SECONDS[unit]
        # Whole seconds as digits: `:g` would write 15 days as "1.296e+06s", not a duration.
        return (
            f"{int(seconds)}s"
            if float(seconds).is_integer()
            else f"{seconds:.9f}".rstrip("0") + "s"
        )
    return value
