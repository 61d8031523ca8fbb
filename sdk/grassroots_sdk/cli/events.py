"""`grassroots events tail`: follow a tenant's events as they change, resuming by itself."""

from __future__ import annotations

from typing import Annotated

import typer

from grassroots_sdk.cli._common import emit, err, handles_errors, settings
from grassroots_sdk.models import EventChange

app = typer.Typer(help="Events: reports, patrol findings and sensor alarms.", no_args_is_help=True)


def _line(change: EventChange) -> str:
    event = change.event
    return (
        f"{change.offset:>8}  {change.type:<20} {event.state:<11} {event.category:<24} "
        f"{event.grid_cell:<14} {event.id}  {event.description[:60]}"
    )


@app.command()
@handles_errors
def tail(
    ctx: typer.Context,
    tenant: Annotated[
        str | None, typer.Option(help="tenant id or path; default: your key's own")
    ] = None,
    last_event_id: Annotated[
        str | None,
        typer.Option("--last-event-id", help="resume after this offset (printed on Ctrl-C)"),
    ] = None,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="every change kept, from the first")
    ] = False,
    category: Annotated[
        str | None, typer.Option(help="only events of this category (or prefix, e.g. safety.)")
    ] = None,
    count: Annotated[int | None, typer.Option(min=1, help="stop after this many changes")] = None,
) -> None:
    """Print every change in the tenant's subtree as it happens (server-sent events).

    A broken connection is resumed after the last change seen, so nothing is missed
    or printed twice.
    """
    chosen = settings(ctx)
    resume = "0" if from_start and last_event_id is None else last_event_id
    with chosen.client() as client:
        stream = client.events.stream(tenant=tenant, last_event_id=resume)
        shown = 0
        try:
            for change in stream:
                if category and not change.event.category.startswith(category):
                    continue
                if chosen.json:
                    emit(change)
                else:
                    print(_line(change), flush=True)
                shown += 1
                if count is not None and shown >= count:
                    break
        except KeyboardInterrupt:
            pass
        finally:
            stream.close()
        if stream.last_event_id is not None and not chosen.json:
            err.print(f"resume with --last-event-id {stream.last_event_id}", markup=False)
