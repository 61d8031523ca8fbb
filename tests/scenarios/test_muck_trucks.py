"""Muck trucks: the village's licensed routes and sites as map layers -> a truck's GPS off
its route for five minutes is a violation where the truck is, for that cell's grid
worker, escalating to the town unanswered -> a truck standing ten minutes outside every
licensed site is one too, but not inside one -> the monthly report counts per vehicle."""

from __future__ import annotations

import json
import math
import secrets
import time

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Api, Cell, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)
LAYERS = f"/v1/tenants/{VILLAGE_ID}/layers"
MINUTE = 60_000


def metres(lon: float, lat: float, lon2: float, lat2: float) -> float:
    dx = (lon2 - lon) * 111_320 * math.cos(math.radians(lat))
    return math.hypot(dx, (lat2 - lat) * 110_540)


def away_from_segment(p: Cell, a: Cell, b: Cell) -> float:
    """Metres from p's point to the segment between a's and b's (a local flat frame)."""
    kx = 111_320 * math.cos(math.radians(a.lat))
    ax, ay, bx, by = 0.0, 0.0, (b.lon - a.lon) * kx, (b.lat - a.lat) * 110_540
    px, py = (p.lon - a.lon) * kx, (p.lat - a.lat) * 110_540
    t = max(0.0, min(1.0, ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / (bx**2 + by**2)))
    return math.hypot(px - t * bx, py - t * by)


def import_features(api: Api, layer: str, features: list[dict]) -> None:
    collection = {"type": "FeatureCollection", "features": features}
    api.ok(
        "POST",
        f"{LAYERS}/{layer}/features:import",
        files={"file": (f"{layer}.geojson", json.dumps(collection), "application/geo+json")},
        data={"format": "geojson"},
    )


def test_off_route_and_stops_outside_sites_are_dispatched_and_counted_per_truck(
    platform: Platform,
):
    platform.install("muck-trucks")
    assert platform.plan("muck-trucks").empty  # installing twice changes nothing

    route_cell, site_cell = platform.cell(XINGMING), platform.cell(XINGMING)
    assert metres(route_cell.lon, route_cell.lat, site_cell.lon, site_cell.lat) > 150
    # The route runs through the route cell and on to the site; the wanderer leaves it
    # for a cell well away from both (the first of the next few).
    off_cell = next(
        c
        for c in (platform.cell(XINGMING) for _ in range(4))
        if away_from_segment(c, route_cell, site_cell) > 150
        and metres(route_cell.lon, route_cell.lat, c.lon, c.lat) > 150
    )
    secretary = platform.user("xingming.secretary")
    licence = f"ZT-{secrets.token_hex(3)}"
    d = 0.0009  # about 90 m east and west of the route cell's point
    import_features(
        secretary,
        "muck-licensed-routes",
        [
            {
                "type": "Feature",
                "id": f"route-{licence}",
                "properties": {"licence_no": licence},
                "geometry": {
                    "type": "LineString",
                    "coordinates": [
                        [route_cell.lon - d, route_cell.lat],
                        [route_cell.lon + d, route_cell.lat],
                    ],
                },
            },
            {
                "type": "Feature",
                "id": f"route-{licence}-to-site",
                "properties": {"licence_no": licence},
                "geometry": {
                    "type": "LineString",
                    "coordinates": [
                        [route_cell.lon, route_cell.lat],
                        [site_cell.lon, site_cell.lat],
                    ],
                },
            },
        ],
    )
    s = 0.0004  # a site of about 80 m by 90 m around the site cell's point
    x, y = site_cell.lon, site_cell.lat
    import_features(
        secretary,
        "muck-licensed-sites",
        [
            {
                "type": "Feature",
                "id": f"site-{licence}",
                "properties": {"licence_no": licence},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            [x - s, y - s],
                            [x + s, y - s],
                            [x + s, y + s],
                            [x - s, y + s],
                            [x - s, y - s],
                        ]
                    ],
                },
            }
        ],
    )

    def truck(name: str) -> str:
        made = secretary.ok(
            "POST",
            f"/v1/tenants/{VILLAGE_ID}/entities",
            json={
                "entity_id": f"{name}-{secrets.token_hex(2)}",
                "entity_type": "MuckTruck",
                "display_name": f"Muck truck {name}",
                "location": {"longitude": route_cell.lon, "latitude": route_cell.lat},
            },
        )
        return str(made["name"])

    def drive(entity: str, trip: list[tuple[int, Cell, float]]) -> None:
        """Readings (minutes after t0, where, km/h): position and speed together."""
        t0 = platform.now_ms() - 30 * MINUTE
        short = entity.rsplit("/", 1)[-1]
        columns: dict[str, list] = {k: [] for k in ("entities", "properties", "values")}
        columns |= {"observe_times_ms": [], "longitudes": [], "latitudes": []}
        for minute, where, kmh in trip:
            for prop, value in (("speed_kmh", kmh), ("position", 0.0)):
                columns["entities"].append(short)
                columns["properties"].append(prop)
                columns["values"].append(value)
                columns["observe_times_ms"].append(t0 + minute * MINUTE)
                columns["longitudes"].append(where.lon if prop == "position" else 0.0)
                columns["latitudes"].append(where.lat if prop == "position" else 0.0)
        secretary.ok("POST", f"/v1/tenants/{VILLAGE_ID}:ingestTelemetry", json=columns)

    # The twin keeps a layer's copy and checks it again (here after a second) when a
    # batch asks for it, answering from the kept copy meanwhile (ADR 29): a parked
    # truck's few readings ask, until the copy with the features imported is in.
    probe = truck("probe")
    for _ in range(4):
        time.sleep(1.0)
        drive(probe, [(0, site_cell, 0)])
    time.sleep(1.0)

    wanderer, parker = truck("wanderer"), truck("parker")
    # On the route, then six minutes (still moving) in another cell: off its route.
    drive(wanderer, [(0, route_cell, 30), (1, off_cell, 25), (3, off_cell, 25), (7, off_cell, 20)])
    # Eleven minutes standing inside its licensed site: allowed. Then twelve minutes
    # standing on the road by the route cell, outside every site: an illegal stop.
    drive(
        parker,
        [
            (0, site_cell, 0),
            (11, site_cell, 0),
            (13, route_cell, 12),
            (14, route_cell, 0),
            (26, route_cell, 0),
        ],
    )

    def violations(category: str, truck_name: str) -> list[dict]:
        return [e for e in platform.events(category=category) if e["entity"] == truck_name]

    off = eventually(lambda: violations("muck.off_route", wanderer))
    assert len(off) == 1
    assert off[0]["source"] == "twin_rule" and off[0]["severity"] == 3
    # The event is where the truck is, not where it was registered.
    assert (off[0]["village"], off[0]["grid_cell"]) == (XINGMING, off_cell.cell_id)
    stop = eventually(lambda: violations("muck.illegal_stop", parker))
    assert len(stop) == 1 and stop[0]["grid_cell"] == route_cell.cell_id
    # Standing inside the site raised nothing; the parker never left its route.
    assert violations("muck.off_route", parker) == []
    assert violations("muck.illegal_stop", wanderer) == []

    task = platform.task_of(off[0]["name"])
    assert task["handler"] == platform.handler_user(XINGMING, off_cell.grid_worker)
    assert task["routing"]["routing_rule"].endswith("/routingRules/muck-trucks-enforcement")
    town = platform.town_app()

    def current() -> dict:
        return town.ok("GET", f"/v1/{task['name']}")

    platform.advance(minutes=25)
    assert current()["escalation_level"] == 0
    platform.advance(minutes=6)
    escalated = eventually(lambda: (t := current())["escalation_level"] == 1 and t)
    assert escalated["escalated_to"] == "sh/jiading/anting"

    # The monthly statistics: violations per vehicle.
    report = secretary.ok(
        "POST", f"/v1/tenants/{VILLAGE_ID}/reportTemplates/muck-trucks-monthly:run", json={}
    )
    assert report["headings"] == ["Vehicle", "Month", "Off route", "Illegal stops"]
    per_truck = {r[0]: r[2:] for r in report["rows"] if r[0]}
    assert per_truck[wanderer.rsplit("/", 1)[-1]] == ["1", "0"]
    assert per_truck[parker.rsplit("/", 1)[-1]] == ["0", "1"]
