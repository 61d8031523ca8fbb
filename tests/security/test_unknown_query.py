"""A query parameter a /v1 route does not declare is 400 naming it, never ignored:
`?bbox=` on a list without a bounding box used to answer every row."""

from __future__ import annotations

from security_world import A, World


def test_unknown_query_parameters_are_refused_naming_them(world: World) -> None:
    who = world.a_super.headers
    for path, params in (
        (f"/v1/tenants/{A}/entities", {"bbox": "0,0,1,1"}),
        (f"/v1/tenants/{A}/tasks", {"filter": 'state = "open"'}),
        (f"/v1/tenants/{A}/events", {"page_size": "5", "stat": "reported"}),
    ):
        response = world.client.get(path, params=params, headers=who)
        assert response.status_code == 400, f"{path}: {response.status_code} {response.text}"
        unknown = next(k for k in params if k != "page_size")
        assert repr(unknown) in response.text, response.text
    ok = world.client.get(f"/v1/tenants/{A}/events", params={"page_size": "5"}, headers=who)
    assert ok.status_code == 200, ok.text
