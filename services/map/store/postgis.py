"""Layers and features in PostgreSQL/PostGIS, for deployments that outgrow one file.

A drop-in for the embedded GeoPackage store (tests/unit/map/test_stores.py runs one
suite on both): the catalog keeps every layer in memory and only comes here to load at
start and to write. Layer definitions are the same JSON documents as in the GeoPackage;
features of every layer share one table (properties in jsonb, typed back per the
layer's fields on load as SQLite's column affinity would), so creating a layer needs
no DDL and deleting one is a single cascading DELETE. Each write is one transaction:
a bad import leaves nothing half-written.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Any

import numpy as np
import psycopg
import shapely
from psycopg import errors
from psycopg_pool import ConnectionPool

from services.kit.errors import AlreadyExists, InvalidArgument
from services.map.domain.model import FeatureBatch, FieldType, Layer, LayerKey
from services.map.store.geopackage import _definition, _layer

# Any constant serialises concurrent schema set-up from several processes.
_SCHEMA_LOCK = 0x4D4150  # "MAP"

_SCHEMA = (
    "CREATE EXTENSION IF NOT EXISTS postgis",
    """CREATE TABLE IF NOT EXISTS map_layers (
        tenant text NOT NULL,
        layer_id text NOT NULL,
        definition jsonb NOT NULL,
        PRIMARY KEY (tenant, layer_id))""",
    """CREATE TABLE IF NOT EXISTS map_features (
        tenant text NOT NULL,
        layer_id text NOT NULL,
        feature_id text NOT NULL,
        seq bigserial NOT NULL,
        geom geometry(Geometry, 4326) NOT NULL,
        properties jsonb NOT NULL,
        PRIMARY KEY (tenant, layer_id, feature_id),
        FOREIGN KEY (tenant, layer_id) REFERENCES map_layers ON DELETE CASCADE)""",
    "CREATE INDEX IF NOT EXISTS map_features_geom_gist ON map_features USING gist (geom)",
    "CREATE INDEX IF NOT EXISTS map_features_layer_seq ON map_features (tenant, layer_id, seq)",
)


class PostgisStore:
    """Layers and features in one PostgreSQL database (tables on the DSN's search_path).

    A small pool rather than one connection: the catalog serialises writes, but loads
    at start may run from several worker threads at once.
    """

    def __init__(self, dsn: str, *, max_connections: int = 4) -> None:
        self.dsn = dsn
        # A plain connection first, so a wrong DSN or a missing PostGIS fails here with
        # the server's own message instead of a pool timeout.
        with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                conn.execute(statement)
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True},
            # One round trip per call buys recovery after a database restart.
            check=ConnectionPool.check_connection,
            open=True,
            name="grassroots-map",
        )

    def list_layers(self) -> list[Layer]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT tenant, layer_id, definition::text FROM map_layers "
                "ORDER BY tenant, layer_id"
            ).fetchall()
        return [_layer(*row) for row in rows]

    def create_layer(self, layer: Layer) -> None:
        with self._pool.connection() as conn:
            try:
                conn.execute(
                    "INSERT INTO map_layers (tenant, layer_id, definition) "
                    "VALUES (%s, %s, %s::jsonb)",
                    (layer.key.tenant, layer.key.layer_id, _definition(layer)),
                )
            except errors.UniqueViolation:
                raise AlreadyExists(f"layer {layer.key.layer_id!r} already exists") from None

    def save_layer(self, layer: Layer) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE map_layers SET definition = %s::jsonb WHERE tenant = %s AND layer_id = %s",
                (_definition(layer), layer.key.tenant, layer.key.layer_id),
            )

    def delete_layer(self, key: LayerKey) -> None:
        """The foreign key cascades to the layer's features in the same statement."""
        with self._pool.connection() as conn:
            conn.execute(
                "DELETE FROM map_layers WHERE tenant = %s AND layer_id = %s",
                (key.tenant, key.layer_id),
            )

    def write_features(self, layer: Layer, batch: FeatureBatch, *, replace: bool) -> None:
        """One transaction: the optional DELETE and the COPY commit or roll back together."""
        tenant, layer_id = layer.key.tenant, layer.key.layer_id
        ids = [str(fid) for fid in batch.ids]
        # Binary WKB turned to hex here is ~4x faster than GEOS's hex writer. The column
        # is 2-D, as the GeoPackage declares its layers (z = 0).
        wkb = shapely.to_wkb(
            shapely.set_srid(np.asarray(batch.geometries, dtype=object), 4326),
            output_dimension=2,
            include_srid=True,
        )
        geometries = [blob.hex() for blob in wkb]
        properties = _json_objects(layer.field_names(), batch.columns, len(batch))
        with self._pool.connection() as conn:
            try:
                with conn.transaction(), conn.cursor() as cur:
                    if replace:
                        cur.execute(
                            "DELETE FROM map_features WHERE tenant = %s AND layer_id = %s",
                            (tenant, layer_id),
                        )
                    with cur.copy(
                        "COPY map_features (tenant, layer_id, feature_id, geom, properties) "
                        "FROM STDIN"
                    ) as copy:
                        for row in zip(ids, geometries, properties, strict=True):
                            copy.write_row((tenant, layer_id, *row))
            except errors.UniqueViolation as exc:
                detail = exc.diag.message_detail or str(exc)
                raise AlreadyExists(f"feature id already in the layer ({detail})") from None
            except errors.UntranslatableCharacter:
                # jsonb cannot hold U+0000 (SQLite can): say so rather than fail as INTERNAL.
                raise InvalidArgument.field(
                    "file", "a text property contains a NUL character (U+0000)"
                ) from None

    def load_features(self, layer: Layer) -> FeatureBatch:
        fields = layer.field_names()
        with self._pool.connection() as conn, conn.cursor(binary=True) as cur:
            cur.execute(
                "SELECT feature_id, ST_AsBinary(geom), properties::text FROM map_features "
                "WHERE tenant = %s AND layer_id = %s ORDER BY seq",
                (layer.key.tenant, layer.key.layer_id),
            )
            rows = cur.fetchall()
        if not rows:
            return FeatureBatch.empty(fields)
        ids, wkb, texts = zip(*rows, strict=True)
        # One json.loads over the whole layer is ~2x faster than one per feature.
        documents: list[dict[str, Any]] = json.loads("[" + ",".join(texts) + "]")
        return FeatureBatch(
            ids=np.array(ids, dtype=object),
            geometries=shapely.from_wkb(np.array(wkb, dtype=object)),
            columns={
                spec.name: _typed_column([d.get(spec.name) for d in documents], spec.type)
                for spec in layer.fields
            },
        )

    def close(self) -> None:
        self._pool.close()


def _json_objects(fields: tuple[str, ...], columns: dict[str, Any], count: int) -> list[str]:
    """One JSON object per feature, built column by column: ~4x faster than json.dumps."""
    if not fields:
        return ["{}"] * count
    keys = [_encode_string(name).replace("%", "%%") for name in fields]
    template = "{" + ", ".join(f"{key}: %s" for key in keys) + "}"
    encoded = [[_json_fragment(value) for value in columns[name]] for name in fields]
    return [template % values for values in zip(*encoded, strict=True)]


_encode_string = json.JSONEncoder(ensure_ascii=False).encode


def _json_fragment(value: object) -> str:
    """One property as JSON text, with the common types done without json.dumps."""
    value = _json_value(value)
    if value is None:
        return "null"
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float) and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _json_value(value: object) -> object:
    """A property as plain JSON: numpy scalars unwrapped, NaN (a missing number) as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat(" ")  # as sqlite3 adapts it in the GeoPackage store
    if isinstance(value, date):
        return value.isoformat()
    return value


def _typed_column(values: list[Any], field_type: FieldType) -> np.ndarray:
    """JSON values typed as the GeoPackage's column affinity returns them (None stays None).

    The common case (the value already has the field's type) costs one `type() is` test.
    """
    typed: list[Any]
    if field_type is FieldType.BOOLEAN:
        typed = [None if v is None else bool(v) for v in values]
    elif field_type is FieldType.INTEGER:
        typed = [v if v is None or type(v) is int else _as_integer(v) for v in values]
    elif field_type is FieldType.NUMBER:
        typed = [v if v is None or type(v) is float else _as_number(v) for v in values]
    elif field_type is FieldType.STRING:
        typed = [v if v is None or type(v) is str else _as_string(v) for v in values]
    else:
        typed = values
    return np.fromiter(typed, dtype=object, count=len(typed))


def _as_integer(value: object) -> object:
    """INTEGER affinity: booleans and whole floats become ints; anything else is kept."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _as_number(value: object) -> object:
    """REAL affinity: integers (and booleans, bound as 0/1) become floats."""
    if isinstance(value, int):
        return float(value)
    return value


def _as_string(value: object) -> object:
    """TEXT affinity: numbers become their text (booleans were bound as 0/1)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return value
