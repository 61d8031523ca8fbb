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
import pyarrow as pa
import pyarrow.compute as pc

# A village word, then a building number, with or without a "b" and separators.
_SHAPE = r"([a-z][a-z0-9]*?)[ \t_-]*b?[ \t_-]*0*([0-9]{1,6})"
_PARTS = r"^(?P<village>[a-z][a-z0-9]*?)[ \t_-]*b?[ \t_-]*0*(?P<number>[0-9]{1,6})$"
_SEPARATOR = pa.scalar("-b", pa.large_string())
_EMPTY = pa.scalar("", pa.large_string())
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
    """(canonical building ids, village paths); both "" where nothing matches.

    One regular-expression pass splits each address into its village word and number,
    and the address list is looked up as an Arrow set, so no value becomes a Python
    string on the way."""
    text = values.str.lower().str.replace(_NOISE, " ", regex=True).str.strip()
    parts = pc.extract_regex(pa.array(text, type=pa.large_string()), _PARTS)
    number = pc.utf8_lpad(pc.struct_field(parts, "number"), 4, "0")
    canonical = pc.binary_join_element_wise(pc.struct_field(parts, "village"), number, _SEPARATOR)
    ids = pa.array(list(book.buildings), type=pa.large_string())
    villages = pa.array(list(book.buildings.values()), type=pa.large_string())
    tenants = pc.take(villages, pc.index_in(canonical, value_set=ids))
    canonical = pc.if_else(pc.is_null(tenants), _EMPTY, canonical)
    return (
        pd.Series(canonical.fill_null(""), index=values.index, dtype="str"),
        pd.Series(tenants.fill_null(""), index=values.index, dtype="str"),
    )
