"""The `grassroots` command line: events, map layers and scenario templates.

Configuration comes from flags or the environment: `--url` / `GRASSROOTS_URL`,
`--api-key` / `GRASSROOTS_API_KEY`, `--tenant` / `GRASSROOTS_TENANT`. `--json` prints
machine-readable output; errors are one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

from typing import Annotated

import typer

from grassroots_sdk.cli import events, layers, scenario
from grassroots_sdk.cli._common import Settings

app = typer.Typer(
    name="grassroots",
    help="Work with a Grassroots platform from the shell.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(events.app, name="events")
app.add_typer(layers.app, name="layers")
app.add_typer(scenario.app, name="scenario")


@app.callback()
def options(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(envvar="GRASSROOTS_URL", help="the gateway, e.g. http://127.0.0.1:8080"),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="GRASSROOTS_API_KEY", help="your app's key", show_default=False),
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option(envvar="GRASSROOTS_TENANT", help="default tenant id; else your key's own"),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="machine-readable output for scripts")
    ] = False,
) -> None:
    ctx.obj = Settings(url=url, api_key=api_key, tenant=tenant, json=json_output)


def main() -> None:
    app()
