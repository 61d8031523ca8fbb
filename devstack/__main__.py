"""`make run`: start the platform with the demo village and stop it on Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import grpc

from devstack import demo_twin
from devstack.stack import SERVICES, Stack, StackConfig
from services.kit.private_files import restrict_umask


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("var"))
    parser.add_argument("--port", type=int, default=None, help="gateway HTTP port (default 8080)")
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument(
        "--free-ports", action="store_true", help="pick free ports instead of the defaults"
    )
    parser.add_argument("--log-dir", type=Path, default=None, help="write service logs here")
    args = parser.parse_args(argv)
    restrict_umask()  # the demo town and the secrets files are born owner-only

    data_dir = args.data_dir.resolve()
    if args.free_ports:
        config = StackConfig.on_free_ports(data_dir, log_dir=args.log_dir)
    else:
        config = StackConfig.from_environment(data_dir, args.port, log_dir=args.log_dir)
    stack = Stack(config)
    stopping = {"flag": False}

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    started = time.monotonic()
    try:
        stack.start_all()
        stack.wait_ready(args.ready_timeout)
        credentials = stack.install_demo_identities()
        history = stack.install_demo_events()
        stack.install_demo_command()
        plans = stack.install_demo_plans()
        stack.install_demo_forms()
        stack.install_demo_twin()
        scenarios = stack.install_required_scenarios()
        print(f"\nGrassroots is ready in {time.monotonic() - started:.1f}s", flush=True)
        print(f"  gateway   {config.gateway_url}  (API docs {config.gateway_url}/docs)")
        print(f"  readiness {config.gateway_url}/readyz")
        print(f"  edge      grpc {config.edge_address}  (gRPC for apps: x-api-key or a token)")
        for name in SERVICES:
            print(
                f"  {name:<8}  grpc {config.address(name)}  "
                f"metrics http://{config.host}:{config.metrics_ports[name]}/metrics"
            )
        print("\nFor the CLI and SDK in another shell (the `grassroots scenario` commands also")
        print(f"read the key ring in {config.data_dir / 'dev-secrets.json'}, or --secrets):")
        print(f"  {config.client_exports()}\n")
        print(credentials.summary(config.gateway_url))
        states = ", ".join(f"{n} {state}" for state, n in sorted(history.items()))
        print(f"\nDemo history: {sum(history.values())} reports over four weeks ({states})")
        print(f"Demo plans: {plans[0]} and {plans[1]}")
        print(f"Demo twin: {len(demo_twin.ENTITIES)} entities in {demo_twin.VILLAGE} with rules")
        print(f"Scenarios installed in both villages: {', '.join(scenarios)}")
        print(f"\n(credentials saved in {stack.credentials_file})")
        print("Press Ctrl-C to stop.\n", flush=True)
        while not stopping["flag"]:
            stack.check_alive()
            time.sleep(0.5)
    except (RuntimeError, TimeoutError, grpc.aio.AioRpcError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping...", flush=True)
        stack.stop_all()
    print("stopped.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
