"""Concurrent point credits with duplicates: the ledger stays exact under load.

The empower service is started in this process as `python -m services.empower` builds
it (`wiring.build`) and served over real gRPC on a loopback port, once on its embedded
SQLite files and once on PostgreSQL (a scratch schema under row-level security). The
load generator sends N CreditPoints calls (10,000; 1,000 in quick mode) to 100 household
accounts with 64 calls in flight; 10% of them repeat an earlier call's request_id, as a
client retrying after a lost answer would. Figures, one line per backend:

  credits/s (calls answered per second, duplicates included), p50 / p99 latency;
  then the check: each account's balance equals the sum of its unique credits and the
  sum of its ledger entries, and the ledger holds exactly one entry per request_id.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pg_scratch import drop_schema, scratch_schema  # noqa: E402

from bench.common import command_line, scaled  # noqa: E402  (sets the key ring first)
from grassroots.empower.v1 import points_service_pb2 as pb  # noqa: E402
from grassroots.empower.v1 import points_service_pb2_grpc as pb_grpc  # noqa: E402
from services.empower.config import EmpowerSettings  # noqa: E402
from services.empower.wiring import build  # noqa: E402
from services.kit.client import open_channel  # noqa: E402
from services.kit.config import ServiceSettings  # noqa: E402
from services.kit.principal import Principal  # noqa: E402
from services.kit.server import start_server  # noqa: E402

VILLAGE = "sh/jiading/anting/xingming"
PARENT = "tenants/sh-jiading-anting-xingming"
CLERK = Principal("users/bench", VILLAGE, scopes=frozenset({"points:write", "empower:read"}))
CREDITS = scaled(10_000, 1_000)
DUPLICATE_SHARE = 0.10
ACCOUNTS = 100
IN_FLIGHT = 64
SEED = 20261203


def plan() -> list[tuple[int, str, int]]:
    """(account index, request_id, amount) per call; 10% repeat an earlier call exactly."""
    rng = random.Random(SEED)
    unique = int(CREDITS * (1 - DUPLICATE_SHARE))
    calls = [(rng.randrange(ACCOUNTS), f"credit-{n}", rng.randint(1, 20)) for n in range(unique)]
    repeats = [calls[rng.randrange(unique)] for _ in range(CREDITS - unique)]
    mixed = calls + repeats
    rng.shuffle(mixed)
    return mixed


def settings(data: Path, backend: str, dsn: str) -> EmpowerSettings:
    return EmpowerSettings(
        grpc_port=0,
        host="127.0.0.1",
        database=data / "empower.sqlite3",
        backend=backend,  # type: ignore[arg-type]
        postgres_dsn=dsn,
        seal_keys="k1:" + base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        index_key=base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        bus_url=str(data / "bus.sqlite3"),
        points_fact_streams="command",
    )


async def run(backend: str, dsn: str = "") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        component = await build(settings(Path(tmp), backend, dsn))
        server = await start_server(
            "empower",
            ServiceSettings(grpc_port=0, host="127.0.0.1"),
            component,  # type: ignore[call-arg]
        )
        channel = open_channel(f"127.0.0.1:{server.port}", default_timeout=30.0)
        stub = pb_grpc.PointsServiceStub(channel)
        metadata = CLERK.to_metadata()
        try:
            names = []
            for n in range(ACCOUNTS):
                account = await stub.CreatePointsAccount(
                    pb.CreatePointsAccountRequest(
                        parent=PARENT,
                        points_account=pb.PointsAccount(
                            holder_kind=pb.PointsAccount.HOLDER_KIND_HOUSEHOLD,
                            holder=f"household/{n}",
                        ),
                    ),
                    metadata=metadata,
                )
                names.append(account.name)
            calls = plan()
            latencies: list[float] = []
            queue: asyncio.Queue[tuple[int, str, int]] = asyncio.Queue()
            for call in calls:
                queue.put_nowait(call)

            async def worker() -> None:
                while not queue.empty():
                    index, request_id, amount = queue.get_nowait()
                    started = time.perf_counter()
                    await stub.CreditPoints(
                        pb.CreditPointsRequest(
                            account=names[index], amount=amount, request_id=request_id
                        ),
                        metadata=metadata,
                    )
                    latencies.append(time.perf_counter() - started)

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
            elapsed = time.perf_counter() - began
            latencies.sort()
            p50 = latencies[len(latencies) // 2] * 1000
            p99 = latencies[int(len(latencies) * 0.99)] * 1000
            print(
                f"{backend:<10} {len(calls):,} credits ({len(calls) - len(set(calls)):,} "
                f"duplicates), {IN_FLIGHT} in flight: {len(calls) / elapsed:,.0f} credits/s, "
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
                flush=True,
            )
            expected = [0] * ACCOUNTS
            for index, _, amount in set(calls):
                expected[index] += amount
            entries = 0
            for index, name in enumerate(names):
                account = await stub.GetPointsAccount(
                    pb.GetPointsAccountRequest(name=name), metadata=metadata
                )
                statement_sum, token = 0, ""
                while True:
                    page = await stub.ListLedgerEntries(
                        pb.ListLedgerEntriesRequest(parent=name, page_size=1000, page_token=token),
                        metadata=metadata,
                    )
                    statement_sum += sum(e.amount for e in page.ledger_entries)
                    entries += len(page.ledger_entries)
                    token = page.next_page_token
                    if not token:
                        break
                if not account.balance == expected[index] == statement_sum:
                    raise SystemExit(
                        f"{backend}: account {index} balance {account.balance}, expected "
                        f"{expected[index]}, entries sum {statement_sum}"
                    )
            if entries != len(set(calls)):
                raise SystemExit(f"{backend}: {entries} entries for {len(set(calls))} request_ids")
            print(
                f"{backend:<10} balances exact: {ACCOUNTS} accounts, {entries:,} entries, "
                f"one per request_id",
                flush=True,
            )
        finally:
            await channel.close()
            await server.stop()
            await component.close()


def main() -> None:
    asyncio.run(run("sqlite"))
    schema, dsn = scratch_schema("bench_points")
    try:
        asyncio.run(run("postgres", dsn))
    finally:
        drop_schema(schema)


if __name__ == "__main__":
    command_line(__doc__)
    main()
