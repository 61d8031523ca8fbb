import re

import pytest

from services.kit.masking import mask_contact, mask_id_number, mask_phone


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("13812345678", "138****5678"),
        ("+86 138 1234 5678", "138****5678"),
        ("021-5959-1234", "*******1234"),
        ("12", "**"),
    ],
)
def test_phones_keep_only_what_recognises_them(raw, masked):
    assert mask_phone(raw) == masked


def test_id_numbers_keep_region_and_last_four():
    assert mask_id_number("31011419800101123X") == "310***********123X"
    assert not re.search(r"\d{17}[\dXx]", mask_id_number("31011419800101123X"))


def test_contacts_mask_phones_and_mail():
    assert mask_contact("13812345678") == "138****5678"
    assert mask_contact("wang.li@example.cn") == "w***@example.cn"
    assert not re.search(r"1\d{10}", mask_contact("13812345678"))
