"""The Dockerfile, checked statically: no Docker engine runs where the tests run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _base_images() -> list[str]:
    args = dict(
        rest.split("=", 1) for word, rest in _instructions() if word == "ARG" and "=" in rest
    )
    images = []
    for word, rest in _instructions():
        if word == "FROM":
            image = rest.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], image))
    return images


def test_it_builds_in_one_stage_and_runs_from_another():
    assert len(_stages()) >= 2


def test_base_images_are_pinned_to_a_patch_release_never_latest():
    for image in _base_images():
        tag = image.partition(":")[2]
        assert tag and "latest" not in tag, image
        assert re.match(r"\d+\.\d+\.\d+", tag) or "@sha256:" in image, f"{image} is not pinned"
        assert "slim" in tag, f"{image}: use a slim base"


def test_the_final_stage_runs_as_a_numeric_non_root_user_without_build_tools():
    final = _stages()[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) > 0, f"USER {users[-1]} is root or not numeric"
    runs = " ".join(rest for word, rest in final if word == "RUN")
    for tool in ("apt-get install", "gcc", "build-essential", "pip install"):
        assert tool not in runs, f"the final stage installs with {tool!r}"
    copies = [rest for word, rest in final if word == "COPY"]
    assert copies and all(c.startswith("--from=") for c in copies), "sources copied into the image"


def test_the_build_stage_uninstalls_pip_from_what_it_hands_over():
    build = " ".join(rest for word, rest in _stages()[0] if word == "RUN")
    assert "pip uninstall --yes pip setuptools wheel" in build


def test_it_has_a_healthcheck_and_python_as_entrypoint():
    words = [word for word, _ in _stages()[-1]]
    assert "HEALTHCHECK" in words
    entrypoint = next(rest for word, rest in _stages()[-1] if word == "ENTRYPOINT")
    assert entrypoint == '["python"]'


def test_the_build_context_leaves_out_secrets_environments_and_history():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "var", "node_modules", "k8s", "tests"} <= ignored


def test_the_image_copies_every_package_the_project_installs():
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    copied = {rest.split()[0].strip("./") for word, rest in _stages()[0] if word == "COPY"}
    for pattern in packages:
        assert pattern.rstrip("*") in copied, f"the image lacks {pattern}"
