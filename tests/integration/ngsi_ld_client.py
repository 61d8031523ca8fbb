"""FIWARE's ngsildclient, from PyPI and unchanged, in a virtualenv of its own.

ngsildclient 0.5 pins httpx < 0.24 (the platform uses 0.28), so it cannot share the
project's environment; it is installed once into the user's cache folder (not var/, whose
files the services make private) and run as a script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

PACKAGE = "ngsildclient==0.5.2"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
HOME = CACHE / "grassroots-test-clients" / PACKAGE.replace("==", "-")


def python() -> Path:
    """The client's interpreter, installing it the first time."""
    interpreter = HOME / "bin" / "python"
    ready = HOME / ".installed"
    if not ready.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(HOME)
        subprocess.run(
            [str(interpreter), "-m", "pip", "install", "--quiet", PACKAGE],
            check=True,
            timeout=600,
        )
        ready.touch()
    return interpreter


def run(script: str, **arguments: object) -> dict[str, object]:
    """Run `script` (reading ARGS, printing one JSON object) under the client."""
    done = subprocess.run(
        [str(python()), "-c", script],
        input=json.dumps(arguments),
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith(("GRASSROOTS_", "PYTHON"))},
    )
    assert done.returncode == 0, f"ngsildclient script failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


PRELUDE = """
import json, sys
import requests
ARGS = json.loads(sys.stdin.read())

class ApiKey(requests.auth.AuthBase):
    def __call__(self, request):
        request.headers["X-API-Key"] = ARGS["key"]
        return request
"""

if __name__ == "__main__":  # pragma: no cover - a manual check of the installation
    print(python(), file=sys.stderr)
