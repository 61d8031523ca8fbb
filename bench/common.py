"""What the benchmarks share: quick mode, the import path and the principal key ring.

`BENCH_QUICK=1` (what `make test` runs) shrinks every benchmark to a few seconds: the
same code paths and checks on smaller inputs, still printing figures, so a benchmark
that breaks fails the test suite. Figures from quick runs are not comparable with the
targets; full runs (`make bench`) are.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from services.kit import signing  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
T = TypeVar("T")

# In-process servers verify the principals the benchmark signs: one ring for both.
os.environ.setdefault(signing.KEYS_VARIABLE, signing.generate_keys_value("bench"))

# Benchmarks measure the platform, not its per-tenant budget (6,000 requests a minute by
# default, in bursts of 1,000): every stack a benchmark starts lifts it.
UNTHROTTLED_GATEWAY_ENV = {"GRASSROOTS_GATEWAY_TENANT_REQUESTS_PER_MINUTE": "100000000"}


# Printed by a benchmark run in quick mode, beside its verdicts.
QUICK_NOTE = "(quick mode: smaller inputs, figures not comparable with the targets)"


def scaled(full: T, quick: T) -> T:
    """`full` normally, `quick` in quick mode."""
    return quick if QUICK else full


def command_line(doc: str | None, parts: dict[str, str] | None = None) -> str | None:
    """The part of a benchmark the command line names (None: all of it). `--help` prints
    the module's docstring, and anything else is refused, so a mistyped option does not
    start a run of several minutes."""
    import argparse

    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if parts:
        listed = "; ".join(f"{name}: {what}" for name, what in parts.items())
        parser.add_argument("part", nargs="?", choices=sorted(parts), help=listed)
    return getattr(parser.parse_args(), "part", None)


# The most requests a minute an app may be given (the contract's maximum), so that a
# benchmark's app is not what limits it.
BENCH_APP_QUOTA = 1_000_000


async def create_bench_app(empower_address: str, parent: str, scopes: list[str], label: str) -> str:
    """The key of a new app under `parent` (a tenant name) holding `scopes`, with the
    largest quota an app may have: benchmarks drive one app past an ordinary quota."""
    import uuid

    import grpc

    from devstack import demo_identity
    from grassroots.empower.v1 import identity_service_pb2 as identity_pb
    from grassroots.empower.v1 import identity_service_pb2_grpc as identity_grpc

    async with grpc.aio.insecure_channel(empower_address) as channel:
        made = await identity_grpc.IdentityServiceStub(channel).CreateApp(
            identity_pb.CreateAppRequest(
                parent=parent,
                app=identity_pb.App(
                    display_name=f"{label} {uuid.uuid4().hex[:6]}",
                    scopes=scopes,
                    quota_per_minute=BENCH_APP_QUOTA,
                ),
            ),
            metadata=demo_identity.BOOTSTRAP.to_metadata(),
        )
    return str(made.key)
