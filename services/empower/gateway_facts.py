"""What only the gateway knows, read over HTTP: its REST routes (from its OpenAPI
document) and the calls each village made to each component (from its /metrics).

Both are optional: without a gateway URL, or with the gateway down, the catalog
shows components without routes and the adoption view says its calls are unknown.
With several gateway replicas, point the URL at a Prometheus that aggregates them
(its federation endpoint serves the same text format).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.kit.components import COMPONENTS

CALLS_METRIC = "gateway_component_calls"
# OpenAPI tags of the gateway's routes, by the component whose RPCs they call.
TAG_COMPONENTS: Mapping[str, str] = {
    "map": "map",
    "ogc-api-features": "map",
    "events": "events",
    "open311": "events",
    "command": "command",
    "twin": "twin",
    "empower": "empower",
    "tenants": "empower",
    "identity": "empower",
    "people": "empower",
    "audit": "empower",
    "catalog": "empower",
    "datasets": "empower",
}
_METHODS = ("get", "post", "put", "patch", "delete")


class GatewayFacts:
    def __init__(
        self, base_url: str, metrics_url: str = "", docs_path: str = "/docs", timeout: float = 3.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.metrics_url = metrics_url or (self.base_url + "/metrics" if self.base_url else "")
        self.docs_path = docs_path
        self.client = httpx.AsyncClient(timeout=timeout)

    async def routes(self) -> Mapping[str, Sequence[str]] | None:
        if not self.base_url:
            return None
        try:
            response = await self.client.get(self.base_url + "/openapi.json")
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError):
            return None
        found: dict[str, list[str]] = {name: [] for name in COMPONENTS}
        for path, operations in sorted(document.get("paths", {}).items()):
            for method in _METHODS:
                operation = operations.get(method)
                if not isinstance(operation, dict):
                    continue
                for tag in operation.get("tags", []):
                    component = TAG_COMPONENTS.get(tag)
                    if component is not None:
                        found[component].append(f"{method.upper()} {path}")
                        break
        return found

    def docs_uri(self, component: str) -> str:
        return f"{self.base_url}{self.docs_path}#/{component}"

    async def calls(self) -> Mapping[tuple[str, str], int] | None:
        if not self.metrics_url:
            return None
        try:
            response = await self.client.get(self.metrics_url)
            response.raise_for_status()
        except httpx.HTTPError:
            return None
        counted: dict[tuple[str, str], int] = {}
        for family in text_string_to_metric_families(response.text):
            if family.name != CALLS_METRIC:
                continue
            for sample in family.samples:
                if sample.name != CALLS_METRIC + "_total":
                    continue
                key = (sample.labels.get("tenant", ""), sample.labels.get("component", ""))
                counted[key] = counted.get(key, 0) + int(sample.value)
        return counted

    async def close(self) -> None:
        await self.client.aclose()
