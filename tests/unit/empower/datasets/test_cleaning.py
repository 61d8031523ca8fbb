"""Cleaning on ingest, column by column: what is accepted, how it is written, and the
reason every refused row carries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest

from services.empower.domain.datasets.addresses import AddressBook, standardise
from services.empower.domain.datasets.cleaning import BUILDING_COLUMN, TENANT_COLUMN, clean
from services.empower.domain.datasets.model import DatasetField, FieldType
from services.kit.errors import InvalidArgument
from tests.unit.empower.datasets.conftest import BOOK, RESIDENTS, XIANGYANG, XINGMING, id_number

TODAY = datetime(2026, 12, 3, tzinfo=UTC)
# "13912345671" in full-width digits, as some input methods type them.
FULL_WIDTH = "".join(chr(0xFF10 + int(d)) for d in "13912345671")
DATASET = replace(RESIDENTS, tenant="sh/jiading", dataset_id="residents")


def frame(*rows: dict[str, str]) -> pd.DataFrame:
    base = {
        "id_number": id_number(1),
        "name": "Zhou Meilan",
        "phone": "13912345678",
        "address": "xingming b1",
        "birth_date": "",
        "lives_alone": "",
        "household_size": "",
    }
    return pd.DataFrame([{**base, **row} for row in rows], dtype=str)


def reasons(*rows: dict[str, str]) -> list[tuple[int, str, str]]:
    cleaned = clean(DATASET, frame(*rows), BOOK, today=TODAY)
    return [(r.row_number, r.field, r.reason) for r in cleaned.rejected]


def test_a_valid_id_number_passes_and_a_lower_case_x_is_upper_cased():
    with_x = next(n for n in (id_number(i) for i in range(200)) if n.endswith("X"))
    cleaned = clean(DATASET, frame({"id_number": with_x.lower()}), BOOK, today=TODAY)
    assert cleaned.rejected == []
    assert cleaned.frame["id_number"].tolist() == [with_x]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("31011419520314123", "must be 18 characters"),
        ("3101141952031412AB", "must be 18 characters"),
        ("310114195203141230", "check character does not match (GB 11643)"),
    ],
)
def test_a_bad_id_number_is_refused_with_its_reason(value, reason):
    if "check" in reason:  # the same first 17 digits with every wrong check character
        good = id_number(123)
        value = good[:17] + ("0" if good[17] != "0" else "1")
    [(row, field, text)] = reasons({}, {"id_number": value})
    assert (row, field) == (3, "id_number")
    assert reason in text


def test_an_id_number_with_an_impossible_birth_date_is_refused():
    from services.kit import gb11643

    february_30 = gb11643.with_check_character("31011419520230123")
    future = gb11643.with_check_character("31011420990101123")
    found = reasons({"id_number": february_30}, {"id_number": future})
    assert [r[2] for r in found] == [
        "does not contain a valid birth date",
        "contains an impossible birth date",
    ]


def test_mobile_numbers_are_normalised_to_eleven_digits():
    cleaned = clean(
        DATASET,
        frame(
            {"id_number": id_number(1), "phone": "+86 139-1234-5678"},
            {"id_number": id_number(2), "phone": "86 13912345679"},
            {"id_number": id_number(3), "phone": "(139) 1234 5670"},
            {"id_number": id_number(4), "phone": FULL_WIDTH},  # full-width digits
            {"id_number": id_number(5), "phone": "2345678"},
        ),
        BOOK,
        today=TODAY,
    )
    assert cleaned.frame["phone"].tolist() == [
        "13912345678",
        "13912345679",
        "13912345670",
        "13912345671",
    ]
    assert [(r.row_number, r.field) for r in cleaned.rejected] == [(6, "phone")]
    assert "mainland mobile number" in cleaned.rejected[0].reason


@pytest.mark.parametrize(
    "written",
    [
        "Xingming B12",
        "XINGMING-B0012",
        "xingming 12",
        "xingming village, building 12",
        " xingming_b012 ",
    ],
)
def test_addresses_are_standardised_to_a_building_of_the_map(written):
    standard, village = standardise(pd.Series([written.strip().lower()], dtype=str), BOOK)
    assert standard.tolist() == ["xingming-b0012"]
    assert village.tolist() == [XINGMING]


def test_a_row_takes_the_village_of_its_building_and_unknown_addresses_are_refused():
    cleaned = clean(
        DATASET,
        frame(
            {"id_number": id_number(1), "address": "xingming b7"},
            {"id_number": id_number(2), "address": "Xiangyang No. 7"},
            {"id_number": id_number(3), "address": "xingming b999"},
            {"id_number": id_number(4), "address": "somewhere else"},
        ),
        BOOK,
        today=TODAY,
    )
    assert cleaned.frame[TENANT_COLUMN].tolist() == [XINGMING, XIANGYANG]
    assert cleaned.frame[BUILDING_COLUMN].tolist() == ["xingming-b0007", "xiangyang-b0007"]
    assert [(r.row_number, r.field) for r in cleaned.rejected] == [(4, "address"), (5, "address")]
    assert all("matches no building" in r.reason for r in cleaned.rejected)


def test_a_repeated_key_is_refused_naming_the_row_it_repeats():
    found = reasons(
        {"id_number": id_number(1)},
        {"id_number": id_number(2)},
        {"id_number": id_number(1), "name": "Someone Else"},
        {"id_number": id_number(2)},
    )
    assert found == [
        (4, "id_number", "duplicate key: the same id_number as row 2"),
        (5, "id_number", "duplicate key: the same id_number as row 3"),
    ]


def test_a_row_that_fails_twice_is_reported_once_for_its_first_failure():
    found = reasons({"id_number": "123", "phone": "1", "address": "nowhere"})
    assert found == [(2, "id_number", found[0][2])]


def test_required_values_dates_booleans_and_integers():
    cleaned = clean(
        DATASET,
        frame(
            {"id_number": id_number(1), "birth_date": "1952/03/14", "lives_alone": "是"},
            {"id_number": id_number(2), "birth_date": "19520314", "household_size": "3"},
            {"id_number": id_number(3), "name": ""},
            {"id_number": id_number(4), "birth_date": "1952-02-30"},
            {"id_number": id_number(5), "lives_alone": "maybe"},
            {"id_number": id_number(6), "household_size": "2.5"},
        ),
        BOOK,
        today=TODAY,
    )
    assert cleaned.frame["birth_date"].tolist() == ["1952-03-14", "1952-03-14"]
    assert cleaned.frame["lives_alone"].tolist() == ["true", ""]
    assert cleaned.frame["household_size"].tolist() == ["", "3"]
    assert [(r.row_number, r.field, r.reason) for r in cleaned.rejected] == [
        (4, "name", "is required"),
        (5, "birth_date", "must be a date (YYYY-MM-DD)"),
        (6, "lives_alone", "must be true or false"),
        (7, "household_size", "must be a whole number"),
    ]


def test_a_file_without_a_required_column_is_refused_and_unknown_columns_are_named():
    with pytest.raises(InvalidArgument) as refused:
        clean(DATASET, frame({}).drop(columns=["address"]), BOOK, today=TODAY)
    assert refused.value.violations[0].field == "content"
    assert "address" in refused.value.violations[0].description
    cleaned = clean(DATASET, frame({}).assign(notes="x"), BOOK, today=TODAY)
    assert cleaned.ignored_columns == ("notes",)


def test_no_row_disappears_without_a_reason():
    rows = [
        {"id_number": id_number(n % 7), "phone": "1" if n % 5 == 0 else "13912345678"}
        for n in range(50)
    ]
    cleaned = clean(DATASET, frame(*rows), BOOK, today=TODAY)
    assert len(cleaned.frame) + len(cleaned.rejected) == 50
    assert set(cleaned.frame["_row"]).isdisjoint(r.row_number for r in cleaned.rejected)


def test_a_personal_field_that_is_not_a_personal_type_is_still_masked():
    notes = DatasetField("health_notes", FieldType.STRING, personal=True)
    assert notes.is_personal
    assert not DatasetField("floor", FieldType.INTEGER).is_personal
    assert AddressBook().buildings == {}
