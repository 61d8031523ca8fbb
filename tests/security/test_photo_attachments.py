"""Photos (ADR 36): only images told by their bytes, bounded by the contract's size,
read back only by their uploader and the staff of their village, and named in a
report only by the person who uploaded them."""

from __future__ import annotations

from security_world import PNG_BYTES, A, B, World, expect

from gateway.routers.attachments import MAX_BYTES

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64


def upload(
    world: World, content: bytes, name: str = "p.jpg", kind: str = "image/jpeg", tenant: str = A
):
    return world.client.post(
        f"/v1/tenants/{tenant}/attachments",
        files={"content": (name, content, kind)},
        headers=world.a_super.headers,
    )


def test_what_is_not_a_photo_is_refused_naming_the_field(world: World):
    for content, name, kind in (
        (b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "x.svg", "image/svg+xml"),
        (b"<html><script>alert(1)</script></html>", "x.jpg", "image/jpeg"),
        (b"GIF89a" + b"\x00" * 32, "x.gif", "image/gif"),
    ):
        answer = upload(world, content, name, kind)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["field_violations"][0]["field"] == "content"
    too_large = upload(world, JPEG + b"\x00" * (MAX_BYTES - len(JPEG) + 1))
    assert too_large.status_code == 413, too_large.text
    assert too_large.json()["error"]["field_violations"][0]["field"] == "content"
    missing = world.client.post(f"/v1/tenants/{A}/attachments", headers=world.a_super.headers)
    assert missing.status_code == 400
    assert missing.json()["error"]["field_violations"][0]["field"] == "content"


def test_a_photo_is_served_only_as_what_it_is(world: World):
    made = expect(upload(world, JPEG, "trick.html", "text/html"), 201)
    assert made["content_type"] == "image/jpeg"
    got = world.client.get(
        f"/v1/tenants/{A}/attachments/{made['id']}", headers=world.a_super.headers
    )
    assert got.status_code == 200 and got.content == JPEG
    assert got.headers["content-type"] == "image/jpeg"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert world.client.get(f"/v1/tenants/{A}/attachments/{made['id']}").status_code == 401


def test_another_village_reaches_no_photo_and_names_none_in_a_report(world: World):
    made = expect(upload(world, PNG_BYTES), 201)
    for tenant in (A, B):
        answer = world.client.get(
            f"/v1/tenants/{tenant}/attachments/{world.b.attachment_id}",
            headers=world.a_super.headers,
        )
        assert answer.status_code == 404, answer.text
    stranger = world.client.get(
        f"/v1/tenants/{A}/attachments/{made['id']}", headers=world.b_super.headers
    )
    assert stranger.status_code == 404
    b_photo = f"tenants/{B}/attachments/{world.b.attachment_id}"
    report = {
        "category": "environment.garbage",
        "description": "Security suite: a report naming another village's photo",
        "location": {"longitude": world.a.point[0], "latitude": world.a.point[1]},
        "request_id": f"security-photo-{made['id']}",
        "media_uris": [made["name"], b_photo],
    }
    refused = world.client.post(
        f"/v1/tenants/{A}/events", json=report, headers=world.a_super.headers
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["field_violations"][0]["field"] == "media_uris[1]"
