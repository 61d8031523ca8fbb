"""Start the gRPC edge: `python -m gateway.edge`."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from gateway.edge.server import start_edge
from gateway.edge.settings import EdgeSettings
from gateway.settings import GatewaySettings
from services.kit import metrics
from services.kit.config import load_settings
from services.kit.logging import configure_logging
from services.kit.server import check_start_settings


async def serve(settings: EdgeSettings, gateway: GatewaySettings) -> None:
    running = await start_edge(settings, gateway)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop()


def main() -> None:
    settings = load_settings(EdgeSettings)
    gateway = load_settings(GatewaySettings)
    check_start_settings(gateway)
    configure_logging("edge", settings.log_level)
    metrics.serve_metrics(settings.metrics_port, settings.host)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, gateway))


if __name__ == "__main__":
    main()
