"""The web pages' delivery: files, settings and headers, without a platform behind."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from gateway.app import create_app
from gateway.pages import tile_origin
from gateway.settings import GatewaySettings
from services.kit.components import NAMES

ADDRESSES = {f"{name}_address": "127.0.0.1:1" for name in NAMES}
TILES = "http://tiles.intranet:8090/{z}/{x}/{y}.png"


def test_a_tile_server_is_allowed_for_images_on_pages_only():
    settings = GatewaySettings(**ADDRESSES, tile_url=TILES, tile_crs="gcj02", metrics_port=0)
    with TestClient(create_app(settings)) as client:
        page = client.get("/web/board.html")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "img-src 'self' data: blob: http://tiles.intranet:8090;" in csp
        assert "script-src 'self';" in csp and "unsafe" not in csp
        assert "tiles.intranet" not in client.get("/healthz").headers["content-security-policy"]
        config = client.get("/web/config.json").json()
        assert config["tile_url"] == TILES and config["tile_crs"] == "GCJ-02"
        landing = client.get("/")
        assert landing.status_code == 200 and 'href="/web/worker.html"' in landing.text


def test_tile_settings_are_checked_at_start():
    with pytest.raises(ValidationError, match="tile_url"):
        GatewaySettings(**ADDRESSES, tile_url="javascript:alert(1)")
    with pytest.raises(ValidationError, match="device_crs"):
        GatewaySettings(**ADDRESSES, device_crs="EPSG:999999")
    assert tile_origin("") == "" and tile_origin("/tiles/{z}/{x}/{y}.png") == ""
    assert tile_origin(TILES) == "http://tiles.intranet:8090"


def test_every_page_names_only_keys_both_dictionaries_have():
    web = Path(__file__).resolve().parents[3] / "gateway" / "static" / "web"
    en = json.loads((web / "i18n" / "en.json").read_text(encoding="utf-8"))
    zh = json.loads((web / "i18n" / "zh.json").read_text(encoding="utf-8"))
    assert set(en) == set(zh), sorted(set(en) ^ set(zh))
    used = set()
    for path in [*web.glob("*.html"), *web.glob("js/**/*.js")]:
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r'data-i18n(?:-placeholder|-label)?="([a-z0-9_.]+)"', text))
        used |= set(re.findall(r'\bt\("([a-z0-9_.]+)"', text))
        used |= set(re.findall(r'\bsay\("([a-z0-9_.]+)"', text))
    assert not used - set(en), sorted(used - set(en))
