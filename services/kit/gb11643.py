"""Resident ID numbers (GB 11643-1999): the check character, ISO 7064 MOD 11-2.

One definition for everything that makes or checks ID numbers: the people registry's
validation, the demo town's generator and the tests.
"""

from __future__ import annotations

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def check_character(first17: str) -> str:
    """The 18th character for the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError(f"{first17!r} is not 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def with_check_character(first17: str) -> str:
    """A whole ID number from its first 17 digits."""
    return first17 + check_character(first17)
