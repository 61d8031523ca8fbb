"""`grassroots scenario list | show | plan | install | uninstall | upgrade --village ...`.

Thin: each command calls the composer (`scenarios.composer`, the platform's own package),
which talks to the components' gRPC APIs as a platform service. So these commands run
where district IT runs the platform: beside its code, with its key ring
(`GRASSROOTS_PRINCIPAL_KEYS`, or `--secrets`, by default `make run`'s
`var/dev-secrets.json` here or in the platform's checkout) and the components' addresses
(`GRASSROOTS_<COMPONENT>_ADDRESS`, by default the ports `make run` uses on 127.0.0.1; its
ready message prints the export line for other ports).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from grassroots_sdk.cli._common import emit, err, fail, handles_errors, out, settings

app = typer.Typer(
    help="Scenario templates: plan, install, upgrade and uninstall them per village.",
    no_args_is_help=True,
)
T = TypeVar("T")
DEFAULT_SECRETS = Path("var/dev-secrets.json")
KEYS_VARIABLE = "GRASSROOTS_PRINCIPAL_KEYS"

Village = Annotated[
    str, typer.Option(help="the village, by path or id: sh/jiading/anting/xingming")
]
OptionalVillage = Annotated[
    str | None, typer.Option(help="also show what this village has installed")
]
Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="override a setting: name=value (JSON values: 30, true); merged with the "
        "overrides the village chose before (see --reset)",
    ),
]
Reset = Annotated[
    bool,
    typer.Option(
        "--reset",
        help="forget the village's earlier overrides: start from the template's defaults, "
        "then apply any --set",
    ),
]
AllowDowngrade = Annotated[
    bool,
    typer.Option("--allow-downgrade", help="allow a template older than the installed version"),
]
ExpectPlan = Annotated[
    str | None,
    typer.Option(
        "--expect-plan",
        help="the digest `scenario plan` printed: apply exactly that plan, or nothing if "
        "the village or the template moved since",
    ),
]
ManifestFile = Annotated[
    Path | None, typer.Option(help="a manifest.yaml to use instead of the shipped one")
]
Secrets = Annotated[
    Path | None,
    typer.Option(help=f"the platform's secrets file, when {KEYS_VARIABLE} is not set"),
]


_SEGMENT = re.compile(r"[a-z0-9]{1,40}")
_DIGEST = re.compile(r"[0-9a-f]{16}")


def _village(text: str) -> str:
    """A village's path from its id (`sh-jiading-anting-xingming`) or path; else one line."""
    given = text
    text = text.removeprefix("tenants/").strip("/")
    path = text if "/" in text else text.replace("-", "/")
    if not all(_SEGMENT.fullmatch(part) for part in path.split("/")):
        raise fail(
            f"--village {given[:80]!r}: a village id such as sh-jiading-anting-xingming "
            "(lower-case letters and digits between the dashes) or its path"
        )
    return path


def _expected(digest: str | None) -> str:
    """The digest `scenario plan` printed, checked before anything is asked."""
    if digest is None:
        return ""
    if not _DIGEST.fullmatch(digest):
        raise fail(
            f"--expect-plan {digest[:40]!r}: the 16 lower-case hex digits `scenario plan` printed"
        )
    return digest


def _overrides(pairs: list[str] | None) -> dict[str, Any] | None:
    if not pairs:
        return None
    found: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise fail(f"--set {pair!r}: expected name=value")
        try:
            found[name] = json.loads(raw)
        except ValueError:
            found[name] = raw
    return found


def _platform() -> Any:
    """The composer package, or one line saying where these commands run."""
    try:
        import scenarios.composer as composer
    except ImportError:
        raise fail(
            "scenario commands run beside the platform: they need its `scenarios` package "
            "(run `make install` in the Grassroots repository)"
        ) from None
    return composer


def _default_secrets(composer: Any) -> list[Path]:
    """Where `make run` keeps its secrets: var/ of this folder, else of the platform's
    own checkout (the one the composer is imported from)."""
    here = (Path.cwd() / DEFAULT_SECRETS).resolve()
    checkout = (Path(composer.__file__).resolve().parents[2] / DEFAULT_SECRETS).resolve()
    return [here] if here == checkout else [here, checkout]


def _use_key_ring(secrets: Path | None, composer: Any) -> None:
    if os.environ.get(KEYS_VARIABLE) and secrets is None:
        return
    tried = [secrets.resolve()] if secrets is not None else _default_secrets(composer)
    path = next((p for p in tried if p.is_file()), None)
    if path is None:
        raise fail(
            f"no key ring: set {KEYS_VARIABLE} or pass --secrets FILE "
            f"(tried {', '.join(str(p) for p in tried)}; "
            "`make run` writes dev-secrets.json in its --data-dir)"
        )
    value = json.loads(path.read_text()).get(KEYS_VARIABLE)
    if not value:
        raise fail(f"{path} holds no {KEYS_VARIABLE}")
    from services.kit import signing

    signing.configure(signing.KeyRing.parse(value))


def _addresses() -> dict[str, str]:
    from services.kit.components import COMPONENTS

    return {
        name: os.environ.get(f"GRASSROOTS_{name.upper()}_ADDRESS", f"127.0.0.1:{row.grpc_port}")
        for name, row in COMPONENTS.items()
    }


def _manifest(composer: Any, scenario: str, path: Path | None) -> Any:
    if path is not None:
        manifest = composer.load(path)
        if manifest.id != scenario:
            raise fail(f"{path} is scenario {manifest.id!r}, not {scenario!r}")
        return manifest
    return composer.catalog.get(scenario)


def _with_composer(secrets: Path | None, work: Callable[[Any, Any], Awaitable[T]]) -> T:
    composer = _platform()
    _use_key_ring(secrets, composer)
    addresses = _addresses()

    async def run() -> T:
        async with composer.Composer.connect(addresses) as connected:
            return await work(composer, connected)

    import grpc

    try:
        return asyncio.run(run())
    except (composer.ManifestError, composer.ApplyError) as exc:
        raise fail(str(exc)) from None
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.UNAVAILABLE:
            raise fail(_refused(exc)) from None
        raise fail(_unreachable(exc, addresses)) from None


def _refused(exc: Any) -> str:
    """A component's refusal as one line: its status, and the field it named."""
    from services.kit.status import failure_of

    failure = failure_of(exc)
    said = " ".join(failure.message.split())
    if failure.violations:
        first = failure.violations[0]
        said = f"{first.field}: {' '.join(first.description.split())}"
    return f"{failure.code.name}: {said}"


def _unreachable(exc: Any, addresses: dict[str, str]) -> str:
    """One line for a component that does not answer: which, where, and what to check."""
    said = f"{exc.details()} {exc.debug_error_string()}"
    name, address = next(
        ((n, a) for n, a in addresses.items() if a in said),
        ("a platform component", ", ".join(addresses.values())),
    )
    variable = (
        f"GRASSROOTS_{name.upper()}_ADDRESS"
        if name in addresses
        else ("GRASSROOTS_<COMPONENT>_ADDRESS")
    )
    return (
        f"cannot reach {name} at {address}: is the platform running? "
        f"Set {variable} where it listens elsewhere (`make run` prints the export line)"
    )


def _plan_json(plan: Any) -> dict[str, Any]:
    return {
        "village": plan.village,
        "scenario": plan.scenario,
        "from_version": plan.from_version,
        "to_version": plan.to_version,
        "settings": dict(plan.settings),
        "actions": [
            {
                "op": str(a.op.value),
                "kind": a.kind,
                "key": a.key,
                "name": a.name,
                "fields": list(a.fields),
                "note": a.note,
            }
            for a in plan.actions
        ],
        "warnings": list(plan.warnings),
        "blockers": list(plan.blockers),
        "empty": plan.empty,
        "digest": plan.digest,
    }


def _installed_json(found: Any) -> dict[str, Any]:
    return {
        "name": found.name,
        "village": found.village,
        "scenario": found.scenario,
        "version": found.version,
        "state": found.state,
        "overrides": dict(found.overrides),
        "resources": [
            {"kind": r.kind, "key": r.key, "name": r.name, "owned": r.owned}
            for r in found.resources
        ],
    }


@app.command("list")
@handles_errors
def list_scenarios(ctx: typer.Context, village: OptionalVillage = None) -> None:
    """The scenario templates on the shelf (and, with --village, what it has installed)."""
    composer = _platform()
    shelf = composer.catalog.available()
    installed: dict[str, Any] = {}
    if village is not None:
        path = _village(village)
        found = _with_composer(None, lambda _, c: c.installed(path))
        installed = {i.scenario: i for i in found}
    if settings(ctx).json:
        emit(
            [
                {
                    "id": m.id,
                    "version": m.version,
                    "title": m.title,
                    "area": m.area,
                    "class": m.scenario_class,
                    "installed": _installed_json(installed[m.id]) if m.id in installed else None,
                }
                for m in shelf.values()
            ]
        )
        return
    table = Table()
    table.add_column("scenario", no_wrap=True)  # ids are typed again: never cut them short
    for heading in ("version", "area", "class", "title"):
        table.add_column(heading)
    if village is not None:
        table.add_column("installed")
    for m in shelf.values():
        row = [m.id, m.version, m.area, m.scenario_class, m.title]
        if village is not None:
            mine = installed.get(m.id)
            row.append(f"{mine.version} ({mine.state})" if mine else "")
        table.add_row(*row)
    out.print(table)


@app.command()
@handles_errors
def show(
    ctx: typer.Context,
    scenario: str,
    village: OptionalVillage = None,
    manifest: ManifestFile = None,
    secrets: Secrets = None,
) -> None:
    """A template's settings (defaults and bounds) and resources; with --village, its
    install record there."""
    composer = _platform()
    found = _manifest(composer, scenario, manifest)
    record = None
    if village is not None:
        path = _village(village)
        record = _with_composer(secrets, lambda _, c: c.show(path, scenario))
    if settings(ctx).json:
        emit(
            {
                "id": found.id,
                "version": found.version,
                "title": found.title,
                "area": found.area,
                "class": found.scenario_class,
                "components": list(found.components),
                "description": found.description,
                "settings": {
                    n: {
                        "type": s.type,
                        "default": s.default,
                        "minimum": s.minimum,
                        "maximum": s.maximum,
                        "description": s.description,
                    }
                    for n, s in found.settings.items()
                },
                "resources": [{"kind": r.kind, "key": r.key} for r in found.resources],
                "installed": _installed_json(record) if record is not None else None,
            }
        )
        return
    out.print(f"{found.id} {found.version}: {found.title}", markup=False)
    if found.description:
        out.print(found.description.strip(), markup=False)
    table = Table("setting", "type", "default", "bounds", "what")
    for name, s in found.settings.items():
        bounds = " .. ".join("" if b is None else f"{b:g}" for b in (s.minimum, s.maximum)).strip(
            " ."
        )
        table.add_row(name, s.type, json.dumps(s.default), bounds, s.description)
    out.print(table)
    resources = Table("kind", "key")
    for r in found.resources:
        resources.add_row(r.kind, r.key)
    out.print(resources)
    if village is not None:
        if record is None:
            out.print(f"not installed in {_village(village)}", markup=False)
        else:
            out.print(
                f"installed in {record.village}: {record.version} ({record.state}), "
                f"{len(record.resources)} resources",
                markup=False,
            )


@app.command()
@handles_errors
def plan(
    ctx: typer.Context,
    scenario: str,
    village: Village,
    set_: Sets = None,
    reset: Reset = False,
    allow_downgrade: AllowDowngrade = False,
    manifest: ManifestFile = None,
    secrets: Secrets = None,
) -> None:
    """What installing (or changing) the scenario would do in the village; changes nothing."""
    composer = _platform()
    found = _manifest(composer, scenario, manifest)
    path, overrides = _village(village), _overrides(set_)
    flags = {"reset": reset, "allow_downgrade": allow_downgrade}
    made = _with_composer(secrets, lambda _, c: c.plan(path, found, overrides, **flags))
    if settings(ctx).json:
        emit(_plan_json(made))
    else:
        out.print(made.render(), markup=False)
        out.print(
            f"Plan digest {made.digest}: install with --expect-plan {made.digest} to apply "
            "exactly this plan.",
            markup=False,
        )


def _change(
    ctx: typer.Context,
    secrets: Path | None,
    verb: str,
    work: Callable[[Any, Any], Awaitable[Any]],
) -> None:
    chosen = settings(ctx)
    waiting = err.status(f"{verb}...", spinner="dots") if not chosen.json else nullcontext()
    with waiting:
        applied = _with_composer(secrets, work)
    if chosen.json:
        emit(
            {
                "state": applied.state,
                "installation": applied.installation,
                "done": len(applied.done),
                "plan": _plan_json(applied.plan),
            }
        )
        return
    out.print(applied.plan.render(), markup=False)
    out.print(
        f"{applied.plan.scenario}: {applied.state} in {applied.plan.village} "
        f"({len(applied.done)} steps done)",
        markup=False,
    )


@app.command()
@handles_errors
def install(
    ctx: typer.Context,
    scenario: str,
    village: Village,
    set_: Sets = None,
    reset: Reset = False,
    allow_downgrade: AllowDowngrade = False,
    manifest: ManifestFile = None,
    secrets: Secrets = None,
    expect_plan: ExpectPlan = None,
) -> None:
    """Install the scenario in the village (again: finish a half-done install, or apply
    changed settings); installing twice changes nothing."""
    composer = _platform()
    found = _manifest(composer, scenario, manifest)
    path, overrides = _village(village), _overrides(set_)
    flags = {
        "reset": reset,
        "allow_downgrade": allow_downgrade,
        "expected_plan": _expected(expect_plan),
    }
    _change(
        ctx,
        secrets,
        f"installing {scenario}",
        lambda _, c: c.apply(path, found, overrides, **flags),
    )


@app.command()
@handles_errors
def upgrade(
    ctx: typer.Context,
    scenario: str,
    village: Village,
    set_: Sets = None,
    reset: Reset = False,
    allow_downgrade: AllowDowngrade = False,
    manifest: ManifestFile = None,
    secrets: Secrets = None,
    expect_plan: ExpectPlan = None,
) -> None:
    """Move an installed scenario to the template's version, keeping the village's settings."""
    composer = _platform()
    found = _manifest(composer, scenario, manifest)
    path, overrides = _village(village), _overrides(set_)
    flags = {
        "reset": reset,
        "allow_downgrade": allow_downgrade,
        "expected_plan": _expected(expect_plan),
    }
    _change(
        ctx,
        secrets,
        f"upgrading {scenario}",
        lambda _, c: c.upgrade(path, found, overrides, **flags),
    )


@app.command()
@handles_errors
def uninstall(
    ctx: typer.Context,
    scenario: str,
    village: Village,
    secrets: Secrets = None,
) -> None:
    """Remove what the scenario made in the village; what other scenarios use stays."""
    path = _village(village)
    _change(ctx, secrets, f"uninstalling {scenario}", lambda _, c: c.uninstall(path, scenario))
