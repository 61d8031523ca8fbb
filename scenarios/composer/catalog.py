"""The scenario manifests shipped in this repository (`scenarios/<id>/manifest.yaml`)."""

from __future__ import annotations

from pathlib import Path

from scenarios.composer.manifest import Manifest, ManifestError, load

SCENARIOS_DIR = Path(__file__).resolve().parent.parent


def available(folder: Path = SCENARIOS_DIR) -> dict[str, Manifest]:
    """Every manifest of the folder by id; a broken one raises, naming its file and field."""
    found: dict[str, Manifest] = {}
    for path in sorted(folder.glob("*/manifest.yaml")):
        manifest = load(path)
        if manifest.id != path.parent.name:
            raise ManifestError(
                "id", f"is {manifest.id!r} but the folder is {path.parent.name!r}", str(path)
            )
        found[manifest.id] = manifest
    return found


def get(scenario: str, folder: Path = SCENARIOS_DIR) -> Manifest:
    """One shipped manifest by id."""
    path = folder / scenario / "manifest.yaml"
    if not path.is_file():
        known = ", ".join(sorted(available(folder))) or "none"
        raise ManifestError("scenario", f"no scenario {scenario!r} (known: {known})")
    return load(path)
