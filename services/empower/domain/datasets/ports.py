"""What the datasets need from storage.

Every method takes the tenant `subtree` of the unit of work (a tenant path, or
ALL_TENANTS for reading dataset descriptions, which the domain filters by the
caller's line of ancestors); stores filter rows by it and PostgreSQL enforces it
again with row-level security.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.empower.domain.datasets.model import Dataset, StoredRow, Subscription

Upsert = tuple[str, str, str, str, str, int, int]


@dataclass(frozen=True)
class RowChunk:
    """Added or changed rows as columns (row i is item i of each), their sync positions
    consecutive from `first_seq`: a store writes a chunk in bulk (COPY on PostgreSQL)
    without a Python object per row on the way."""

    tenant: Sequence[str]
    key_index: Sequence[str]
    building: Sequence[str]
    plain: Sequence[str]
    sealed: Sequence[str]
    digest: Sequence[int]
    first_seq: int

    def __len__(self) -> int:
        return len(self.tenant)

    @property
    def seq(self) -> range:
        return range(self.first_seq, self.first_seq + len(self.tenant))

    def rows(self) -> Iterator[Upsert]:
        """(tenant, key_index, building, plain, sealed, digest, seq) per row."""
        return zip(
            self.tenant,
            self.key_index,
            self.building,
            self.plain,
            self.sealed,
            self.digest,
            self.seq,
            strict=True,
        )


@dataclass(frozen=True)
class LiveRows:
    """The live rows of a dataset as columns: enough to tell what an import changes."""

    key_index: list[str]
    tenant: list[str]
    digest: list[int]


@dataclass(frozen=True)
class RowWrite:
    """One import's changes, applied in one transaction if nobody imported meanwhile."""

    expected_seq: int
    last_seq: int
    row_count: int
    # The added and changed rows, chunk by chunk, each made while the store writes the
    # previous one (sealing is the slow part).
    upserts: Iterable[RowChunk]
    # (tenant, key_index, seq) per deleted row.
    tombstones: Sequence[tuple[str, str, int]]
    update_us: int


class DatasetStore(Protocol):
    async def create_dataset(self, dataset: Dataset) -> None:
        """AlreadyExists when the publisher already has a dataset with this id."""
        ...

    async def get_dataset(self, tenant: str, dataset_id: str) -> Dataset | None: ...

    async def list_datasets(
        self, tenants: Sequence[str], limit: int, after: str | None
    ) -> list[Dataset]:
        """Datasets published at any of `tenants`, by resource name, after `after`."""
        ...

    async def live_rows(self, subtree: str, dataset: str) -> LiveRows: ...

    async def write_rows(self, subtree: str, dataset: Dataset, write: RowWrite) -> bool:
        """Apply `write`; False (nothing written) when the dataset's sequence moved."""
        ...

    async def slice_rows(
        self, subtree: str, dataset: str, after_seq: int, limit: int
    ) -> list[StoredRow]:
        """Changes of rows in `subtree` with seq > after_seq, oldest first."""
        ...

    async def create_subscription(self, subscription: Subscription) -> None:
        """AlreadyExists when the node already subscribes to the dataset."""
        ...

    async def get_subscription(self, subtree: str, subscription_id: str) -> Subscription | None: ...

    async def list_subscriptions(
        self, subtree: str, limit: int, after: str | None
    ) -> list[Subscription]: ...

    async def delete_subscription(self, subtree: str, subscription_id: str) -> bool: ...
