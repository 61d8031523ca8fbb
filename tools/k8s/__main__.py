"""`python -m tools.k8s render|check|secrets`: write, verify or provision the manifests."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tools.k8s import render
from tools.k8s.workloads import WORKLOADS

ROOT = Path(__file__).resolve().parents[2] / "k8s"


def rendered() -> dict[Path, str]:
    """Every rendered file, by its path under k8s/."""
    out = {Path("base") / name: text for name, text in render.files().items()}
    out.update({Path(name): text for name, text in render.overlay_files().items()})
    return out


def write(root: Path = ROOT) -> list[Path]:
    """Write every rendered file under `root`; the ones that changed."""
    changed = []
    for relative, text in rendered().items():
        path = root / relative
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(relative)
    return changed


def stale(root: Path = ROOT) -> list[Path]:
    """Rendered files that are missing under `root` or differ from it."""
    return [
        relative
        for relative, text in rendered().items()
        if not (root / relative).exists() or (root / relative).read_text() != text
    ]


def write_secrets(root: Path, *, district: bool, force: bool) -> Path:
    """Fresh secret values for every workload, owner-only, never overwriting by default."""
    folder = root / "components" / "secrets" / "env"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for workload in WORKLOADS.values():
        path = folder / f"{workload.name}.env"
        if path.exists() and not force:
            continue
        values = render.secret_values(workload, district)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.writelines(f"{name}={value}\n" for name, value in values.items())
    return folder


def lacking_dsns(folder: Path) -> list[str]:
    """Env files (kept from an earlier run without --district) with no database DSN for a
    workload that has a PostgreSQL store; the district overlay would render without it."""
    lacking = []
    for workload in WORKLOADS.values():
        own = workload.settings[0]
        if "postgres_dsn" not in own.model_fields:
            continue
        variable = f"{own.model_config.get('env_prefix', '')}POSTGRES_DSN="
        path = folder / f"{workload.name}.env"
        if not any(line.startswith(variable) for line in path.read_text().splitlines()):
            lacking.append(path.name)
    return lacking


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.k8s", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("render", help="rewrite k8s/base, the overlays and the secrets component")
    commands.add_parser("check", help="fail when the committed manifests are stale")
    secrets = commands.add_parser(
        "secrets", help="write fresh keys to k8s/components/secrets/env (kept out of git)"
    )
    secrets.add_argument(
        "--district", action="store_true", help="also database DSNs with fresh passwords"
    )
    secrets.add_argument("--force", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    if args.command == "render":
        for path in write():
            print(f"wrote k8s/{path}")
        return 0
    if args.command == "check":
        late = stale()
        for path in late:
            print(f"k8s/{path} is stale: run `make k8s`", file=sys.stderr)
        return 1 if late else 0
    folder = write_secrets(ROOT, district=args.district, force=args.force)
    shown = folder.relative_to(ROOT.parent)
    print(f"secrets in {shown} (never commit them)")
    lacking = lacking_dsns(folder) if args.district else []
    for name in lacking:
        print(
            f"{shown}/{name} was kept and has no database DSN: add it, or replace every "
            "file with `python -m tools.k8s secrets --district --force`",
            file=sys.stderr,
        )
    return 1 if lacking else 0


if __name__ == "__main__":
    raise SystemExit(main())
