"""The platform's components, one row each: the only list of them.

The gateway opens a channel per row, devstack starts a process per row and hands it
its peers' addresses, the services take their default ports from it, and the tests
check the contracts it names. Adding a component is adding a row here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Component:
    """One deployable service: where it listens by default and what it serves."""

    name: str
    grpc_port: int
    metrics_port: int
    # Full names of the gRPC services its port serves (the first is its own).
    service_names: tuple[str, ...]
    # Components it calls; each is configured as GRASSROOTS_<NAME>_<PEER>_ADDRESS.
    peers: tuple[str, ...] = ()
    # Components it calls only while answering requests, never at start, which may start
    # after it (both call each other); configured like `peers`.
    request_peers: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """What it does, as the catalog shows it to villages."""
        return SUMMARIES.get(self.name, "")

    @property
    def module(self) -> str:
        """The module `python -m` starts."""
        return f"services.{self.name}"


SUMMARIES: dict[str, str] = {
    "map": "Boundaries, grid cells, buildings and points of interest: locate points, search "
    "features, serve layers to GIS tools (OGC API - Features).",
    "events": "Reports from residents, grid workers and sensors: recorded once, located, merged "
    "when repeated, followed to closure (also as Open311).",
    "command": "Dispatch: routes events to handlers, SLA clocks, escalation, plans.",
    "twin": "Digital twin: sensor readings, latest state and rules that raise events.",
    "empower": "Tenants, identity, people, the audit chain, the catalog of components and "
    "scenarios, and datasets returned to villages.",
}

COMPONENTS: dict[str, Component] = {
    row.name: row
    for row in (
        Component("map", 50051, 9101, ("grassroots.map.v1.MapService",)),
        Component("events", 50052, 9102, ("grassroots.events.v1.EventsService",), ("map",)),
        Component(
            "command",
            50053,
            9103,
            ("grassroots.command.v1.CommandService", "grassroots.command.v1.PlansService"),
            ("events", "map"),
            # Identity: the users handler profiles name.
            ("empower",),
        ),
        Component("twin", 50054, 9104, ("grassroots.twin.v1.TwinService",), ("events", "map")),
        Component(
            "empower",
            50055,
            9105,
            (
                "grassroots.empower.v1.EmpowerService",
                "grassroots.empower.v1.IdentityService",
                "grassroots.empower.v1.PeopleService",
                "grassroots.empower.v1.FormsService",
                "grassroots.empower.v1.PointsService",
                "grassroots.empower.v1.NoticesService",
                "grassroots.empower.v1.DatasetsService",
                "grassroots.empower.v1.CatalogService",
                "grassroots.empower.v1.CreditService",
            ),
            # The catalog reads the others' services by reflection; datasets read the map.
            ("map", "events", "command", "twin"),
        ),
    )
}
# Start order: every component after the peers it calls.
NAMES: tuple[str, ...] = tuple(COMPONENTS)


def component(name: str) -> Component:
    """The row of one component; an unknown name is a programming error."""
    return COMPONENTS[name]
