"""Cleaning on ingest, column by column: a million rows are a few numpy passes, not a
million Python calls.

Every check works on a whole column and marks the rows it fails; a row keeps the
first reason it failed for, so the rejected-rows report names one field and one
reason per row and no row disappears without one. What the checks accept:

* ID numbers (GB 11643): 17 digits and the ISO 7064 MOD 11-2 check character, with a
  real birth date between 1900 and today; a lower-case x becomes X.
* Mobile numbers: spaces, dashes, brackets and a +86/86 prefix dropped; 1 and 10 digits.
* Addresses: standardised to a building of the map (`addresses.standardise`); the
  building's village becomes the row's jurisdiction.
* Dates as YYYY-MM-DD, YYYY/MM/DD, YYYY.MM.DD or YYYYMMDD; booleans as true/false,
  1/0, yes/no, 是/否; numbers as written, integers without a fraction.
* Keys: the first row with a key wins; later rows with the same key are rejected as
  duplicates naming the row they repeat.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from services.empower.domain.datasets.addresses import AddressBook, standardise
from services.empower.domain.datasets.model import Dataset, DatasetField, FieldType, RejectedRow
from services.kit.errors import InvalidArgument

ROW_COLUMN = "_row"
TENANT_COLUMN = "_tenant"
BUILDING_COLUMN = "_building"
MAX_TEXT = 500
MAX_NAME = 64
_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)
_TRUE = {"true", "1", "yes", "y", "t", "是"}
_FALSE = {"false", "0", "no", "n", "f", "否"}
_CONTROL = r"[\x00-\x1f\x7f]"
_WORKERS = min(4, os.cpu_count() or 1)
_Found = tuple[pd.Series, pd.Series] | None


@dataclass
class Cleaned:
    """Accepted rows (cleaned values, file row, village, building) and refused ones."""

    frame: pd.DataFrame
    rejected: list[RejectedRow]
    ignored_columns: tuple[str, ...]
    # The keys of refused rows, as cleaned: a snapshot import keeps their stored rows
    # (a typo in one field must not delete the row it meant to change).
    refused_keys: tuple[str, ...] = ()


class _Failures:
    """One column's failures in the order its checks found them. Columns are cleaned at
    the same time (Arrow's kernels let go of the GIL); their failures are replayed into
    the verdicts in field order afterwards, so each row keeps the same first reason as
    one column after another would give it."""

    def __init__(self) -> None:
        self.found: list[tuple[np.ndarray, str, str]] = []

    def fail(self, mask: np.ndarray | pd.Series, field: str, reason: str) -> None:
        self.found.append((np.asarray(mask, dtype=bool), field, reason))


class _Verdicts:
    """The first failure of each row, as an index into a small table of reasons."""

    def __init__(self, rows: int) -> None:
        self.code = np.zeros(rows, dtype=np.int32)
        self.reasons: list[tuple[str, str]] = [("", "")]

    def fail(self, mask: np.ndarray | pd.Series, field: str, reason: str) -> None:
        hits = np.asarray(mask, dtype=bool) & (self.code == 0)
        if hits.any():
            self.reasons.append((field, reason))
            self.code[hits] = len(self.reasons) - 1

    def fail_each(self, rows: np.ndarray, field: str, reasons: list[str]) -> None:
        """Failures whose reason differs per row (duplicates naming their first row):
        `rows` (ascending, not failed yet) each get their own reason."""
        first = len(self.reasons)
        self.reasons.extend((field, reason) for reason in reasons)
        self.code[rows] = np.arange(first, first + len(rows), dtype=np.int32)

    @property
    def ok(self) -> np.ndarray:
        return self.code == 0


def _text(column: pd.Series) -> pd.Series:
    """Unicode-normalised (full-width digits become ASCII), trimmed text."""
    text = column.astype(str)
    wide = text.str.contains(r"[^\x00-\x7f]", regex=True).to_numpy(dtype=bool)
    if wide.any():  # normalising is per value: only where it can change something
        text = text.copy()
        text[wide] = text[wide].str.normalize("NFKC")
    return text.str.strip()


def _id_numbers(values: pd.Series, field: str, verdicts: _Failures, today: datetime) -> pd.Series:
    upper = values.str.upper()
    given = upper != ""
    shaped = upper.str.fullmatch(r"[0-9]{17}[0-9X]").fillna(False).to_numpy(dtype=bool)
    verdicts.fail(
        given.to_numpy() & ~shaped,
        field,
        "must be 18 characters: 17 digits and a check character (0-9 or X)",
    )
    if shaped.any():
        text = "".join(upper[shaped].tolist()).encode("ascii")
        chars = np.frombuffer(text, dtype=np.uint8).reshape(-1, 18)
        digits = (chars[:, :17] - 48).astype(np.int64)
        expected = _CHECK[(digits @ _WEIGHTS) % 11]
        bad = np.zeros(len(values), dtype=bool)
        bad[shaped] = expected != chars[:, 17]
        verdicts.fail(bad, field, "the check character does not match (GB 11643)")
        born = pd.to_datetime(upper[shaped].str.slice(6, 14), format="%Y%m%d", errors="coerce")
        invalid = np.zeros(len(values), dtype=bool)
        invalid[shaped] = born.isna().to_numpy()
        verdicts.fail(invalid, field, "does not contain a valid birth date")
        impossible = np.zeros(len(values), dtype=bool)
        impossible[shaped] = ((born.dt.year < 1900) | (born > today.replace(tzinfo=None))).to_numpy(
            dtype=bool
        )
        verdicts.fail(impossible, field, "contains an impossible birth date")
    return upper


def _mobiles(values: pd.Series, field: str, verdicts: _Failures) -> pd.Series:
    digits = values.str.replace(r"[ \t\-()]", "", regex=True)
    digits = digits.str.replace(r"^\+?86(1[0-9]{10})$", r"\1", regex=True)
    ok = digits.str.fullmatch(r"1[0-9]{10}").fillna(False).to_numpy(dtype=bool)
    verdicts.fail(
        (digits != "").to_numpy() & ~ok, field, "must be a mainland mobile number (1 and 10 digits)"
    )
    return digits


def _names(values: pd.Series, field: str, verdicts: _Failures) -> pd.Series:
    text = values.str.replace(r"[ \t\r\n]+", " ", regex=True)
    verdicts.fail(text.str.len().to_numpy() > MAX_NAME, field, f"at most {MAX_NAME} characters")
    verdicts.fail(text.str.contains(_CONTROL, regex=True).to_numpy(), field, "control characters")
    return text


def _strings(values: pd.Series, field: str, verdicts: _Failures) -> pd.Series:
    verdicts.fail(values.str.len().to_numpy() > MAX_TEXT, field, f"at most {MAX_TEXT} characters")
    verdicts.fail(values.str.contains(_CONTROL, regex=True).to_numpy(), field, "control characters")
    return values


def _numbers(values: pd.Series, field: str, verdicts: _Failures, integer: bool) -> pd.Series:
    given = (values != "").to_numpy()
    parsed = pd.to_numeric(values.where(values != ""), errors="coerce")
    numeric = parsed.notna().to_numpy() & np.isfinite(parsed.to_numpy(dtype=float, na_value=0.0))
    verdicts.fail(given & ~numeric, field, "must be a number")
    if integer:
        whole = np.equal(np.mod(parsed.to_numpy(dtype=float, na_value=0.0), 1), 0)
        verdicts.fail(given & numeric & ~whole, field, "must be a whole number")
        out = parsed.fillna(0).astype(np.int64).astype(str)
    else:
        out = parsed.astype(str)
    return out.where(given & numeric, "")


def _dates(values: pd.Series, field: str, verdicts: _Failures) -> pd.Series:
    given = (values != "").to_numpy()
    text = values.str.replace(r"[/.]", "-", regex=True)
    compact = text.str.fullmatch(r"[0-9]{8}").fillna(False).to_numpy(dtype=bool)
    if compact.any():
        squeezed = text[compact]
        text = text.copy()
        text[compact] = (
            squeezed.str.slice(0, 4)
            + "-"
            + squeezed.str.slice(4, 6)
            + "-"
            + squeezed.str.slice(6, 8)
        )
    parsed = pd.to_datetime(text.where(given), format="%Y-%m-%d", errors="coerce")
    verdicts.fail(given & parsed.isna().to_numpy(), field, "must be a date (YYYY-MM-DD)")
    return parsed.dt.strftime("%Y-%m-%d").fillna("")


def _booleans(values: pd.Series, field: str, verdicts: _Failures) -> pd.Series:
    lower = values.str.lower()
    yes = lower.isin(_TRUE).to_numpy()
    no = lower.isin(_FALSE).to_numpy()
    verdicts.fail((lower != "").to_numpy() & ~yes & ~no, field, "must be true or false")
    return pd.Series(np.where(yes, "true", np.where(no, "false", "")), index=values.index)


def clean(
    dataset: Dataset,
    raw: pd.DataFrame,
    addresses: AddressBook,
    *,
    today: datetime | None = None,
) -> Cleaned:
    """Check and normalise every column of `raw` (strings) against the dataset's schema."""
    today = today or datetime.now(UTC)
    columns = {str(c).strip().lower(): c for c in raw.columns}
    missing = [f.name for f in dataset.fields if f.required and f.name not in columns]
    if missing:
        raise InvalidArgument.field(
            "content", f"the file has no column {', '.join(missing)} (required by the schema)"
        )
    known = {f.name for f in dataset.fields}
    ignored = tuple(sorted(name for name in columns if name not in known))
    rows = len(raw)
    verdicts = _Verdicts(rows)
    out = pd.DataFrame(index=raw.index)
    buildings = tenants = pd.Series([""] * rows, index=raw.index)

    # Each worker gets its own column, taken from the frame here, on one thread.
    given = [raw[columns[f.name]] if f.name in columns else None for f in dataset.fields]

    def one(spec: DatasetField, column: pd.Series | None) -> tuple[pd.Series, _Found, _Failures]:
        return _clean_field(spec, column, raw.index, addresses, today)

    workers = min(_WORKERS, len(dataset.fields))
    with ThreadPoolExecutor(workers, thread_name_prefix="clean") as pool:
        results = list(pool.map(one, dataset.fields, given))
    for spec, (cleaned, found, failures) in zip(dataset.fields, results, strict=True):
        for mask, name, reason in failures.found:
            verdicts.fail(mask, name, reason)
        out[spec.name] = cleaned
        if found is not None:
            buildings, tenants = found
    out[ROW_COLUMN] = np.arange(rows, dtype=np.int64) + 2
    out[BUILDING_COLUMN] = buildings
    out[TENANT_COLUMN] = tenants
    _reject_duplicates(out, dataset.key_field, verdicts)
    keep = verdicts.ok
    rejected = [
        RejectedRow(int(row), *verdicts.reasons[code])
        for row, code in zip(out[ROW_COLUMN].to_numpy()[~keep], verdicts.code[~keep], strict=True)
    ]
    held = out[dataset.key_field][~keep].astype(str)
    refused_keys = tuple(k for k in held.tolist() if k and k != "nan")
    return Cleaned(out[keep].reset_index(drop=True), rejected, ignored, refused_keys)


def _clean_field(
    spec: DatasetField,
    column: pd.Series | None,
    index: pd.Index,
    addresses: AddressBook,
    today: datetime,
) -> tuple[pd.Series, _Found, _Failures]:
    """One field's cleaned column (the file's, or empty when the file lacks it),
    (buildings, villages) for the address, and its failures."""
    failures = _Failures()
    if column is not None:
        values = _text(column.fillna(""))
    else:
        values = pd.Series([""] * len(index), index=index, dtype=str)
    if spec.required:
        failures.fail((values == "").to_numpy(), spec.name, "is required")
    cleaned, found = _clean_column(spec, values, failures, addresses, today)
    return cleaned, found, failures


def _clean_column(
    spec: DatasetField,
    values: pd.Series,
    verdicts: _Failures,
    addresses: AddressBook,
    today: datetime,
) -> tuple[pd.Series, _Found]:
    name = spec.name
    match spec.type:
        case FieldType.ID_NUMBER:
            return _id_numbers(values, name, verdicts, today), None
        case FieldType.MOBILE:
            return _mobiles(values, name, verdicts), None
        case FieldType.PERSON_NAME:
            return _names(values, name, verdicts), None
        case FieldType.INTEGER:
            return _numbers(values, name, verdicts, integer=True), None
        case FieldType.NUMBER:
            return _numbers(values, name, verdicts, integer=False), None
        case FieldType.DATE:
            return _dates(values, name, verdicts), None
        case FieldType.BOOLEAN:
            return _booleans(values, name, verdicts), None
        case FieldType.ADDRESS:
            standard, tenants = standardise(values, addresses)
            verdicts.fail(
                (values != "").to_numpy() & (tenants == "").to_numpy(),
                name,
                "matches no building of the map's address list",
            )
            return standard, (standard, tenants)
    return _strings(values, name, verdicts), None


def _reject_duplicates(out: pd.DataFrame, key: str, verdicts: _Verdicts) -> None:
    """Among rows still accepted, a key seen before is a duplicate of its first row."""
    live = np.flatnonzero(verdicts.ok)
    codes, _ = pd.factorize(out[key].iloc[live])  # one code per key; -1 for none
    keyed = np.flatnonzero(codes >= 0)
    _, first = np.unique(codes[keyed], return_index=True)
    first_live = keyed[first]  # per code, where among the live rows it first appears
    repeated = np.zeros(len(live), dtype=bool)
    repeated[keyed] = True
    repeated[first_live] = False
    if not repeated.any():
        return
    rows = out[ROW_COLUMN].to_numpy()[live]
    reasons = [
        f"duplicate key: the same {key} as row {row}" for row in rows[first_live[codes[repeated]]]
    ]
    verdicts.fail_each(live[repeated], key, reasons)
