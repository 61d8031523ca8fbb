"""Masking of personal data for callers without the scope to see it in full.

ID card numbers keep their region prefix and last four characters
(`310***********1234`), mobile numbers their first three and last four digits
(`138****5678`): enough to recognise one's own, not enough to misuse another's.
"""

from __future__ import annotations

import re

SENSITIVE_SCOPE = "people:read_sensitive"
# Who may see people's names at all (masked or not is then SENSITIVE_SCOPE's business).
PEOPLE_SCOPE = "people:read"
_MOBILE = re.compile(r"^\+?(86)?(1\d{10})\Z")
_ID_NUMBER = re.compile(r"^\d{17}[\dXx]\Z")


def mask_phone(value: str) -> str:
    digits = re.sub(r"[\s-]", "", value)
    match = _MOBILE.match(digits)
    if match:
        number = match.group(2)
        return f"{number[:3]}****{number[-4:]}"
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_id_number(value: str) -> str:
    if _ID_NUMBER.match(value):
        return value[:3] + "*" * 11 + value[-4:]
    return "*" * max(len(value) - 4, 0) + value[-4:]


def mask_name(name: str) -> str:
    """Keep the first character: `张*` or `欧***` for Chinese names, `J*** W***` for Latin ones.

    Latin names keep each word's initial with a fixed three stars, so the length of a
    name does not show; a one-character name still gets a star.
    """
    text = name.strip()
    if not text:
        return ""
    words = text.split()
    if len(words) > 1 or text.isascii():
        return " ".join(word[0] + "***" for word in words)
    return text[0] + "*" * max(len(text) - 1, 1)


def mask_contact(value: str) -> str:
    """A contact is a phone number or an e-mail address."""
    if "@" in value:
        user, _, domain = value.partition("@")
        return (user[:1] + "***@" + domain) if user else "***@" + domain
    return mask_phone(value)
