"""Address standardisation against the village's address list: the map's buildings.

The map's buildings are named `{village}-b{number}` (`xingming-b0012`) and each lies
in one village. Registers write them every way people do: `Xingming B12`,
`XINGMING-B0012`, `xingming 12`, `xingming village, building 12`. Standardising reads
the village word and the number, writes the canonical id, and looks it up in the
address list; the building's village is the row's jurisdiction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

# A village word, then a building number, with or without a "b" and separators.
_SHAPE = r"([a-z][a-z0-9]*?)[ \t_-]*b?[ \t_-]*0*([0-9]{1,6})"
_NOISE = r"(?:village|building|bldg|no\.?|number|house|村|号|栋|幢|#|,|" + "\uff0c" + ")"


@dataclass(frozen=True)
class AddressBook:
    """Building id -> the village path it lies in."""

    buildings: Mapping[str, str] = field(default_factory=dict)


class AddressSource(Protocol):
    async def address_book(self, tenant: str) -> AddressBook:
        """The buildings of `tenant`'s subtree."""
        ...


def standardise(values: pd.Series, book: AddressBook) -> tuple[pd.Series, pd.Series]:
    """(canonical building ids, village paths); both "" where nothing matches."""
    text = values.str.lower().str.replace(_NOISE, " ", regex=True).str.strip()
    shaped = text.str.fullmatch(_SHAPE).fillna(False).to_numpy(dtype=bool)
    village = text.str.replace(f"^{_SHAPE}$", r"\1", regex=True)
    number = text.str.replace(f"^{_SHAPE}$", r"\2", regex=True).str.zfill(4)
    canonical = (village + "-b" + number).where(shaped, "")
    tenants = canonical.map(book.buildings).fillna("")
    return canonical.where(tenants != "", ""), tenants.astype(str)
