"""What the registry accepts, what it derives, and what masked output looks like."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from grassroots.empower.v1 import people_service_pb2 as pb
from services.empower.domain.people import (
    mask_name,
    masked,
    normalise_id_number,
    normalise_phone,
    validate,
)
from services.empower.domain.people_model import (
    Gender,
    Kind,
    NewPerson,
    Person,
    parse_person_name,
    person_name,
)
from services.kit import gb11643, limits
from services.kit.errors import InvalidArgument
from tests.unit.empower.people.conftest import XINGMING, id_number


def field_of(info: pytest.ExceptionInfo[InvalidArgument]) -> str:
    return info.value.violations[0].field


def test_well_formed_numbers_pass_validation():
    for first17 in ("31011419520314123", "11010519491231002", "44030419900101001"):
        number = gb11643.with_check_character(first17)
        assert normalise_id_number(number) == number


@pytest.mark.parametrize(
    "bad",
    [
        "310114195203141239",  # wrong check digit
        "31011419520314123",  # 17 characters
        "3101141952031412345",  # 19 characters
        "31011419520314123A",  # not a check character
        "310114195213011236",  # month 13 (the check digit is right)
        "310114280001011237",  # year 2800
    ],
)
def test_bad_id_numbers_name_the_field(bad):
    if bad in ("310114195213011236", "310114280001011237"):
        bad = gb11643.with_check_character(bad[:17])
    with pytest.raises(InvalidArgument) as info:
        validate(NewPerson(name="Gu Yulan", id_number=bad))
    assert field_of(info) == "id_number"


def test_a_lower_case_x_is_accepted_and_stored_upper_case():
    number = next(id_number(sequence=s) for s in range(1000) if id_number(sequence=s).endswith("X"))
    assert normalise_id_number(number.lower()) == number


def test_birth_date_and_gender_come_from_the_id_number():
    man = validate(NewPerson(name="Shen Genbao", id_number=id_number("19400229", 11)))
    woman = validate(NewPerson(name="Shen Amei", id_number=id_number("19470815", 12)))
    assert (man.birth_date, man.gender) == (date(1940, 2, 29), Gender.MALE)
    assert (woman.birth_date, woman.gender) == (date(1947, 8, 15), Gender.FEMALE)
    agreeing = NewPerson(
        name="Shen Amei", id_number=id_number("19470815", 12), birth_date=date(1947, 8, 15)
    )
    assert validate(agreeing).birth_date == date(1947, 8, 15)
    with pytest.raises(InvalidArgument) as info:
        validate(
            NewPerson(
                name="Shen Amei", id_number=id_number("19470815", 12), birth_date=date.today()
            )
        )
    assert field_of(info) == "birth_date"
    with pytest.raises(InvalidArgument) as info:
        validate(NewPerson(name="Shen Amei", id_number=id_number("19470815", 12), gender="male"))
    assert field_of(info) == "gender"


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("13912345678", "13912345678"),
        ("139 1234 5678", "13912345678"),
        ("+86 139-1234-5678", "13912345678"),
        ("8613912345678", "13912345678"),
    ],
)
def test_mobile_numbers_are_normalised(raw, normalised):
    assert normalise_phone(raw) == normalised


@pytest.mark.parametrize("bad", ["1391234567", "23912345678", "021-59591234", "139123456789"])
def test_bad_phones_name_the_field(bad):
    with pytest.raises(InvalidArgument) as info:
        validate(NewPerson(name="Gu Yulan", id_number=id_number(), phone=bad))
    assert field_of(info) == "phone"


@pytest.mark.parametrize(
    ("new", "field"),
    [
        (NewPerson(name=" ", id_number=id_number()), "name"),
        (NewPerson(name="Gu", id_number=id_number(), kind="pet"), "kind"),
        (NewPerson(name="Gu", id_number=id_number(), building="b 1"), "building"),
        (NewPerson(name="Gu", id_number=id_number(), grid_cell="g/1"), "grid_cell"),
        (NewPerson(name="Gu", id_number=id_number(), tags=("ok", "Not Ok")), "tags[1]"),
        (NewPerson(name="Gu", id_number=id_number(), address="a\x07"), "address"),
    ],
)
def test_other_fields_are_checked(new, field):
    with pytest.raises(InvalidArgument) as info:
        validate(new)
    assert field_of(info) == field


def test_sizes_are_the_contracts():
    """Lengths and counts are declared on the proto (ADR 22) and refused by the server
    before the registry sees the request."""
    person = pb.Person(display_name="x" * 65, address="a" * 201, building="b" * 65, tags=["t"] * 17)
    found = {v.field for v in limits.violations(pb.CreatePersonRequest(person=person))}
    assert found == {
        "person.display_name",
        "person.address",
        "person.building",
        "person.tags",
    }


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("张三", "张*"),
        ("欧阳娜娜", "欧***"),
        ("李", "李*"),
        ("John Wang", "J*** W***"),
        ("Wang Jianguo", "W*** J***"),
        ("Li", "L***"),
    ],
)
def test_names_keep_only_their_first_character(name, shown):
    assert mask_name(name) == shown


def test_a_masked_person_shows_prefixes_and_suffixes_only():
    now = datetime.now(UTC)
    person = Person(
        id="pe_1",
        tenant=XINGMING,
        kind=Kind.RESIDENT,
        name="Zhou Meilan",
        id_number="31011419520314123X",
        phone="13812345678",
        gender=Gender.FEMALE,
        birth_date=date(1952, 3, 14),
        address="",
        building="",
        grid_cell="",
        tags=(),
        create_time=now,
        update_time=now,
        version=1,
        masked=False,
    )
    shown = masked(person)
    assert (shown.name, shown.id_number, shown.phone, shown.masked) == (
        "Z*** M***",
        "310***********123X",
        "138****5678",
        True,
    )
    assert not re.search(r"\d{5}", shown.id_number + shown.phone)


def test_resource_names_convert_both_ways():
    name = person_name(XINGMING, "pe_01abc")
    assert name == "tenants/sh-jiading-anting-xingming/people/pe_01abc"
    assert parse_person_name(name) == (XINGMING, "pe_01abc")
    assert parse_person_name("tenants/-/people/pe_01abc") == (None, "pe_01abc")
    with pytest.raises(InvalidArgument):
        parse_person_name("tenants/x/events/pe_1")
