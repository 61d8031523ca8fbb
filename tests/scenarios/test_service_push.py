"""Public services, pushed: people registered as qualifying (an elderly person living
alone, a person in care) -> installing the round of pushes tells each of them, in their
own account, of the services they qualify for and nobody else -> a read receipt the
village sees -> installing the same round again tells nobody twice."""

from __future__ import annotations

import secrets

from services.kit import gb11643, tenancy
from tests.scenarios.harness import XINGMING, Api, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)
V = f"/v1/tenants/{VILLAGE_ID}"


def an_id_number(born: str) -> str:
    body = f"310114{born}{secrets.randbelow(900) + 100}"
    return body + gb11643.check_character(body)


def test_people_are_told_of_the_services_they_qualify_for_once(platform: Platform):
    secretary = platform.user("xingming.secretary")
    elder, in_care, neighbour = (platform.resident(XINGMING, n) for n in (2, 3, 4))

    def subject(api: Api) -> str:
        return str(api.ok("GET", "/v1/me")["subject"])

    for api, kind, born in (
        (elder, "elderly_alone", "19380205"),
        (in_care, "care_recipient", "19500817"),
    ):
        secretary.ok(
            "POST",
            f"{V}/people",
            json={
                "display_name": f"Pushed {kind}",
                "id_number": an_id_number(born),
                "phone": f"139{secrets.randbelow(10**8):08d}",
                "kind": kind,
                "user": subject(api),
            },
        )
    round_ = f"round {secrets.token_hex(3)}"  # a new round of pushes for this run
    platform.install("service-push", overrides={"push_round": round_})
    assert platform.plan("service-push", overrides={"push_round": round_}).empty

    def pushed(api: Api) -> dict[str, dict]:
        listed = api.ok("GET", "/v1/me/notices")["notices"]
        return {d["title"]: d for d in listed if d["title"].endswith(f"({round_})")}

    safety = f"Free home safety check and call button ({round_})"
    care = f"Home care hours under long-term care insurance ({round_})"
    mine = eventually(lambda: (p := pushed(elder)) and p[safety]["state"] != "pending" and p)
    assert set(mine) == {safety}  # not the care hours, not the volunteers' insurance
    assert "the village service hall" in mine[safety]["body"]
    assert set(eventually(lambda: pushed(in_care))) == {care}
    assert pushed(neighbour) == {}  # registered as no one who qualifies

    secretary_view = secretary.ok("GET", f"{V}/notices", params={"page_size": 1000})["notices"]
    sent = [n for n in secretary_view if n["title"] == safety]
    assert len(sent) == 1 and sent[0]["audience"]["person_kind"] == "elderly_alone"
    elder.ok("POST", f"/v1/{mine[safety]['name']}:markRead", json={})
    receipts = secretary.ok("GET", f"/v1/{sent[0]['name']}/deliveries")["deliveries"]
    read_by = [d["recipient"] for d in receipts if d["read_time"] is not None]
    assert read_by == [subject(elder)]
    assert subject(neighbour) not in {d["recipient"] for d in receipts}

    # The same round again tells nobody twice.
    platform.install("service-push", overrides={"push_round": round_})
    again = secretary.ok("GET", f"{V}/notices", params={"page_size": 1000})["notices"]
    assert [n["name"] for n in again if n["title"] == safety] == [sent[0]["name"]]
    assert set(pushed(elder)) == {safety}
