"""Publishing datasets, ingesting files into them, and the slices villages receive.

A district publishes a register with its schema and classification; each import is
read, cleaned column by column, de-duplicated by key and compared with what is
stored, so only real changes get a new sync position. Each row lies in the village
its address was matched to. A village subscribes and pulls the changes of its own
rows since its cursor: the store query is limited to the subscriber's subtree (and
PostgreSQL's row-level security limits it again). Personal values are sealed at
rest, masked for readers without people:read_sensitive and a stated purpose, and
every unmasked read leaves one entry in the audit chain.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from services.empower.domain.audit import AuditLog, check_purpose
from services.empower.domain.datasets.addresses import AddressSource
from services.empower.domain.datasets.classification import (
    PUBLISH_SCOPE,
    READ_SCOPE,
    RULES,
    UNMASK_SCOPE,
)
from services.empower.domain.datasets.cleaning import BUILDING_COLUMN, TENANT_COLUMN, clean
from services.empower.domain.datasets.files import FileFormat, read_table
from services.empower.domain.datasets.model import (
    Classification,
    Dataset,
    DatasetField,
    FieldType,
    ImportReport,
    SlicePage,
    SliceRow,
    StoredRow,
    Subscription,
    check_dataset_id,
    check_field_name,
    parse_dataset_name,
)
from services.empower.domain.datasets.ports import DatasetStore, LiveRows, RowChunk, RowWrite
from services.kit import paging, tenancy
from services.kit.errors import Aborted, AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from services.kit.ids import new_id
from services.kit.masking import mask_id_number, mask_name, mask_phone
from services.kit.principal import Principal
from services.kit.sealing import Sealer

READ_ACTION = "datasets.read"
MAX_FIELDS = 64
MAX_DISPLAY = 100
MAX_DESCRIPTION = 2000
PUBLISHING_DEPTH = 2  # a city ("sh") or a district ("sh/jiading")
DEFAULT_SYNC_PAGE = 1000
MAX_SYNC_PAGE = 5000
SUBSCRIPTION_PREFIX = "sub"
CHUNK = 20_000
_CONTROL = r"[\x00-\x1f]"  # what JSON escapes besides quotes and backslashes


def _now_us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _masker(spec: DatasetField) -> Callable[[str], str]:
    match spec.type:
        case FieldType.ID_NUMBER:
            return mask_id_number
        case FieldType.MOBILE:
            return mask_phone
        case FieldType.PERSON_NAME:
            return mask_name
    return lambda value: "***" if value else ""


def validate_dataset(draft: Dataset) -> Dataset:
    """The publisher's schema, checked; errors name the field at fault."""
    display = " ".join(draft.display_name.split())
    if not display or len(display) > MAX_DISPLAY:
        raise InvalidArgument.field("dataset.display_name", f"1 to {MAX_DISPLAY} characters")
    if len(draft.description) > MAX_DESCRIPTION:
        raise InvalidArgument.field("dataset.description", f"at most {MAX_DESCRIPTION} characters")
    if len(draft.area) > 64:
        raise InvalidArgument.field("dataset.area", "at most 64 characters")
    if not 0 < len(draft.fields) <= MAX_FIELDS:
        raise InvalidArgument.field("dataset.fields", f"1 to {MAX_FIELDS} fields")
    seen: set[str] = set()
    for i, spec in enumerate(draft.fields):
        check_field_name(spec.name, f"dataset.fields[{i}].name")
        if spec.name in seen:
            raise InvalidArgument.field(f"dataset.fields[{i}].name", f"{spec.name!r} appears twice")
        seen.add(spec.name)
        if len(spec.description) > 500:
            raise InvalidArgument.field(
                f"dataset.fields[{i}].description", "at most 500 characters"
            )
    addresses = [f for f in draft.fields if f.type is FieldType.ADDRESS]
    if len(addresses) != 1 or not addresses[0].required:
        raise InvalidArgument.field(
            "dataset.fields",
            "exactly one required address field: it places each row in a village",
        )
    if draft.key_field not in seen:
        raise InvalidArgument.field("dataset.key_field", "must name one of the fields")
    key = draft.field(draft.key_field)
    if not key.required:
        raise InvalidArgument.field("dataset.key_field", "the key field must be required")
    if not RULES[draft.classification].personal_fields and any(f.is_personal for f in draft.fields):
        raise InvalidArgument.field(
            "dataset.classification", "a public dataset may not hold personal fields"
        )
    return replace(draft, display_name=display)


class DatasetDesk:
    """Datasets, imports, subscriptions and slices; tenancy and masking decided here."""

    def __init__(
        self,
        store: DatasetStore,
        addresses: AddressSource,
        audit: AuditLog,
        sealer: Sealer,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.addresses = addresses
        self.audit = audit
        self.sealer = sealer
        self._clock = clock or (lambda: datetime.now(UTC))

    # --- datasets -------------------------------------------------------------

    async def create_dataset(
        self, caller: Principal, parent: str, dataset_id: str, draft: Dataset
    ) -> Dataset:
        _require(caller, PUBLISH_SCOPE, "publishing datasets")
        if not caller.can_see(parent):
            raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
        if len(parent.split("/")) > PUBLISHING_DEPTH:
            raise InvalidArgument.field("parent", "datasets are published by a city or a district")
        now = self._clock()
        dataset = validate_dataset(
            replace(
                draft,
                tenant=parent,
                dataset_id=check_dataset_id(dataset_id),
                row_count=0,
                last_seq=0,
                create_time=now,
                update_time=now,
            )
        )
        await self.store.create_dataset(dataset)
        return dataset

    async def get_dataset(self, caller: Principal, name: str, field: str = "name") -> Dataset:
        _require(caller, READ_SCOPE, "reading datasets")
        tenant, dataset_id = parse_dataset_name(name, field)
        return await self._visible_dataset(caller, tenant, dataset_id)

    async def _visible_dataset(self, caller: Principal, tenant: str, dataset_id: str) -> Dataset:
        # Published at the caller's node or above it (the shelf it takes from), or below.
        visible = tenancy.contains(tenant, caller.tenant) or caller.can_see(tenant)
        found = await self.store.get_dataset(tenant, dataset_id) if visible else None
        if found is None:
            raise NotFound(f"dataset {tenancy.tenant_name(tenant)}/datasets/{dataset_id} not found")
        return found

    async def list_datasets(
        self, caller: Principal, parent: str, page_size: int, page_token: str
    ) -> tuple[list[Dataset], str]:
        _require(caller, READ_SCOPE, "reading datasets")
        if not caller.can_see(parent):
            raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
        size = paging.page_size(page_size)
        cursor = paging.decode_token(page_token, parent)
        after = str(cursor["after"]) if cursor else None
        found = await self.store.list_datasets(_line_of(parent), size + 1, after)
        page = found[:size]
        token = (
            paging.encode_token({"after": page[-1].resource_name}, parent)
            if len(found) > size
            else ""
        )
        return page, token

    # --- imports --------------------------------------------------------------

    async def import_rows(
        self,
        caller: Principal,
        name: str,
        content: bytes,
        file_format: FileFormat,
        *,
        snapshot: bool,
    ) -> ImportReport:
        _require(caller, PUBLISH_SCOPE, "importing rows")
        tenant, dataset_id = parse_dataset_name(name, "dataset")
        if not caller.can_see(tenant):
            raise NotFound(f"dataset {name} not found")
        dataset = await self._visible_dataset(caller, tenant, dataset_id)
        book = await self.addresses.address_book(dataset.tenant)
        # Seconds of columnar work: on a thread, so the server keeps answering meanwhile.
        raw = await asyncio.to_thread(read_table, content, file_format)
        if snapshot and len(raw) == 0:
            raise InvalidArgument.field(
                "content",
                "the file has no rows: as a snapshot it would delete every row of the "
                "dataset; send snapshot=false to add or change rows only",
            )
        cleaned = await asyncio.to_thread(clean, dataset, raw, book, today=self._clock())
        report = ImportReport(read=len(raw), rejected=cleaned.rejected)
        report.ignored_columns = cleaned.ignored_columns
        live = await self.store.live_rows(dataset.tenant, dataset.resource_name)
        write = await asyncio.to_thread(
            self.plan,
            dataset,
            cleaned.frame,
            live,
            snapshot=snapshot,
            report=report,
            refused_keys=cleaned.refused_keys,
        )
        if not await self.store.write_rows(dataset.tenant, dataset, write):
            raise Aborted("another import of this dataset finished first; import again")
        report.last_seq = write.last_seq
        return report

    def plan(
        self,
        dataset: Dataset,
        frame: pd.DataFrame,
        live: LiveRows,
        *,
        snapshot: bool,
        report: ImportReport,
        refused_keys: Sequence[str] = (),
    ) -> RowWrite:
        """What to write: new, changed and moved rows, and the tombstones, in columns.
        A snapshot deletes the stored rows the file does not name; a row the file names
        but cleaning refused keeps its stored version."""
        keys = frame[dataset.key_field].astype(str)
        key_index = self._key_index(dataset, keys.tolist())
        digests = row_digests(frame, dataset).view(np.int64)
        # Stored rows are matched by key as Arrow columns: a hash lookup in C++, no join.
        new_key = pa.array(key_index, type=pa.large_string())
        tenant = pa.array(frame[TENANT_COLUMN], type=pa.large_string())
        old_key = pa.array(live.key_index, type=pa.large_string())
        old_tenant = pa.array(live.tenant, type=pa.large_string())
        found = pc.index_in(new_key, value_set=old_key)
        fresh = found.is_null().to_numpy(zero_copy_only=False)
        at = found.fill_null(0).to_numpy(zero_copy_only=False)
        was = pc.take(old_tenant, found)
        moved = pc.fill_null(pc.not_equal(tenant, was), False).to_numpy(zero_copy_only=False)
        old_digest = np.asarray(live.digest, dtype=np.int64)
        stale = old_digest[at] != digests if len(old_digest) else np.zeros(len(fresh), dtype=bool)
        changed = ~fresh & ~moved & stale
        upsert = fresh | moved | changed
        gone_tenant: list[str] = was.filter(moved).to_pylist()
        gone_key: list[str] = new_key.filter(moved).to_pylist()
        removed = 0
        if snapshot:
            named = pa.concat_arrays(
                [new_key, pa.array(self._key_index(dataset, list(refused_keys)), pa.large_string())]
            )
            absent = pc.invert(pc.is_in(old_key, value_set=named))
            removed = int(pc.sum(absent).as_py() or 0)
            gone_tenant += old_tenant.filter(absent).to_pylist()
            gone_key += old_key.filter(absent).to_pylist()
        seq = dataset.last_seq
        tombstones = [
            (t, k, seq + 1 + i) for i, (t, k) in enumerate(zip(gone_tenant, gone_key, strict=True))
        ]
        seq += len(tombstones)
        # Written in (village, key) order, so the store's indexes grow at their ends.
        chosen = np.flatnonzero(upsert)
        order = pc.sort_indices(
            pa.table({"tenant": tenant.take(chosen), "key": new_key.take(chosen)}),
            sort_keys=[("tenant", "ascending"), ("key", "ascending")],
        ).to_numpy()
        chosen = chosen[order]
        count = len(chosen)
        upserts = self._chunks(
            dataset, frame, chosen, tenant.take(chosen), new_key.take(chosen), digests, seq
        )
        seq += count
        report.inserted = int(fresh.sum()) + int(moved.sum())
        report.updated = int(changed.sum())
        report.unchanged = len(frame) - count
        report.deleted = len(tombstones)
        return RowWrite(
            expected_seq=dataset.last_seq,
            last_seq=seq,
            row_count=len(live.key_index) - removed + int(fresh.sum()),
            upserts=upserts,
            tombstones=tombstones,
            update_us=_now_us(self._clock()),
        )

    def _key_index(self, dataset: Dataset, keys: list[str]) -> list[str]:
        """Keys as the store indexes them: a personal key by its keyed digest."""
        if dataset.field(dataset.key_field).is_personal:
            return list(self.sealer.keyed_digests(keys, field=_key_field(dataset)))
        return keys

    def _chunks(
        self,
        dataset: Dataset,
        frame: pd.DataFrame,
        chosen: np.ndarray,
        tenants: pa.Array,
        keys: pa.Array,
        digests: np.ndarray,
        seq: int,
    ) -> Iterator[RowChunk]:
        """The rows at positions `chosen` of `frame`, CHUNK at a time: all values as one JSON
        object, sealed for (dataset, village, key) when any of them is personal."""
        names = [f.name for f in dataset.fields]
        personal = bool(dataset.personal_fields)
        prefix = dataset.resource_name
        for start in range(0, len(chosen), CHUNK):
            positions = chosen[start : start + CHUNK]
            part = frame.iloc[positions]
            village_column, key_column = tenants.slice(start, CHUNK), keys.slice(start, CHUNK)
            village, indexes = village_column.to_pylist(), key_column.to_pylist()
            values = _json_lines(part, names)
            if personal:
                # `_sealed_record` of each row, joined over the columns.
                records = pc.binary_join_element_wise(
                    _large(prefix), village_column, key_column, _large("|")
                ).to_pylist()
                sealed = self.sealer.seal_many(values, records, field="row")
                plain = [""] * len(values)
            else:
                sealed, plain = [""] * len(values), values
            yield RowChunk(
                tenant=village,
                key_index=indexes,
                building=part[BUILDING_COLUMN].tolist(),
                plain=plain,
                sealed=sealed,
                digest=digests[positions].tolist(),
                first_seq=seq + 1 + start,
            )

    # --- subscriptions and slices ---------------------------------------------

    async def subscribe(self, caller: Principal, parent: str, dataset_name: str) -> Subscription:
        _require(caller, READ_SCOPE, "subscribing to datasets")
        if not caller.can_see(parent):
            raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
        tenant, dataset_id = parse_dataset_name(dataset_name, "subscription.dataset")
        dataset = await self._visible_dataset(caller, tenant, dataset_id)
        if not tenancy.contains(dataset.tenant, parent):
            raise InvalidArgument.field(
                "subscription.dataset", "a node subscribes to datasets published at it or above it"
            )
        _require_classification(caller, dataset.classification)
        subscription = Subscription(
            tenant=parent,
            subscription_id=new_id(SUBSCRIPTION_PREFIX),
            dataset=dataset.resource_name,
            subscriber=caller.subject,
            create_time=self._clock(),
        )
        await self.store.create_subscription(subscription)
        return subscription

    async def list_subscriptions(
        self, caller: Principal, parent: str, page_size: int, page_token: str
    ) -> tuple[list[Subscription], str]:
        _require(caller, READ_SCOPE, "reading subscriptions")
        if not caller.can_see(parent):
            raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
        size = paging.page_size(page_size)
        cursor = paging.decode_token(page_token, ["subscriptions", parent])
        after = str(cursor["after"]) if cursor else None
        found = await self.store.list_subscriptions(parent, size + 1, after)
        page = found[:size]
        token = (
            paging.encode_token({"after": page[-1].subscription_id}, ["subscriptions", parent])
            if len(found) > size
            else ""
        )
        return page, token

    async def _subscription(self, caller: Principal, tenant: str, sub_id: str) -> Subscription:
        found = (
            await self.store.get_subscription(tenant, sub_id) if caller.can_see(tenant) else None
        )
        if found is None or found.tenant != tenant:
            raise NotFound(
                f"subscription {tenancy.tenant_name(tenant)}/subscriptions/{sub_id} not found"
            )
        return found

    async def unsubscribe(self, caller: Principal, tenant: str, sub_id: str) -> None:
        _require(caller, READ_SCOPE, "ending subscriptions")
        await self._subscription(caller, tenant, sub_id)
        await self.store.delete_subscription(tenant, sub_id)

    async def sync(
        self,
        caller: Principal,
        tenant: str,
        sub_id: str,
        cursor: str,
        page_size: int,
        purpose: str,
    ) -> SlicePage:
        """Changes of the subscriber's own rows after `cursor`, masked unless revealed."""
        _require(caller, READ_SCOPE, "reading datasets")
        after = _parse_cursor(cursor)
        subscription = await self._subscription(caller, tenant, sub_id)
        dataset_tenant, dataset_id = parse_dataset_name(subscription.dataset)
        dataset = await self._visible_dataset(caller, dataset_tenant, dataset_id)
        _require_classification(caller, dataset.classification)
        reveal = caller.has_scope(UNMASK_SCOPE) and bool(purpose.strip())
        reason = check_purpose(purpose) if reveal else ""
        size = paging.page_size(page_size, default=DEFAULT_SYNC_PAGE, maximum=MAX_SYNC_PAGE)
        # The subscriber's node bounds the slice, whoever reads it.
        stored = await self.store.slice_rows(
            subscription.tenant, dataset.resource_name, after, size + 1
        )
        more = len(stored) > size
        stored = stored[:size]
        personal = dataset.personal_fields
        if reveal and personal:
            records = [
                f"{dataset.resource_name}/rows/{r.key_index}" for r in stored if not r.deleted
            ]
            if records:
                await self.audit.record_read(caller, records, personal, reason, action=READ_ACTION)
        maskers = {f.name: _masker(f) for f in dataset.fields if f.is_personal}
        rows = [self._slice_row(dataset, r, reveal, maskers) for r in stored]
        return SlicePage(rows, stored[-1].seq if stored else after, more)

    def _slice_row(
        self,
        dataset: Dataset,
        row: StoredRow,
        reveal: bool,
        maskers: dict[str, Callable[[str], str]],
    ) -> SliceRow:
        masked = not reveal and bool(dataset.personal_fields)
        if row.deleted:
            return SliceRow(row.key_index, "", row.tenant, row.building, {}, True, masked, row.seq)
        values: dict[str, str] = json.loads(row.plain) if row.plain else {}
        if row.sealed:
            opened = self.sealer.open(
                row.sealed, record=_sealed_record(dataset, row.tenant, row.key_index), field="row"
            )
            values = json.loads(opened)
            if masked:
                for name, mask in maskers.items():
                    if name in values:
                        values[name] = mask(values[name])
        key = values.get(dataset.key_field, row.key_index)
        return SliceRow(
            row.key_index, key, row.tenant, row.building, values, False, masked, row.seq
        )


# Types whose values rarely repeat: hashed value by value rather than factorised first.
_MOSTLY_UNIQUE = frozenset({FieldType.ID_NUMBER, FieldType.MOBILE, FieldType.PERSON_NAME})


def row_digests(frame: pd.DataFrame, dataset: Dataset) -> np.ndarray:
    """Each row's digest over its values and village: what the store keeps to tell a
    changed row from an unchanged one. The same numbers as pandas' `hash_pandas_object`
    over those columns (stored digests stay comparable), but each column hashed the way
    that is fastest for it: values that repeat (villages, dates) once per distinct
    value, mostly unique ones (ID numbers, phones, names, the key) directly."""
    specs: list[tuple[str, bool]] = [
        (f.name, f.type not in _MOSTLY_UNIQUE and f.name != dataset.key_field)
        for f in dataset.fields
    ]
    specs.append((TENANT_COLUMN, True))
    # pandas' combine_hash_arrays (CPython's tuple hash), column by column.
    out = np.full(len(frame), 0x345678, dtype=np.uint64)
    mult = np.uint64(1000003)
    for i, (name, repeats) in enumerate(specs):
        column = pd.util.hash_pandas_object(frame[name], index=False, categorize=repeats)
        out ^= column.to_numpy(dtype=np.uint64)
        out *= mult
        mult += np.uint64(82520 + 2 * (len(specs) - i))
    out += np.uint64(97531)
    return out


def _require(caller: Principal, scope: str, doing: str) -> None:
    if not caller.has_scope(scope):
        raise PermissionDenied(f"{doing} needs the scope {scope!r}")


def _require_classification(caller: Principal, level: Classification) -> None:
    missing = sorted(s for s in RULES[level].subscribe_scopes if not caller.has_scope(s))
    if missing:
        raise PermissionDenied(
            f"a {level.value} dataset needs the scope {', '.join(repr(s) for s in missing)}"
        )


def _line_of(path: str) -> list[str]:
    """The node and every node above it."""
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _parse_cursor(cursor: str) -> int:
    if not cursor:
        return 0
    if not cursor.isdigit() or len(cursor) > 18:
        raise InvalidArgument.field("cursor", "must be a next_cursor this method returned")
    return int(cursor)


def _key_field(dataset: Dataset) -> str:
    return f"{dataset.resource_name}.{dataset.key_field}"


def _sealed_record(dataset: Dataset, tenant: str, key_index: str) -> str:
    """Sealed values are bound to their dataset, village and key: moved, they do not open."""
    return f"{dataset.resource_name}|{tenant}|{key_index}"


def _json_lines(rows: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """Each row's values as one JSON object, built over whole Arrow columns: the cleaned
    values are text without control characters, so escaping is two replacements; a
    frame that holds anything else goes through pandas' writer."""
    if not columns:
        return ["{}"] * len(rows)
    pieces: list[object] = []
    for i, name in enumerate(columns):
        values = pa.array(rows[name], from_pandas=True)
        if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
            return _json_lines_slow(rows, columns)
        if values.null_count or pc.any(pc.match_substring_regex(values, _CONTROL)).as_py():
            return _json_lines_slow(rows, columns)
        values = pc.replace_substring(values.cast(pa.large_string()), "\\", "\\\\")
        lead = ("{" if i == 0 else ",") + json.dumps(name, ensure_ascii=False) + ':"'
        pieces += [_large(lead), pc.replace_substring(values, '"', '\\"'), _large('"')]
    pieces.append(_large("}"))
    lines: list[str] = pc.binary_join_element_wise(*pieces, _large("")).to_pylist()
    return lines


def _large(value: str) -> pa.Scalar:
    return pa.scalar(value, pa.large_string())


def _json_lines_slow(rows: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    text = rows[list(columns)].to_json(orient="records", lines=True, force_ascii=False)
    lines = text.split("\n")
    return lines[: len(rows)]


__all__ = ["AlreadyExists", "DatasetDesk", "validate_dataset"]
