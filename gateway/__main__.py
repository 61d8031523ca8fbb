"""Start the gateway: `python -m gateway`."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from gateway.security.slow_clients import ReadDeadlines, protocol_with
from gateway.settings import GatewaySettings
from services.kit import tracing
from services.kit.config import load_settings
from services.kit.logging import configure_logging
from services.kit.private_files import restrict_umask
from services.kit.server import check_start_settings


def main() -> None:
    restrict_umask()
    settings = load_settings(GatewaySettings)
    check_start_settings(settings)
    configure_logging("gateway", settings.log_level)
    tracing.configure_tracing("gateway")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        # Slow clients: read deadlines on headers and body, and a bound on connections.
        http=protocol_with(
            ReadDeadlines(
                header_seconds=settings.header_timeout_seconds,
                body_idle_seconds=settings.body_idle_timeout_seconds,
                body_total_seconds=settings.body_timeout_seconds,
            )
        ),
        limit_concurrency=settings.max_concurrency,
        # The gateway decides itself whose X-Forwarded-For to believe
        # (GRASSROOTS_GATEWAY_TRUSTED_PROXIES); uvicorn's default trusts 127.0.0.1.
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
