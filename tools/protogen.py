"""Generate the Python and typing stubs for every proto under proto/.

One entry point for `make proto` and for the test that fails when the committed
stubs no longer match the contracts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "proto"
GENERATED_PACKAGE = "grassroots"


def proto_files(proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Every contract, in a stable order so the output is reproducible."""
    return sorted(proto_root.rglob("*.proto"))


def generate(out_dir: Path, proto_root: Path = PROTO_ROOT) -> None:
    """Run protoc (from grpcio-tools) with the mypy plugins into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *[str(p.relative_to(proto_root)) for p in proto_files(proto_root)],
    ]
    done = subprocess.run(cmd, env=env, cwd=proto_root, capture_output=True, text=True)
    # The mypy plugins name every stub they write; protoc's own warnings and errors pass.
    said = [line for line in done.stderr.splitlines() if not line.startswith("Writing mypy to ")]
    sys.stdout.write(done.stdout)
    sys.stderr.write("".join(f"{line}\n" for line in said))
    done.check_returncode()
    package_root = out_dir / GENERATED_PACKAGE
    for directory in [package_root, *sorted(p for p in package_root.rglob("*") if p.is_dir())]:
        init = directory / "__init__.py"
        if not init.exists():
            init.write_text("")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO, help="output root (default: repo)")
    args = parser.parse_args(argv)
    generate(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
