"""Village notices and open affairs: installing tells the village once where its affairs
are published -> the secretary sends a notice to the village -> a resident finds it in
their notices and reads it: a read receipt on their delivery, counted on the notice, none
on the others -> a notice to one grid cell reaches the people registered there only."""

from __future__ import annotations

import secrets

from services.kit import gb11643, tenancy
from tests.scenarios.harness import XINGMING, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)
V = f"/v1/tenants/{VILLAGE_ID}"


def an_id_number() -> str:
    body = f"310114197{secrets.randbelow(10)}0612{secrets.randbelow(900) + 100}"
    return body + gb11643.check_character(body)


def test_notices_reach_their_audience_and_read_receipts_are_kept(platform: Platform):
    platform.install("village-notices")
    assert platform.plan("village-notices").empty  # sent once, not again

    secretary = platform.user("xingming.secretary")
    notices = secretary.ok("GET", f"{V}/notices", params={"page_size": 1000})["notices"]
    welcome = [n for n in notices if n["title"] == "Village affairs are published here"]
    assert len(welcome) == 1
    assert welcome[0]["audience"]["tenant"] == f"tenants/{VILLAGE_ID}"
    counted = secretary.ok("GET", f"/v1/{welcome[0]['name']}")["delivery_counts"]
    assert sum(counted.values()) > 0  # everyone of the village registered then

    resident = platform.resident(XINGMING)
    me = resident.ok("GET", "/v1/me")["subject"]
    sent = secretary.ok(
        "POST",
        f"{V}/notices",
        json={
            "title": "Village accounts for November",
            "body": "Income 182,400 yuan, spending 97,350 yuan; the ledger is at the office.",
            "audience": {"tenant": f"tenants/{VILLAGE_ID}"},
            "request_id": secrets.token_hex(8),
        },
    )

    def mine() -> dict | None:
        listed = resident.ok("GET", "/v1/me/notices")["notices"]
        return next((d for d in listed if d["notice"] == sent["name"]), None)

    delivery = eventually(lambda: (d := mine()) and d["state"] != "pending" and d)
    assert delivery["title"] == "Village accounts for November"
    assert delivery["read_time"] is None
    read = resident.ok("POST", f"/v1/{delivery['name']}:markRead", json={})
    assert read["read_time"] is not None
    again = resident.ok("POST", f"/v1/{delivery['name']}:markRead", json={})
    assert again["read_time"] == read["read_time"]  # reading twice changes nothing
    # Nobody else may give this receipt.
    other = platform.user(platform.new_user(XINGMING, ["resident"]))
    assert other.post(f"/v1/{delivery['name']}:markRead", json={}).status_code == 404
    # Residents read notices; they do not send them.
    refused = resident.post(
        f"{V}/notices",
        json={
            "title": "x",
            "body": "x",
            "audience": {"tenant": f"tenants/{VILLAGE_ID}"},
            "request_id": secrets.token_hex(8),
        },
    )
    assert refused.status_code == 403

    # The secretary sees who has read it: the resident's receipt, no one else's.
    deliveries = secretary.ok("GET", f"/v1/{sent['name']}/deliveries", params={"page_size": 1000})[
        "deliveries"
    ]
    receipts = {d["recipient"]: d["read_time"] for d in deliveries}
    assert receipts[me] is not None
    assert [r for r, t in receipts.items() if t is not None] == [me]
    counts = secretary.ok("GET", f"/v1/{sent['name']}")["delivery_counts"]
    # "read" counts receipts among the delivered; the states add up to the deliveries.
    assert counts["read"] == 1 and counts["delivered"] >= 1
    assert sum(n for state, n in counts.items() if state != "read") == len(deliveries)

    # A notice to one grid cell reaches the people registered there, in their own
    # account when they have one: the resident lives here, their neighbour next door.
    here, next_door = platform.cell(XINGMING), platform.cell(XINGMING)
    neighbour = platform.resident(XINGMING, 1)
    for cell, account in ((here, me), (next_door, neighbour.ok("GET", "/v1/me")["subject"])):
        secretary.ok(
            "POST",
            f"{V}/people",
            json={
                "display_name": f"Resident of {cell.cell_id}",
                "id_number": an_id_number(),
                "phone": f"139{secrets.randbelow(10**8):08d}",
                "kind": "resident",
                "grid_cell": cell.cell_id,
                "user": account,
            },
        )
    water = secretary.ok(
        "POST",
        f"{V}/notices",
        json={
            "title": f"Water off in {here.cell_id} tomorrow",
            "body": "Mains work from 9:00 to 12:00.",
            "audience": {"grid_cell": here.cell_id},
            "request_id": secrets.token_hex(8),
        },
    )
    reached = secretary.ok("GET", f"/v1/{water['name']}/deliveries")["deliveries"]
    assert [d["recipient"] for d in reached] == [me]

    def water_notice(api) -> dict | None:
        listed = api.ok("GET", "/v1/me/notices")["notices"]
        return next((d for d in listed if d["notice"] == water["name"]), None)

    assert water_notice(neighbour) is None
    got = eventually(lambda: (d := water_notice(resident)) and d["state"] != "pending" and d)
    assert resident.ok("POST", f"/v1/{got['name']}:markRead", json={})["read_time"]
