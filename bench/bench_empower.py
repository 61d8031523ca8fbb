"""Data returned to the grassroots: ingesting a district's residents register with
cleaning, and villages pulling their masked slices.

Runs the empower datasets domain in-process, once on the embedded SQLite store (the
default backend) and once on PostgreSQL (a scratch schema under row-level security),
so the figures are the ingest pipeline's and the store's, without a network hop; each
line names its store (`python bench/bench_empower.py sqlite` runs one of them):

  1. ingest: a CSV residents register of N rows (1,000,000; quick 100,000) read,
     cleaned column by column (GB 11643 check characters, mobile numbers, addresses
     against the address list, de-duplication by key), compared with what is stored,
     sealed and written: rows/s (target >= 50,000 rows/s), and reading with cleaning alone;
  2. slice: a village subscriber (datasets:read, no sensitive scope) pulls its whole
     slice, about 3,000 of the N rows, masked: p50 / p95 ms over 40 villages
     (target p95 < 200 ms);
  3. re-import of the same file with 1% of rows changed and 0.5% absent: rows/s, and
     the next pull returns exactly those changes and tombstones.
About 2% of the generated rows are wrong on purpose (bad check characters, phones,
unknown addresses, repeated keys) and every one must be in the rejected-rows report.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pg_scratch import drop_schema, scratch_schema  # noqa: E402

from bench.common import command_line, scaled  # noqa: E402
from services.empower.domain.audit import AuditLog  # noqa: E402
from services.empower.domain.datasets.addresses import AddressBook  # noqa: E402
from services.empower.domain.datasets.cleaning import clean  # noqa: E402
from services.empower.domain.datasets.files import FileFormat, read_table  # noqa: E402
from services.empower.domain.datasets.model import (  # noqa: E402
    Classification,
    Dataset,
    DatasetField,
    FieldType,
)
from services.empower.domain.datasets.service import DatasetDesk  # noqa: E402
from services.empower.store.datasets_postgres import PostgresDatasetStore  # noqa: E402
from services.empower.store.datasets_sqlite import SqliteDatasetStore  # noqa: E402
from services.empower.store.people_postgres import PostgresPeopleStore  # noqa: E402
from services.empower.store.people_sqlite import SqlitePeopleStore  # noqa: E402
from services.kit.principal import Principal  # noqa: E402
from services.kit.sealing import Sealer  # noqa: E402

ROWS = scaled(1_000_000, 100_000)
PER_VILLAGE = 3_000
BUILDINGS_PER_VILLAGE = 200
DISTRICT = "sh/jiading"
TOWN = "sh/jiading/bench"
SLICES = scaled(40, 10)
_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_CHECK = np.array(list("10X98765432"))
BACKENDS = ("sqlite", "postgres")

REGISTER = Dataset(
    tenant="",
    dataset_id="",
    display_name="Residents register",
    description="Synthetic residents of a district.",
    classification=Classification.INTERNAL,
    fields=(
        DatasetField("id_number", FieldType.ID_NUMBER, required=True),
        DatasetField("name", FieldType.PERSON_NAME, required=True),
        DatasetField("phone", FieldType.MOBILE),
        DatasetField("address", FieldType.ADDRESS, required=True),
        DatasetField("birth_date", FieldType.DATE),
        DatasetField("lives_alone", FieldType.BOOLEAN),
    ),
    key_field="id_number",
)


def verdict(ok: bool) -> str:
    return "met" if ok else "missed"


class StaticAddresses:
    def __init__(self, book: AddressBook) -> None:
        self.book = book

    async def address_book(self, tenant: str) -> AddressBook:
        return self.book


def village_slugs(count: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [
        f"v{letters[i // 676 % 26]}{letters[i // 26 % 26]}{letters[i % 26]}" for i in range(count)
    ]


def register_csv(rows: int, slugs: list[str], rng: np.random.Generator) -> tuple[bytes, int]:
    """The register as CSV bytes, and how many rows are wrong on purpose."""
    serial = np.arange(rows, dtype=np.int64)
    # Unique numbers: a birth date among 70 years of days, then a 3-digit sequence.
    born = np.datetime64("1930-01-01") + (serial % 25_550).astype("timedelta64[D]")
    dates = np.char.replace(np.datetime_as_string(born, unit="D"), "-", "")
    first17 = np.char.add(
        np.char.add("310114", dates), np.char.zfill((serial // 25_550).astype(str), 3)
    )
    digits = np.frombuffer("".join(first17.tolist()).encode(), dtype=np.uint8).reshape(-1, 17) - 48
    check = _CHECK[(digits.astype(np.int64) @ _WEIGHTS) % 11]
    ids = np.char.add(first17, check)
    phones = np.char.add("139", np.char.zfill((serial * 7919 % 10**8).astype(str), 8))
    village = serial // PER_VILLAGE % len(slugs)
    building = serial % BUILDINGS_PER_VILLAGE + 1
    slug_array = np.array(slugs)[village]
    addresses = np.char.add(np.char.add(slug_array, " b"), building.astype(str))
    names = np.char.add("Resident ", serial.astype(str))
    births = np.datetime_as_string(born, unit="D")
    alone = np.where(serial % 9 == 0, "yes", "no")
    bad = 0
    broken = serial % 50 == 7  # 2%: one defect each, of four kinds
    kinds = serial % 4
    ids = np.where(
        broken & (kinds == 0), np.char.add(first17, np.where(check == "0", "1", "0")), ids
    )
    phones = np.where(broken & (kinds == 1), "12345", phones)
    addresses = np.where(broken & (kinds == 2), "nowhere b1", addresses)
    repeat = broken & (kinds == 3) & (serial > 0)
    ids = np.where(repeat, np.roll(ids, 1), ids)
    bad = int(broken.sum()) - int((broken & (kinds == 3) & (serial == 0)).sum())
    lines = ["id_number,name,phone,address,birth_date,lives_alone"]
    columns = [ids, names, phones, addresses, births, alone]
    joined = columns[0]
    for column in columns[1:]:
        joined = np.char.add(np.char.add(joined, ","), column)
    lines.extend(joined.tolist())
    return ("\n".join(lines) + "\n").encode(), bad


def setup() -> tuple[list[str], dict[str, str], AddressBook, bytes, int]:
    villages = max(ROWS // PER_VILLAGE, 1)
    slugs = village_slugs(villages)
    tenants = {slug: f"{TOWN}/{slug}" for slug in slugs}
    book = AddressBook(
        {
            f"{slug}-b{b:04d}": tenants[slug]
            for slug in slugs
            for b in range(1, BUILDINGS_PER_VILLAGE + 1)
        }
    )
    rng = np.random.default_rng(20261203)
    started = time.perf_counter()
    content, bad = register_csv(ROWS, slugs, rng)
    print(
        f"generated {ROWS:,} rows ({len(content) / 1e6:.0f} MB CSV, {bad:,} wrong on purpose) "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return slugs, tenants, book, content, bad


async def open_stores(backend: str, folder: Path, dsn: str) -> tuple[Any, Any]:
    if backend == "postgres":
        store = await PostgresDatasetStore.open(dsn, max_connections=4)
        people = await PostgresPeopleStore.open(dsn, max_connections=4)
        return store, people
    return SqliteDatasetStore(folder / "datasets.sqlite3"), SqlitePeopleStore(
        folder / "people.sqlite3"
    )


async def run(
    backend: str,
    slugs: list[str],
    tenants: dict[str, str],
    book: AddressBook,
    content: bytes,
    bad: int,
    dsn: str = "",
) -> None:
    tag = f"[{backend}]"
    sealer = Sealer.generate("bench")
    with tempfile.TemporaryDirectory() as folder:
        store, people = await open_stores(backend, Path(folder), dsn)
        desk = DatasetDesk(store, StaticAddresses(book), AuditLog(people), sealer)
        district = Principal(
            "users/district", DISTRICT, scopes=frozenset({"datasets:publish", "datasets:read"})
        )
        dataset = await desk.create_dataset(district, DISTRICT, "residents", replace(REGISTER))
        started, cpu = time.perf_counter(), time.process_time()
        report = await desk.import_rows(
            district, dataset.resource_name, content, FileFormat.CSV, snapshot=True
        )
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert len(report.rejected) == bad, (len(report.rejected), bad)
        assert report.inserted == ROWS - bad
        print(
            f"{tag} 1. ingest with cleaning: {ROWS:,} rows in {seconds:.1f} s = "
            f"{ROWS / seconds:,.0f} rows/s (target >= 50,000 rows/s: "
            f"{verdict(ROWS / seconds >= 50_000)}); {report.inserted:,} "
            f"stored, {len(report.rejected):,} rejected with reasons; "
            f"{ROWS / cpu:,.0f} rows per CPU second (load average {os.getloadavg()[0]:.1f})"
        )
        started = time.perf_counter()
        clean(dataset, read_table(content, FileFormat.CSV), book)
        alone = time.perf_counter() - started
        print(
            f"{tag}    of which reading and cleaning alone: {ROWS / alone:,.0f} rows/s "
            f"({alone / seconds:.0%} of the ingest; the rest compares, seals and writes)"
        )

        timings = []
        sizes = []
        for i in range(SLICES):
            slug = slugs[(i * 7) % len(slugs)]
            reader = Principal(
                f"users/secretary-{slug}", tenants[slug], scopes=frozenset({"datasets:read"})
            )
            subscription = await desk.subscribe(reader, tenants[slug], dataset.resource_name)
            t0 = time.perf_counter()
            page = await desk.sync(
                reader, tenants[slug], subscription.subscription_id, "", 5000, ""
            )
            timings.append((time.perf_counter() - t0) * 1000)
            assert not page.more and all(r.tenant == tenants[slug] and r.masked for r in page.rows)
            sizes.append(len(page.rows))
        p50, p95 = np.percentile(timings, [50, 95])
        print(
            f"{tag} 2. village slice with masking: {np.mean(sizes):,.0f} of {ROWS:,} rows "
            "per village, "
            f"p50 {p50:.1f} ms, p95 {p95:.1f} ms over {SLICES} villages (target p95 < 200 ms: "
            f"{verdict(p95 < 200)}); "
            f"{np.mean(sizes) / (p50 / 1000):,.0f} rows/s"
        )

        text = content.decode().split("\n")
        header, body = text[0], [line for line in text[1:] if line]
        for i in range(0, len(body), 100):  # 1% change their phone
            parts = body[i].split(",")
            parts[2] = "13800000000"
            body[i] = ",".join(parts)
        kept = [line for i, line in enumerate(body) if i % 200 != 1]  # 0.5% leave
        again = ("\n".join([header, *kept]) + "\n").encode()
        started = time.perf_counter()
        second = await desk.import_rows(
            district, dataset.resource_name, again, FileFormat.CSV, snapshot=True
        )
        seconds = time.perf_counter() - started
        print(
            f"{tag} 3. re-import, 1% changed and 0.5% absent: {len(kept):,} rows in "
            f"{seconds:.1f} s = {len(kept) / seconds:,.0f} rows/s; {second.updated:,} updated, "
            f"{second.deleted:,} tombstones, {second.unchanged:,} unchanged"
        )
        for closing in (store, people):
            closed = closing.close()
            if asyncio.isfuture(closed):
                await closed


def main() -> None:
    chosen = sys.argv[1:] or list(BACKENDS)
    unknown = sorted(set(chosen) - set(BACKENDS))
    if unknown:
        raise SystemExit(f"unknown store {', '.join(unknown)}: choose from {', '.join(BACKENDS)}")
    data = setup()
    for backend in chosen:
        if backend == "postgres":
            schema, dsn = scratch_schema("bench_empower")
            try:
                asyncio.run(run(backend, *data, dsn=dsn))
            finally:
                drop_schema(schema)
        else:
            asyncio.run(run(backend, *data))


if __name__ == "__main__":
    command_line(__doc__)
    main()
