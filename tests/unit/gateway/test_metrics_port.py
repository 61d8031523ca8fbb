"""Behind an Ingress the gateway's public port must not show its metrics: with a
metrics port configured, /metrics answers there and 404 on the public port."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient

from devstack.stack import free_port
from gateway.app import create_app
from gateway.settings import GatewaySettings
from services.kit.components import NAMES

ADDRESSES = {f"{name}_address": "127.0.0.1:1" for name in NAMES}


def test_metrics_leave_the_public_port_when_they_have_their_own():
    port = free_port()
    app = create_app(GatewaySettings(**ADDRESSES, metrics_port=port))
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/healthz").status_code == 200
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert scraped.status_code == 200 and "python_" in scraped.text


def test_without_a_metrics_port_the_public_port_serves_them():
    with TestClient(create_app(GatewaySettings(**ADDRESSES))) as client:
        answer = client.get("/metrics")
        assert answer.status_code == 200 and "python_" in answer.text
