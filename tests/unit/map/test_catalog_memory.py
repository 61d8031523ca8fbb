"""What the catalog serves from memory after imports equals what a fresh start loads."""

from __future__ import annotations

import numpy as np
import shapely

from services.kit.principal import Principal
from services.map.domain.model import FieldSpec, FieldType, Layer, LayerKey, LayerKind
from services.map.domain.service import ImportOptions, MapCatalog
from services.map.formats import DecodedFeatures

WRITER = Principal("users/t", "sh", scopes=frozenset({"map:write"}))
KEY = LayerKey("sh/a", "pois")


def source(ids, start):
    n = len(ids)
    return DecodedFeatures(
        geometries=shapely.points(121.1 + np.arange(start, start + n) / 1000, np.full(n, 31.2)),
        columns={
            "name": np.array([f"p{i}" for i in ids], dtype=object),
            "floors": np.array([i % 3 or None for i in range(n)], dtype=object),
            "open": np.array([i % 2 == 0 for i in range(n)], dtype=object),
            "since": np.array(["2026-11-01"] * n, dtype=object),
        },
        crs="EPSG:4326",
        feature_ids=np.array(ids, dtype=object),
    )


def test_appends_and_replaces_match_a_fresh_load(map_store):
    catalog = MapCatalog(map_store)
    catalog.create_layer(
        WRITER,
        Layer(
            KEY,
            "POIs",
            LayerKind.POI,
            "Point",
            (
                FieldSpec("name", FieldType.STRING),
                FieldSpec("floors", FieldType.INTEGER),
                FieldSpec("open", FieldType.BOOLEAN),
                FieldSpec("since", FieldType.DATE),
            ),
        ),
    )
    for ids, start, replace in (
        (["a", "b"], 0, False),
        (["c", "d", "e"], 2, False),
        (["f", "g"], 5, True),
        (["h"], 7, False),
    ):
        catalog.import_features(WRITER, KEY, source(ids, start), ImportOptions(replace=replace))
        live = catalog.indexes[KEY].batch
        fresh = MapCatalog(map_store).indexes[KEY].batch
        assert list(live.ids) == list(fresh.ids)
        assert shapely.to_wkb(live.geometries).tolist() == shapely.to_wkb(fresh.geometries).tolist()
        assert {k: v.tolist() for k, v in live.columns.items()} == {
            k: v.tolist() for k, v in fresh.columns.items()
        }
    assert list(catalog.indexes[KEY].batch.ids) == ["f", "g", "h"]
