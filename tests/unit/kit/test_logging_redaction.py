"""Log lines never carry secrets or personal numbers, whoever logged them."""

from __future__ import annotations

import json
import logging

import pytest

from services.kit.logging import JsonFormatter, redact

ID_NUMBER = "11010519491231002X"
PHONE = "13812345678"
API_KEY = "grk_01m8e95tkafetxgyavtr9d43vg__D5G-5oh3-75PFjfvDXKXlkWUfZV9"
JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1c2Vycy91MSJ9.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        (f"key {API_KEY} used", API_KEY, "grk_[redacted]"),
        ("refresh grr_abc_defghijklmnop", "defghijklmnop", "grr_[redacted]"),
        (f"Bearer {JWT}", JWT, "[jwt redacted]"),
        ('{"password": "hunter2hunter2"}', "hunter2hunter2", '"password": "[redacted]"'),
        ("form api_key=abcdef123456&x=1", "abcdef123456", "api_key=[redacted]"),
        (f"resident {ID_NUMBER}", ID_NUMBER, "110105********002X"),
        (f"call {PHONE} now", PHONE, "138****5678"),
    ],
)
def test_secrets_and_personal_numbers_are_removed(text, secret, kept):
    cleaned = redact(text)
    assert secret not in cleaned
    assert kept in cleaned


def test_ordinary_lines_pass_unchanged():
    line = "rpc /grassroots.events.v1.EventsService/CreateEvent OK in 1.234 ms at 1764236400123"
    assert redact(line) == line


def test_the_json_formatter_redacts_messages_and_extra_fields():
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "login %s", (PHONE,), None)
    record.api_key = API_KEY
    line = JsonFormatter("test").format(record)
    assert PHONE not in line and API_KEY not in line
    assert json.loads(line)["msg"] == "login 138****5678"


@pytest.mark.parametrize(
    "identifier",
    [
        "13812345678deadbeef",  # a request id that starts with eleven digits
        "req13812345678",
        "01KB13812345678ZQ",
        "11010519491231002Xab",
        "x11010519491231002X",
    ],
)
def test_identifiers_that_contain_digit_runs_stay_whole(identifier):
    line = json.dumps({"msg": "done", "request_id": identifier})
    assert redact(line) == line


def test_a_phone_next_to_punctuation_is_still_masked():
    assert redact(f"request_id=13812345678deadbeef phone={PHONE};") == (
        "request_id=13812345678deadbeef phone=138****5678;"
    )
