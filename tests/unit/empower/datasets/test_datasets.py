"""Publishing, importing and the slices villages receive, on both stores."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.empower.domain.datasets.files import FileFormat
from services.empower.domain.datasets.model import Classification, DatasetField, FieldType
from services.empower.domain.datasets.ports import RowChunk, RowWrite
from services.kit.errors import (
    Aborted,
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.kit.masking import SENSITIVE_SCOPE
from services.kit.tenancy import ALL_TENANTS
from tests.unit.empower.datasets.conftest import (
    DISTRICT,
    RESIDENTS,
    TOWN,
    XIANGYANG,
    XINGMING,
    caller,
    csv,
    id_number,
    published,
    publisher,
    resident_line,
)

READER = ("datasets:read",)


def secretary(village: str, *more: str):
    return caller(village, "datasets:read", *more, subject=f"users/secretary-{village[-4:]}")


async def import_csv(desk, dataset, *lines: str, snapshot: bool = True):
    return await desk.import_rows(
        publisher(), dataset.resource_name, csv(*lines), FileFormat.CSV, snapshot=snapshot
    )


async def pull(desk, village: str, dataset, cursor: str = "", *more: str, purpose: str = ""):
    who = secretary(village, *more)
    subs, _ = await desk.list_subscriptions(who, village, 50, "")
    mine = [s for s in subs if s.dataset == dataset.resource_name and s.tenant == village]
    sub = mine[0] if mine else await desk.subscribe(who, village, dataset.resource_name)
    return await desk.sync(who, village, sub.subscription_id, cursor, 1000, purpose)


async def test_a_district_publishes_and_a_village_gets_only_its_own_rows_masked(backend):
    desk = backend.desk
    dataset = await published(desk)
    report = await import_csv(
        desk,
        dataset,
        *(resident_line(n, "xingming") for n in range(1, 4)),
        *(resident_line(n, "xiangyang") for n in range(4, 9)),
    )
    assert (report.read, report.inserted, report.rejected) == (8, 8, [])
    page = await pull(desk, XINGMING, dataset)
    assert len(page.rows) == 3 and not page.more
    assert {r.tenant for r in page.rows} == {XINGMING}
    first = page.rows[0]
    assert first.masked
    assert first.values["id_number"].startswith("310***********")
    assert first.values["phone"].startswith("139****")
    assert first.values["name"] == "Z*** M***"
    assert first.values["address"].startswith("xingming-b")
    assert first.key == first.values["id_number"]  # the key is personal: masked too
    assert len((await pull(desk, XIANGYANG, dataset)).rows) == 5


async def test_an_unmasked_read_needs_the_scope_and_a_purpose_and_is_audited(backend):
    desk = backend.desk
    dataset = await published(desk)
    await import_csv(desk, dataset, resident_line(1), resident_line(2))
    masked = await pull(desk, XINGMING, dataset, "", SENSITIVE_SCOPE)  # no purpose: masked
    assert all(r.masked for r in masked.rows)
    assert await desk.audit.store.list_audit(ALL_TENANTS, _no_filter(), 10, None) == []
    page = await pull(desk, XINGMING, dataset, "", SENSITIVE_SCOPE, purpose="home visits")
    assert sorted(r.values["id_number"] for r in page.rows) == [id_number(1), id_number(2)]
    assert not any(r.masked for r in page.rows)
    [entry] = await desk.audit.store.list_audit(ALL_TENANTS, _no_filter(), 10, None)
    assert entry.action == "datasets.read"
    assert entry.purpose == "home visits"
    assert entry.tenant == XINGMING
    assert set(entry.fields) == {"id_number", "name", "phone"}
    assert len(entry.records) == 2
    assert all(r.startswith(dataset.resource_name + "/rows/") for r in entry.records)
    # Without the scope a purpose changes nothing and nothing is audited.
    plain = await pull(desk, XINGMING, dataset, "", purpose="curiosity")
    assert all(r.masked for r in plain.rows)
    assert len(await desk.audit.store.list_audit(ALL_TENANTS, _no_filter(), 10, None)) == 1


async def test_quotes_backslashes_and_chinese_in_values_arrive_as_written(backend):
    desk = backend.desk
    dataset = await published(desk)
    await import_csv(desk, dataset, resident_line(1, name='"Zhou ""Mei"" \\ 周美兰"'))
    page = await pull(desk, XINGMING, dataset, "", SENSITIVE_SCOPE, purpose="home visits")
    assert page.rows[0].values["name"] == 'Zhou "Mei" \\ 周美兰'


async def test_values_stored_in_the_clear_keep_backslashes_and_quotes(backend):
    """A public dataset's values are stored unsealed, so they reach the store's bulk
    write (COPY on PostgreSQL) with their backslashes, and come back as written."""
    desk = backend.desk
    fields = (
        DatasetField("code", FieldType.STRING, required=True),
        DatasetField("address", FieldType.ADDRESS, required=True),
        DatasetField("note", FieldType.STRING),
    )
    dataset = await published(
        desk, "shops", classification=Classification.PUBLIC, fields=fields, key_field="code"
    )
    content = 'code,address,note\nC:\\shop,xingming b1,"say ""hi"" \\n, 早"\nplain,xingming b2,\n'
    report = await desk.import_rows(
        publisher(), dataset.resource_name, content.encode(), FileFormat.CSV, snapshot=True
    )
    assert (report.inserted, report.rejected) == (2, [])
    rows = {r.key: r.values for r in (await pull(desk, XINGMING, dataset)).rows}
    assert rows["C:\\shop"]["note"] == 'say "hi" \\n, 早'
    assert rows["plain"] == {"code": "plain", "address": "xingming-b0002", "note": ""}


def test_row_digests_are_pandas_hashes_so_stored_digests_stay_comparable():
    """Rows imported before keep matching: the digest is pandas' row hash, however the
    columns are hashed on the way."""
    import pandas as pd

    from services.empower.domain.datasets.cleaning import TENANT_COLUMN
    from services.empower.domain.datasets.service import row_digests

    rows = 50
    frame = pd.DataFrame(
        {
            "id_number": [id_number(n) for n in range(rows)],
            "name": [f"周美兰 {n % 7}" for n in range(rows)],
            "phone": ["" if n % 3 else f"1390000{n:04d}" for n in range(rows)],
            "address": [f"xingming-b{n % 4:04d}" for n in range(rows)],
            "birth_date": ["1952-03-14"] * rows,
            "lives_alone": ["true", "false"] * (rows // 2),
            "household_size": [str(n % 5) for n in range(rows)],
            TENANT_COLUMN: [XINGMING, XIANGYANG] * (rows // 2),
        },
        dtype="str",
    )
    columns = [f.name for f in RESIDENTS.fields] + [TENANT_COLUMN]
    expected = pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()
    assert (row_digests(frame, RESIDENTS) == expected).all()
    assert len(set(expected.tolist())) == rows


def _no_filter():
    from services.empower.domain.people_model import AuditFilter

    return AuditFilter("", "", None, None)


async def test_incremental_sync_returns_changes_since_the_cursor_and_tombstones(backend):
    desk = backend.desk
    dataset = await published(desk)
    await import_csv(desk, dataset, *(resident_line(n) for n in range(1, 6)))
    first = await pull(desk, XINGMING, dataset)
    assert len(first.rows) == 5
    cursor = str(first.next_seq)
    assert (await pull(desk, XINGMING, dataset, cursor)).rows == []
    # Row 2 changes its phone, row 4 leaves the register, row 6 arrives, the rest stay.
    report = await import_csv(
        desk,
        dataset,
        resident_line(1),
        resident_line(2, phone="13800000000"),
        resident_line(3),
        resident_line(5),
        resident_line(6),
    )
    assert (report.inserted, report.updated, report.unchanged, report.deleted) == (1, 1, 3, 1)
    changes = await pull(desk, XINGMING, dataset, cursor)
    assert len(changes.rows) == 3
    tombstones = [r for r in changes.rows if r.deleted]
    assert len(tombstones) == 1 and tombstones[0].values == {}
    left = next(r for r in first.rows if r.key.endswith(id_number(4)[-4:]))
    assert tombstones[0].row_id == left.row_id
    live = {r.values["phone"] for r in changes.rows if not r.deleted}
    assert live == {"138****0000", "139****0006"}
    again = await pull(desk, XINGMING, dataset, str(changes.next_seq))
    assert again.rows == [] and again.next_seq == changes.next_seq
    assert (await desk.get_dataset(publisher(), dataset.resource_name)).row_count == 5


async def test_a_snapshot_keeps_the_stored_row_of_a_line_cleaning_refused(backend):
    """A typo in one field of a re-import must not delete the row the line meant to
    change: only rows the file does not name at all are deleted."""
    desk = backend.desk
    dataset = await published(desk)
    await import_csv(desk, dataset, *(resident_line(n) for n in range(1, 5)))
    report = await import_csv(
        desk,
        dataset,
        resident_line(1),
        resident_line(2, phone="12"),  # not a mobile number: refused
        resident_line(3, address="nowhere 1"),  # no such building: refused
    )
    assert len(report.rejected) == 2 and report.deleted == 1  # only row 4 is gone
    live = [r for r in (await pull(desk, XINGMING, dataset)).rows if not r.deleted]
    assert len(live) == 3
    assert (await desk.get_dataset(publisher(), dataset.resource_name)).row_count == 3


async def test_a_snapshot_of_no_rows_is_refused_and_deletes_nothing(backend):
    desk = backend.desk
    dataset = await published(desk)
    await import_csv(desk, dataset, *(resident_line(n) for n in range(1, 3)))
    with pytest.raises(InvalidArgument) as refused:
        await import_csv(desk, dataset)  # the header alone
    [violation] = refused.value.violations
    assert violation.field == "content" and "snapshot=false" in violation.description
    assert (await desk.get_dataset(publisher(), dataset.resource_name)).row_count == 2
    added = await import_csv(desk, dataset, snapshot=False)
    assert (added.inserted, added.deleted) == (0, 0)


async def test_a_row_that_moves_village_leaves_a_tombstone_in_the_old_one(backend):
    desk = backend.desk
    dataset = await published(desk)
    await import_csv(desk, dataset, resident_line(1, "xingming"), resident_line(2, "xingming"))
    cursor_x = str((await pull(desk, XINGMING, dataset)).next_seq)
    cursor_y = str((await pull(desk, XIANGYANG, dataset)).next_seq)
    await import_csv(desk, dataset, resident_line(1, "xiangyang"), resident_line(2, "xingming"))
    left = await pull(desk, XINGMING, dataset, cursor_x)
    arrived = await pull(desk, XIANGYANG, dataset, cursor_y)
    assert [r.deleted for r in left.rows] == [True]
    assert [(r.deleted, r.tenant) for r in arrived.rows] == [(False, XIANGYANG)]
    assert arrived.rows[0].values["id_number"] == "310***********" + id_number(1)[-4:]


async def test_merge_imports_keep_rows_absent_from_the_file(backend):
    desk = backend.desk
    dataset = await published(desk)
    await import_csv(desk, dataset, resident_line(1), resident_line(2))
    report = await import_csv(desk, dataset, resident_line(3), snapshot=False)
    assert (report.inserted, report.deleted) == (1, 0)
    assert len((await pull(desk, XINGMING, dataset)).rows) == 3


async def test_rejected_rows_are_reported_and_the_rest_is_stored(backend):
    desk = backend.desk
    dataset = await published(desk)
    bad_check = id_number(9)[:17] + ("0" if id_number(9)[17] != "0" else "1")
    report = await import_csv(
        desk,
        dataset,
        resident_line(1),
        resident_line(9, id_number=bad_check),
        resident_line(1, name="Duplicate"),
        resident_line(3, address="nowhere 1"),
    )
    assert report.inserted == 1
    assert [(r.row_number, r.field) for r in report.rejected] == [
        (3, "id_number"),
        (4, "id_number"),
        (5, "address"),
    ]


async def test_a_village_cannot_publish_and_publishing_checks_the_schema(backend):
    desk = backend.desk
    with pytest.raises(InvalidArgument) as refused:
        await desk.create_dataset(
            caller(XINGMING, "datasets:publish"), XINGMING, "mine", replace(RESIDENTS)
        )
    assert refused.value.violations[0].field == "parent"
    with pytest.raises(PermissionDenied):
        await desk.create_dataset(secretary(XINGMING), DISTRICT, "x", replace(RESIDENTS))
    with pytest.raises(NotFound):  # another district's node is not there for this publisher
        await desk.create_dataset(publisher(), "sh/baoshan", "x", replace(RESIDENTS))
    cases = [
        ({"key_field": "nope"}, "dataset.key_field"),
        ({"key_field": "phone"}, "dataset.key_field"),  # not required
        ({"display_name": " "}, "dataset.display_name"),
        ({"classification": Classification.PUBLIC}, "dataset.classification"),
        ({"fields": RESIDENTS.fields[:3]}, "dataset.fields"),  # no address
        ({"fields": (*RESIDENTS.fields, RESIDENTS.fields[0])}, "dataset.fields[7].name"),
        (
            {"fields": (*RESIDENTS.fields, DatasetField("Bad Name", FieldType.STRING))},
            "dataset.fields[7].name",
        ),
    ]
    for changes, field in cases:
        with pytest.raises(InvalidArgument) as refused:
            await published(desk, **changes)
        assert refused.value.violations[0].field == field, changes
    with pytest.raises(InvalidArgument) as refused:
        await published(desk, "Residents!")
    assert refused.value.violations[0].field == "dataset_id"
    await published(desk)
    with pytest.raises(AlreadyExists):
        await published(desk)


async def test_datasets_are_seen_at_and_below_their_publisher_only(backend):
    desk = backend.desk
    dataset = await published(desk)
    for node in (DISTRICT, TOWN, XINGMING):
        found, _ = await desk.list_datasets(secretary(node), node, 50, "")
        assert [d.resource_name for d in found] == [dataset.resource_name]
    other = caller("sh/baoshan", *READER)
    assert (await desk.list_datasets(other, "sh/baoshan", 50, ""))[0] == []
    with pytest.raises(NotFound):
        await desk.get_dataset(other, dataset.resource_name)
    with pytest.raises(NotFound):
        await desk.subscribe(other, "sh/baoshan", dataset.resource_name)


async def test_subscriptions_belong_to_their_village(backend):
    desk = backend.desk
    dataset = await published(desk)
    await import_csv(desk, dataset, resident_line(1, "xingming"), resident_line(2, "xiangyang"))
    sub = await desk.subscribe(secretary(XINGMING), XINGMING, dataset.resource_name)
    with pytest.raises(AlreadyExists):
        await desk.subscribe(secretary(XINGMING), XINGMING, dataset.resource_name)
    # Another village can neither read nor end it, and learns nothing about it.
    for action in (
        desk.sync(secretary(XIANGYANG), XINGMING, sub.subscription_id, "", 10, ""),
        desk.sync(secretary(XIANGYANG), XIANGYANG, sub.subscription_id, "", 10, ""),
        desk.unsubscribe(secretary(XIANGYANG), XIANGYANG, sub.subscription_id),
    ):
        with pytest.raises(NotFound):
            await action
    # The town above reads the village's subscription: still only the village's rows.
    page = await desk.sync(secretary(TOWN), XINGMING, sub.subscription_id, "", 10, "")
    assert [r.tenant for r in page.rows] == [XINGMING]
    listed, _ = await desk.list_subscriptions(secretary(TOWN), TOWN, 10, "")
    assert [s.resource_name for s in listed] == [sub.resource_name]
    assert (await desk.list_subscriptions(secretary(XIANGYANG), XIANGYANG, 10, ""))[0] == []
    await desk.unsubscribe(secretary(XINGMING), XINGMING, sub.subscription_id)
    with pytest.raises(NotFound):
        await desk.sync(secretary(XINGMING), XINGMING, sub.subscription_id, "", 10, "")


async def test_classification_decides_who_may_subscribe(backend):
    desk = backend.desk
    core = await published(desk, "core-register", classification=Classification.CORE)
    with pytest.raises(PermissionDenied, match="people:read"):
        await desk.subscribe(secretary(XINGMING), XINGMING, core.resource_name)
    allowed = secretary(XINGMING, "people:read", SENSITIVE_SCOPE)
    assert (await desk.subscribe(allowed, XINGMING, core.resource_name)).tenant == XINGMING


async def test_bad_cursors_and_paging(backend):
    desk = backend.desk
    dataset = await published(desk)
    await import_csv(desk, dataset, *(resident_line(n) for n in range(1, 8)))
    who = secretary(XINGMING)
    sub = await desk.subscribe(who, XINGMING, dataset.resource_name)
    for bad in ("-1", "abc", "9" * 30):
        with pytest.raises(InvalidArgument) as refused:
            await desk.sync(who, XINGMING, sub.subscription_id, bad, 10, "")
        assert refused.value.violations[0].field == "cursor"
    seen = []
    cursor = ""
    while True:
        page = await desk.sync(who, XINGMING, sub.subscription_id, cursor, 3, "")
        seen += page.rows
        cursor = str(page.next_seq)
        if not page.more:
            break
    assert len(seen) == 7 and len({r.row_id for r in seen}) == 7


async def test_an_import_planned_against_an_old_sequence_writes_nothing(backend):
    desk = backend.desk
    dataset = await published(desk)
    await import_csv(desk, dataset, resident_line(1))
    stale = RowWrite(0, 5, 1, [RowChunk([XINGMING], ["k"], [""], ["{}"], [""], [0], 5)], [], 0)
    assert await backend.store.write_rows(DISTRICT, dataset, stale) is False
    assert len((await pull(desk, XINGMING, dataset)).rows) == 1

    class Racing:
        """A store whose sequence moves between planning and writing."""

        def __getattr__(self, name):
            return getattr(backend.store, name)

        async def write_rows(self, scope, dataset, write):
            return False

    desk.store = Racing()
    with pytest.raises(Aborted):
        await import_csv(desk, dataset, resident_line(2))


async def test_personal_values_are_sealed_at_rest(backend, tmp_path):
    desk = backend.desk
    dataset = await published(desk)
    await import_csv(desk, dataset, resident_line(1, phone="13955501234"))
    if backend.name == "sqlite":
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("datasets.sqlite3*"))
    else:
        import psycopg

        async with await psycopg.AsyncConnection.connect(backend.dsn) as conn:
            cur = await conn.execute("SELECT t::text FROM dataset_rows t")
            raw = "\n".join(r[0] for r in await cur.fetchall()).encode()
    assert raw
    for secret in (id_number(1).encode(), b"13955501234", b"Zhou Meilan1"):
        assert secret not in raw
