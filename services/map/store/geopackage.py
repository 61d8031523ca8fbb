"""The embedded map store: a GeoPackage file written through sqlite3.

Each layer is a proper GeoPackage feature table (typed columns, GPKG geometry
blobs, registered in gpkg_contents and gpkg_geometry_columns), so QGIS or GDAL can
open the file directly. Writing through sqlite3 rather than GDAL gives one
transaction per import: a bad file leaves nothing half-imported.
"""

from __future__ import annotations

import json
import sqlite3
import struct
from datetime import datetime
from pathlib import Path

import numpy as np
import shapely
from pyproj import CRS

from services.kit.errors import AlreadyExists
from services.kit.sqlite import transaction
from services.map.domain.model import (
    FeatureBatch,
    FieldSpec,
    FieldType,
    Layer,
    LayerKey,
    LayerKind,
    Sensitivity,
)

_APPLICATION_ID = 0x47504B47  # "GPKG"
_USER_VERSION = 10400
_SQL_TYPES = {
    FieldType.STRING: "TEXT",
    FieldType.INTEGER: "INTEGER",
    FieldType.NUMBER: "REAL",
    FieldType.BOOLEAN: "BOOLEAN",
    FieldType.DATE: "DATE",
}
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}

_CORE = """
CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (
    srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
    organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
CREATE TABLE IF NOT EXISTS gpkg_contents (
    table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
    description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT
    (strftime('%Y-%m-%dT%H:%M:%fZ','now')), min_x DOUBLE, min_y DOUBLE, max_x DOUBLE,
    max_y DOUBLE, srs_id INTEGER REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (
    table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
    srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
    CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
    CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
    CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
CREATE TABLE IF NOT EXISTS grassroots_layers (
    tenant TEXT NOT NULL, layer_id TEXT NOT NULL, table_name TEXT NOT NULL UNIQUE,
    definition TEXT NOT NULL, PRIMARY KEY (tenant, layer_id));
"""


def table_name(key: LayerKey) -> str:
    """Tenant and layer ids use only [a-z0-9-], so this mapping cannot collide."""
    return f"{key.tenant.replace('/', '_')}__{key.layer_id.replace('-', '_')}"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def encode_gpkg_geometry(geometries: np.ndarray, srs_id: int = 4326) -> list[bytes]:
    """GeoPackage binary: 'GP', version, flags (little-endian, xy envelope), srs, envelope, WKB."""
    wkb = shapely.to_wkb(geometries, byte_order=1, flavor="iso")
    bounds = shapely.bounds(geometries)
    blobs = []
    for blob, (minx, miny, maxx, maxy) in zip(wkb, bounds, strict=True):
        header = struct.pack("<2sBBi4d", b"GP", 0, 0b00000011, srs_id, minx, maxx, miny, maxy)
        blobs.append(header + blob)
    return blobs


def decode_gpkg_geometry(blobs: list[bytes]) -> np.ndarray:
    wkb = []
    for blob in blobs:
        flags = blob[3]
        envelope = _ENVELOPE_BYTES[(flags >> 1) & 0b111]
        wkb.append(blob[8 + envelope :])
    return shapely.from_wkb(np.array(wkb, dtype=object))


def _definition(layer: Layer) -> str:
    return json.dumps(
        {
            "display_name": layer.display_name,
            "kind": layer.kind.value,
            "geometry_type": layer.geometry_type,
            "fields": [
                {
                    "name": f.name,
                    "type": f.type.value,
                    "required": f.required,
                    "description": f.description,
                }
                for f in layer.fields
            ],
            "sensitivity": layer.sensitivity.value,
            "shared": layer.shared,
            "feature_count": layer.feature_count,
            "extent": layer.extent,
            "create_time": layer.create_time.isoformat() if layer.create_time else None,
            "update_time": layer.update_time.isoformat() if layer.update_time else None,
        },
        ensure_ascii=False,
    )


def _layer(tenant: str, layer_id: str, definition: str) -> Layer:
    d = json.loads(definition)
    return Layer(
        key=LayerKey(tenant, layer_id),
        display_name=d["display_name"],
        kind=LayerKind(d["kind"]),
        geometry_type=d["geometry_type"],
        fields=tuple(
            FieldSpec(f["name"], FieldType(f["type"]), f["required"], f["description"])
            for f in d["fields"]
        ),
        sensitivity=Sensitivity(d["sensitivity"]),
        shared=d["shared"],
        feature_count=d["feature_count"],
        extent=tuple(d["extent"]) if d["extent"] else None,
        create_time=datetime.fromisoformat(d["create_time"]) if d["create_time"] else None,
        update_time=datetime.fromisoformat(d["update_time"]) if d["update_time"] else None,
    )


class GeoPackageStore:
    """Layers and features in one GeoPackage file. Calls are serialised by the catalog."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # The GeoPackage marks go into the file header before WAL mode, so readers such
        # as GDAL see them even while this store holds the file open.
        self.conn.execute(f"PRAGMA application_id={_APPLICATION_ID}")
        self.conn.execute(f"PRAGMA user_version={_USER_VERSION}")
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_CORE)
        self._ensure_srs(4326)
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _ensure_srs(self, srs_id: int) -> None:
        crs = CRS.from_epsg(srs_id)
        self.conn.execute(
            "INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?, ?, 'EPSG', ?, ?, ?)",
            (crs.name, srs_id, srs_id, crs.to_wkt(), crs.name),
        )
        for row in (
            ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", ""),
            ("Undefined geographic SRS", 0, "NONE", 0, "undefined", ""),
        ):
            self.conn.execute(
                "INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)", row
            )

    def list_layers(self) -> list[Layer]:
        rows = self.conn.execute(
            "SELECT tenant, layer_id, definition FROM grassroots_layers ORDER BY tenant, layer_id"
        ).fetchall()
        return [_layer(*row) for row in rows]

    def create_layer(self, layer: Layer) -> None:
        name = table_name(layer.key)
        columns = ", ".join(f"{_quote(f.name)} {_SQL_TYPES[f.type]}" for f in layer.fields)
        ddl = (
            f"CREATE TABLE {_quote(name)} (fid INTEGER PRIMARY KEY AUTOINCREMENT, "
            f"feature_id TEXT NOT NULL UNIQUE, geom BLOB{', ' + columns if columns else ''})"
        )

        def write(conn: sqlite3.Connection) -> None:
            exists = conn.execute(
                "SELECT 1 FROM grassroots_layers WHERE tenant = ? AND layer_id = ?",
                (layer.key.tenant, layer.key.layer_id),
            ).fetchone()
            if exists:
                raise AlreadyExists(f"layer {layer.key.layer_id!r} already exists")
            conn.execute(ddl)
            conn.execute(
                "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
                "srs_id) VALUES (?, 'features', ?, ?, 4326)",
                (name, name, layer.display_name),
            )
            conn.execute(
                "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, 4326, 0, 0)",
                (name, layer.geometry_type.upper()),
            )
            conn.execute(
                "INSERT INTO grassroots_layers VALUES (?, ?, ?, ?)",
                (layer.key.tenant, layer.key.layer_id, name, _definition(layer)),
            )

        transaction(self.conn, write)

    def save_layer(self, layer: Layer) -> None:
        extent = layer.extent or (None, None, None, None)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE grassroots_layers SET definition = ? WHERE tenant = ? AND layer_id = ?",
                (_definition(layer), layer.key.tenant, layer.key.layer_id),
            )
            conn.execute(
                "UPDATE gpkg_contents SET min_x = ?, min_y = ?, max_x = ?, max_y = ?, "
                "last_change = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE table_name = ?",
                (*extent, table_name(layer.key)),
            )

        transaction(self.conn, write)

    def delete_layer(self, key: LayerKey) -> None:
        name = table_name(key)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM gpkg_geometry_columns WHERE table_name = ?", (name,))
            conn.execute("DELETE FROM gpkg_contents WHERE table_name = ?", (name,))
            conn.execute(
                "DELETE FROM grassroots_layers WHERE tenant = ? AND layer_id = ?",
                (key.tenant, key.layer_id),
            )
            conn.execute(f"DROP TABLE IF EXISTS {_quote(name)}")

        transaction(self.conn, write)

    def write_features(self, layer: Layer, batch: FeatureBatch, *, replace: bool) -> None:
        name = _quote(table_name(layer.key))
        fields = layer.field_names()
        columns = ", ".join(["feature_id", "geom", *(_quote(f) for f in fields)])
        marks = ", ".join("?" * (2 + len(fields)))
        blobs = encode_gpkg_geometry(batch.geometries)
        values = [batch.columns[f] for f in fields]
        rows = (
            (str(batch.ids[i]), blobs[i], *(_sqlite_value(v[i]) for v in values))
            for i in range(len(batch))
        )

        def write(conn: sqlite3.Connection) -> None:
            if replace:
                conn.execute(f"DELETE FROM {name}")
            conn.executemany(f"INSERT INTO {name} ({columns}) VALUES ({marks})", rows)

        try:
            transaction(self.conn, write)
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"feature id already in the layer ({exc})") from None

    def load_features(self, layer: Layer) -> FeatureBatch:
        fields = layer.field_names()
        selected = ", ".join(["feature_id", "geom", *(_quote(f) for f in fields)])
        rows = self.conn.execute(
            f"SELECT {selected} FROM {_quote(table_name(layer.key))} ORDER BY fid"
        ).fetchall()
        if not rows:
            return FeatureBatch.empty(fields)
        columns = list(zip(*rows, strict=True))
        types = {f.name: f.type for f in layer.fields}
        return FeatureBatch(
            ids=np.array(columns[0], dtype=object),
            geometries=decode_gpkg_geometry(list(columns[1])),
            columns={
                name: np.array([_from_sqlite(v, types[name]) for v in columns[2 + i]], dtype=object)
                for i, name in enumerate(fields)
            },
        )

    def close(self) -> None:
        self.conn.close()


def _sqlite_value(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _from_sqlite(value: object, field_type: FieldType) -> object:
    if value is None:
        return None
    if field_type is FieldType.BOOLEAN:
        return bool(value)
    return value
