"""Scenario templates as the catalog lists them, read from the manifests in `scenarios/`.

A template is a folder with a `manifest.yaml` (or `.yml`, `.json`), or a single
manifest file, naming at least its id or title. The folder may not exist yet: then
the shelf has no scenarios. A manifest that cannot be read is left out and logged,
so one bad file does not empty the shelf.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from services.empower.domain.catalog import ScenarioTemplate

log = logging.getLogger(__name__)
_SUFFIXES = (".yaml", ".yml", ".json")
_ID = re.compile(r"[^a-z0-9]+")


def _load(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("a manifest is a mapping")
    return data


def _template(data: dict[str, Any], fallback_id: str) -> ScenarioTemplate:
    raw_id = str(data.get("id") or data.get("name") or fallback_id)
    template_id = _ID.sub("-", raw_id.lower()).strip("-")[:100]
    if not template_id:
        raise ValueError("no id")
    components = data.get("components") or ()
    if isinstance(components, dict):
        components = list(components)
    return ScenarioTemplate(
        template_id=template_id,
        display_name=str(data.get("display_name") or data.get("title") or raw_id)[:200],
        description=str(data.get("description") or "")[:2000],
        version=str(data.get("version") or ""),
        area=str(data.get("area") or data.get("category") or ""),
        components=tuple(str(c) for c in components),
    )


class ScenarioManifests:
    """Looks at the folder on each call, so templates installed by copying files show up;
    a file is parsed again only when it changed (each install checks the shelf)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._parsed: dict[Path, tuple[int, int, ScenarioTemplate]] = {}

    def _manifests(self) -> list[tuple[Path, str]]:
        if not self.folder.is_dir():
            return []
        found: list[tuple[Path, str]] = []
        for entry in sorted(self.folder.iterdir()):
            if entry.is_dir():
                for suffix in _SUFFIXES:
                    manifest = entry / f"manifest{suffix}"
                    if manifest.is_file():
                        found.append((manifest, entry.name))
                        break
            elif entry.suffix in _SUFFIXES and not entry.name.startswith("."):
                found.append((entry, entry.stem))
        return found

    def templates(self) -> Sequence[ScenarioTemplate]:
        templates: dict[str, ScenarioTemplate] = {}
        for path, fallback in self._manifests():
            try:
                template = self._read(path, fallback)
            except (OSError, ValueError, yaml.YAMLError) as exc:
                log.warning("scenario manifest %s left out: %s", path.name, exc)
                continue
            templates.setdefault(template.template_id, template)
        return list(templates.values())

    def _read(self, path: Path, fallback: str) -> ScenarioTemplate:
        stat = path.stat()
        kept = self._parsed.get(path)
        if kept is not None and kept[:2] == (stat.st_mtime_ns, stat.st_size):
            return kept[2]
        template = _template(_load(path), fallback)
        self._parsed[path] = (stat.st_mtime_ns, stat.st_size, template)
        return template
