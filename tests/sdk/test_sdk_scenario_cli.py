"""`grassroots scenario ...` against a running platform: list, show, plan, install (twice
changes nothing), a setting out of bounds, upgrade to a new manifest version, uninstall."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import XINGMING, XINGMING_ID, Platform
from grassroots_sdk.cli import app
from typer.testing import CliRunner

from services.kit.components import NAMES

runner = CliRunner()
SCENARIO = "fire-smoke"
SHIPPED = Path(__file__).resolve().parents[2] / "scenarios" / SCENARIO / "manifest.yaml"


def scenario(platform: Platform, *args: str):
    env = {
        f"GRASSROOTS_{name.upper()}_ADDRESS": platform.stack.config.address(name) for name in NAMES
    }
    return runner.invoke(app, ["--json", "scenario", *args], env=env)


def answer(result) -> object:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_list_and_show_read_the_shelf(platform: Platform) -> None:
    shelf = answer(scenario(platform, "list"))
    assert SCENARIO in {s["id"] for s in shelf}
    shown = answer(scenario(platform, "show", SCENARIO))
    assert shown["id"] == SCENARIO
    assert shown["settings"]["response_minutes"]["default"] == 5


def test_plan_install_again_upgrade_uninstall(platform: Platform, tmp_path: Path) -> None:
    planned = answer(scenario(platform, "plan", SCENARIO, "--village", XINGMING_ID))
    assert planned["village"] in (XINGMING, f"tenants/{XINGMING_ID}") and not planned["empty"]
    assert {a["op"] for a in planned["actions"]} == {"create"}

    installed = answer(
        scenario(platform, "install", SCENARIO, "--village", XINGMING, "--set", "severity=4")
    )
    assert installed["state"] == "complete" and installed["done"] >= len(planned["actions"])

    again = answer(scenario(platform, "plan", SCENARIO, "--village", XINGMING))
    assert again["empty"], again  # the village keeps severity=4: nothing to do
    listed = answer(scenario(platform, "list", "--village", XINGMING))
    mine = next(s for s in listed if s["id"] == SCENARIO)["installed"]
    assert mine["state"] == "complete" and mine["overrides"] == {"severity": 4}
    # A later --set merges with the village's overrides; --reset starts from the defaults.
    merged = answer(
        scenario(platform, "plan", SCENARIO, "--village", XINGMING, "--set", "response_minutes=9")
    )
    assert merged["settings"] == {"severity": 4, "response_minutes": 9}
    reset = answer(scenario(platform, "plan", SCENARIO, "--village", XINGMING, "--reset"))
    assert reset["settings"] == {}

    newer = tmp_path / "manifest.yaml"
    newer.write_text(
        SHIPPED.read_text()
        .replace("version: 1.0.0", "version: 1.1.0")
        .replace("duplicateRadiusMeters: 20", "duplicateRadiusMeters: 30")
    )
    plan_up = answer(
        scenario(platform, "plan", SCENARIO, "--village", XINGMING, "--manifest", str(newer))
    )
    assert (plan_up["from_version"], plan_up["to_version"]) == ("1.0.0", "1.1.0")
    # --expect-plan applies the plan that was read or nothing: a digest of another plan
    # (the one before the upgrade) is one line naming it, and nothing is upgraded.
    moved = scenario(
        platform,
        "upgrade",
        SCENARIO,
        "--village",
        XINGMING,
        "--manifest",
        str(newer),
        "--expect-plan",
        again["digest"],
    )
    assert moved.exit_code == 1
    [line] = moved.stderr.strip().splitlines()
    assert "plan_digest" in line and "changed since it was shown" in line
    upgraded = answer(
        scenario(
            platform,
            "upgrade",
            SCENARIO,
            "--village",
            XINGMING,
            "--manifest",
            str(newer),
            "--expect-plan",
            plan_up["digest"],
        )
    )
    assert upgraded["state"] == "complete"
    assert upgraded["plan"]["settings"]["severity"] == 4  # the village's override kept

    removed = answer(scenario(platform, "uninstall", SCENARIO, "--village", XINGMING))
    assert removed["state"] == "removed"
    listed = answer(scenario(platform, "list", "--village", XINGMING))
    assert next(s for s in listed if s["id"] == SCENARIO)["installed"] is None


def test_a_setting_out_of_bounds_is_one_line_naming_it(platform: Platform) -> None:
    result = scenario(
        platform, "plan", SCENARIO, "--village", XINGMING, "--set", "response_minutes=500"
    )
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "response_minutes" in line and "60" in line


def test_an_unknown_scenario_is_one_line(platform: Platform) -> None:
    result = scenario(platform, "show", "no-such-scenario")
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert "no-such-scenario" in line and line.startswith("error: ")


def test_a_town_or_a_node_nobody_made_is_refused_and_nothing_is_recorded(
    platform: Platform,
) -> None:
    for target, said in (
        ("sh/jiading/anting", "is not a village"),
        ("sh/jiading/anting/nowhere", "no village sh/jiading/anting/nowhere"),
    ):
        for verb in ("plan", "install"):
            result = scenario(platform, verb, SCENARIO, "--village", target)
            assert result.exit_code == 1, (verb, target, result.stdout)
            [line] = result.stderr.strip().splitlines()
            assert line.startswith("error: ") and said in line, line
        result = scenario(platform, "uninstall", SCENARIO, "--village", target)
        assert result.exit_code == 1 and said in result.stderr
    listed = answer(scenario(platform, "list", "--village", "sh/jiading/anting/nowhere"))
    assert all(s["installed"] is None for s in listed)


def test_a_bad_village_or_digest_is_one_line_naming_the_option(platform: Platform) -> None:
    for args, option in (
        (["--village", "Sh-Jiading-Anting"], "--village"),
        (["--village", "../etc"], "--village"),
        (["--village", XINGMING_ID, "--expect-plan", ""], "--expect-plan"),
        (["--village", XINGMING_ID, "--expect-plan", "ABCDEF0123456789"], "--expect-plan"),
    ):
        result = scenario(platform, "install", SCENARIO, *args)
        assert result.exit_code == 1, args
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and option in line, line
