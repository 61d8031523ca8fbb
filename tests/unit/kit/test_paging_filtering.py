import base64
import json

import pytest

from services.kit import paging, signing
from services.kit.errors import InvalidArgument
from services.kit.filtering import Term, parse_equalities, parse_terms, quote


def test_page_size_defaults_caps_and_rejects_negative():
    assert paging.page_size(0, default=50, maximum=1000) == 50
    assert paging.page_size(5000, default=50, maximum=1000) == 1000
    assert paging.page_size(7) == 7
    with pytest.raises(InvalidArgument) as info:
        paging.page_size(-1)
    assert info.value.violations[0].field == "page_size"


def test_token_round_trip_is_bound_to_its_query():
    query = {"parent": "sh", "filters": {"grid_cell": "g1"}}
    token = paging.encode_token({"t": 5, "id": "ev_x"}, query)
    assert paging.decode_token(token, query) == {"t": 5, "id": "ev_x"}
    assert paging.decode_token("", query) is None
    with pytest.raises(InvalidArgument) as info:
        paging.decode_token(token, {"parent": "sh", "filters": {}})
    assert info.value.violations[0].field == "page_token"
    with pytest.raises(InvalidArgument):
        paging.decode_token("not-a-token!", query)


def test_filter_parses_conjunctions_and_quotes():
    parsed = parse_equalities('grid_cell = "g1" AND state = "a \\"b\\""', {"grid_cell", "state"})
    assert parsed == {"grid_cell": "g1", "state": 'a "b"'}
    assert parse_equalities("  ", {"x"}) == {}


def test_a_quoted_value_is_taken_literally_even_holding_and():
    # Issue 11, finding 13: any search value containing " AND " answered 400.
    allowed = {"q": (":",), "state": ("=",)}
    assert parse_terms('q : "salt AND pepper"', allowed) == [Term("q", ":", "salt AND pepper")]
    assert parse_terms('q : "a AND b = \\"c\\"" AND state = "x AND y"', allowed) == [
        Term("q", ":", 'a AND b = "c"'),
        Term("state", "=", "x AND y"),
    ]
    assert parse_equalities('name = " AND "', {"name"}) == {"name": " AND "}


@pytest.mark.parametrize(
    "value", ["plain", 'say "hi"', "back\\slash", "C:\\dir AND more", "a\\", ' AND x = "y']
)
def test_quote_and_parse_are_inverse(value):
    assert parse_equalities(f'name = "{quote(value)}"', {"name"}) == {"name": value}


def test_unknown_escapes_are_kept_as_sent():
    assert parse_equalities('path = "C:\\temp"', {"path"}) == {"path": "C:\\temp"}
    assert parse_equalities('path = "C:\\\\temp"', {"path"}) == {"path": "C:\\temp"}


@pytest.mark.parametrize(
    "text",
    [
        'owner = "x"',
        'grid_cell = "a" state = "b"',
        'grid_cell = "a"AND state = "b"',
        'grid_cell = "a" AND',
        'grid_cell = "a" and state = "b"',
        'grid_cell = "unterminated AND state = "b',
        "grid_cell = g1",
        'grid_cell = "a" OR state = "b"',
        'grid_cell = "a" AND grid_cell = "b"',
    ],
)
def test_filter_errors_name_the_filter_field(text):
    with pytest.raises(InvalidArgument) as info:
        parse_equalities(text, {"grid_cell", "state"})
    assert info.value.violations[0].field == "filter"


def _forge(cursor, query):
    """A token as the unsigned format had it: base64 of the cursor and the fingerprint."""
    body = json.dumps({"c": cursor, "q": paging._fingerprint(query)}).encode()
    return base64.urlsafe_b64encode(body).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor", [{"t": 10**30, "id": "ev"}, {"t": [1], "id": {}}, {"o": 5}, {"s": "x"}]
)
def test_a_forged_token_is_refused_before_its_cursor_is_read(cursor):
    # Issue 11, finding 8: forged cursors (wrong types, numbers past int64) reached stores.
    query = {"parent": "sh"}
    real = paging.encode_token(cursor, query)
    body, mac = real.split(".")
    for forged in (_forge(cursor, query), f"{_forge(cursor, query)}.{mac}", f"{body}.", body):
        with pytest.raises(InvalidArgument) as info:
            paging.decode_token(forged, query)
        assert info.value.violations[0].field == "page_token"
        assert "not a token this service issued" in info.value.violations[0].description
    assert paging.decode_token(real, query) == cursor


def test_tokens_are_signed_under_the_ring_and_survive_a_key_roll():
    query = {"parent": "sh"}
    old = signing.KeyRing.parse(signing.generate_keys_value("old"))
    new = signing.KeyRing.parse(f"{signing.generate_keys_value('new')},old:" + _key_text(old))
    try:
        signing.configure(old)
        token = paging.encode_token({"o": 7}, query)
        signing.configure(new)  # the old key still verifies while the new one signs
        assert paging.decode_offset(token, query) == 7
        signing.configure(signing.KeyRing.parse(signing.generate_keys_value("other")))
        with pytest.raises(InvalidArgument):
            paging.decode_offset(token, query)
    finally:
        signing.configure(None)


def _key_text(ring):
    return base64.b64encode(ring.keys[ring.active]).decode()


def test_a_page_token_mac_is_not_a_principal_signature():
    ring = signing.keyring()
    body = b'{"c":{"o":1},"q":"x"}'
    assert not ring.verify(body, ring.derive(b"grassroots page token v1").sign(body))
