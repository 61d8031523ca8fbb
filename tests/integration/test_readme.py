"""Every README command that talks to a running platform works against `make run`'s demo.

The commands are read from README.md as it stands, so an example someone adds or
changes is tested too; each must exit 0 and get only 2xx answers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from readme_commands import README, Command, Reader, commands

from devstack.demo_identity import DemoCredentials
from devstack.stack import Stack


def test_readme_has_commands_for_every_part_a_newcomer_tries() -> None:
    text = "\n".join(c.text for c in commands(README.read_text()))
    for needle in (
        "/v1/me",
        "/auth/token",
        "/events",
        "/open311/v2",
        "/layers",
        "ogrinfo",
        "grpcurl",
        "events tail --from-start",
    ):
        assert needle in text, f"README.md shows no command for {needle}"


def test_command_splitting_keeps_quoted_newlines_and_continuations() -> None:
    text = "x\n```sh\nA=1   # it's a comment\ncurl -s a \\\n  -d '{\"b\":\n 1}'\necho done\n```\n"
    assert [c.text for c in commands(text)] == [
        "A=1   # it's a comment",
        "curl -s a \\\n  -d '{\"b\":\n 1}'",
        "echo done",
    ]
    assert commands(text)[1].line == 4


# Each command re-runs the README's earlier assignments, so the walk grows faster than
# the README; on the loaded CI machine it outgrew the suite's default five minutes.
@pytest.mark.timeout(900)
def test_every_readme_command_works_against_the_demo(stack: Stack, tmp_path: Path) -> None:
    stack.install_demo_events()  # make run's demo has its four weeks of history too
    stack.install_demo_command()  # and its handler profiles and routing rules
    stack.install_demo_plans()  # and its crowd-surge plan and daily visits
    stack.install_demo_forms()  # and its fire-safety inspections and their three reports
    stack.install_demo_twin()  # and its sensors
    demo = DemoCredentials.load(stack.credentials_file)
    reader = Reader(stack, demo, tmp_path)
    failures: list[str] = []
    ran: list[Command] = []
    for command in commands(README.read_text()):
        try:
            statuses, output = reader.run(command)
        except AssertionError as exc:
            failures.append(f"{command}\n    {exc}")
            continue
        ran.append(command)
        bad = [s for s in statuses if not 200 <= s < 300]
        if bad:
            failures.append(f"{command}\n    HTTP {bad}: {output[:300]}")
    assert not failures, f"{len(failures)} README commands fail:\n" + "\n".join(failures)
    assert len(ran) >= 30
