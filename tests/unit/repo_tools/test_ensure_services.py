"""What `make test`'s set-up decides to do on machines in various states."""

from __future__ import annotations

from dataclasses import replace

from tools.ensure_services import MOSQUITTO_CONFIG, Action, Found, mosquitto_command, plan

READY = Found(
    root=False,
    apt=True,
    postgres_version="15",
    postgis_installed=True,
    postgres_up=True,
    redis_installed=True,
    redis_up=True,
    mosquitto_installed=True,
    mosquitto_up=True,
)
FRESH_ROOT = Found(
    root=True,
    apt=True,
    postgres_version=None,
    postgis_installed=False,
    postgres_up=False,
    redis_installed=False,
    redis_up=False,
    mosquitto_installed=False,
    mosquitto_up=False,
    mosquitto_clients_installed=False,
)


def test_everything_running_needs_nothing() -> None:
    assert plan(READY) == []


def test_fresh_machine_as_root_installs_then_starts_everything() -> None:
    actions = plan(FRESH_ROOT)
    assert actions[0].kind == "install"
    assert actions[0].target.split() == [
        "postgresql",
        "postgresql-postgis",
        "redis-server",
        "mosquitto",
        "mosquitto-clients",
    ]
    assert [(a.kind, a.target) for a in actions[1:]] == [
        ("start", "postgresql"),
        ("start", "redis"),
        ("start", "mosquitto"),
    ]


def test_fresh_machine_without_root_fails_with_one_line_naming_the_packages() -> None:
    actions = plan(replace(FRESH_ROOT, root=False))
    assert len(actions) == 1 and actions[0].kind == "fail"
    assert "\n" not in actions[0].message
    assert "apt-get install postgresql postgresql-postgis redis-server mosquitto " in (
        actions[0].message
    )


def test_postgres_without_postgis_installs_the_versioned_package() -> None:
    found = replace(READY, root=True, postgis_installed=False)
    assert plan(found) == [Action("install", "postgresql-15-postgis-3")]


def test_installed_but_stopped_servers_are_started_without_root() -> None:
    found = replace(READY, postgres_up=False, redis_up=False, mosquitto_up=False)
    assert [(a.kind, a.target) for a in plan(found)] == [
        ("start", "postgresql"),
        ("start", "redis"),
        ("start", "mosquitto"),
    ]


def test_a_server_answering_from_elsewhere_needs_no_local_package() -> None:
    found = replace(READY, postgres_version=None, postgis_installed=False, redis_installed=False)
    assert plan(found) == []


def test_no_apt_means_no_install_even_as_root() -> None:
    found = replace(READY, root=True, apt=False, mosquitto_installed=False, mosquitto_up=False)
    (action,) = plan(found)
    assert action.kind == "fail" and "Mosquitto" in action.message


def test_a_machine_without_chromium_installs_it_as_root_or_says_so() -> None:
    assert plan(replace(READY, root=True, chromium_installed=False)) == [
        Action("install", "chromium")
    ]
    (failed,) = plan(replace(READY, chromium_installed=False))
    assert failed.kind == "fail" and "Chromium" in failed.message and "chromium" in failed.target


def test_wrk_is_installed_as_root_and_only_noted_otherwise() -> None:
    assert plan(replace(READY, root=True, wrk_installed=False)) == [Action("install", "wrk")]
    (note,) = plan(replace(READY, wrk_installed=False))
    assert note.kind == "note" and "apt-get install wrk" in note.message
    # A missing required package still fails, and the note does not hide it.
    failed = plan(replace(READY, wrk_installed=False, chromium_installed=False))
    assert [a.kind for a in failed] == ["fail"] and "wrk" not in failed[0].target


def test_a_running_broker_without_its_clients_installs_them() -> None:
    found = replace(READY, root=True, mosquitto_clients_installed=False)
    assert plan(found) == [Action("install", "mosquitto-clients")]
    refused = plan(replace(found, root=False))
    assert refused[0].kind == "fail" and "mosquitto-clients" in refused[0].message


def test_the_broker_starts_with_the_packaged_configuration_when_there_is_one() -> None:
    assert mosquitto_command("/usr/sbin/mosquitto", True) == [
        "/usr/sbin/mosquitto",
        "-d",
        "-c",
        MOSQUITTO_CONFIG,
    ]
    assert mosquitto_command("/usr/sbin/mosquitto", False)[-2:] == ["-p", "1883"]


def test_a_cjk_font_is_installed_as_root_and_only_noted_otherwise() -> None:
    missing = replace(READY, cjk_font_installed=False)
    assert plan(replace(missing, root=True)) == [Action("install", "fonts-noto-cjk")]
    (note,) = plan(missing)
    assert note.kind == "note" and "apt-get install fonts-noto-cjk" in note.message
    both = plan(replace(missing, root=True, chromium_installed=False))
    assert both == [Action("install", "chromium fonts-noto-cjk")]
