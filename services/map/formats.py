"""File codecs for importing and exporting map layers: GeoJSON, GeoPackage, zipped shapefile, CSV.

Pure functions on bytes, so the gRPC and HTTP layers only move payloads around and every
quirk of GDAL's drivers is handled, and tested, in one place. Decoding turns anything a
user can upload into `InvalidArgument` naming the field at fault (`file`, `format`,
`layer`, `lon_field`, `lat_field`); no GDAL exception, temporary path or traceback reaches
the caller, only the gist of GDAL's complaint. Geometry validity is the caller's business:
this module only decodes.

Format notes the callers should know:

* GeoJSON is written per RFC 7946: coordinates are always WGS 84 lon/lat (a layer in another
  CRS is reprojected; EPSG:4490 / CGCS2000 comes back as EPSG:4326 with the same numbers),
  exterior rings are counter-clockwise, 15 decimals are kept.
* Shapefile field names are cut to 10 UTF-8 bytes (a Chinese name keeps 3 characters) and
  made unique; strings are cut to 254 bytes; numbers are fixed-width text, so floats keep
  about 15 decimals; rings are re-oriented and parts may come back single or multi.
* CSV carries no CRS: it is written in EPSG:4326 and decoded with `crs=None`. The columns
  "wkt", "lon" and "lat" hold the geometry, so properties may not use those names.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyogrio
import pyogrio.raw
import pyproj
import shapely
from pyogrio.errors import DataLayerError, DataSourceError, GeometryError
from pyproj.exceptions import CRSError

from services.kit.errors import InvalidArgument

FORMATS = ("geojson", "gpkg", "shapefile", "csv")

MEDIA_TYPES = {
    "geojson": "application/geo+json",
    "gpkg": "application/geopackage+sqlite3",
    "shapefile": "application/zip",
    "csv": "text/csv",
}

_LABELS = {"geojson": "GeoJSON", "gpkg": "GeoPackage", "shapefile": "shapefile", "csv": "CSV"}
_DRIVERS = {
    "geojson": ("GeoJSON", "GeoJSONSeq"),
    "gpkg": ("GPKG",),
    "shapefile": ("ESRI Shapefile",),
}
# GDAL's GeoJSON reader would otherwise turn JSON arrays into list fields that numpy cannot
# hold, and re-format date strings.
_GEOJSON_OPEN_OPTIONS = {"ARRAY_AS_STRING": "YES", "DATE_AS_STRING": "YES"}

# Everything a malformed upload can make GDAL, pyogrio, zipfile or the csv module raise.
# pyogrio's errors are RuntimeErrors; UnicodeDecodeError and JSONDecodeError are ValueErrors.
_READ_ERRORS: tuple[type[BaseException], ...] = (
    DataSourceError,
    DataLayerError,
    RuntimeError,
    ValueError,
    OSError,
    EOFError,
    zlib.error,
    zipfile.BadZipFile,
    csv.Error,
)

# A zip of a few kilobytes can expand to gigabytes of zeros (a 102 KB upload unpacked to
# 100 MB). Members are streamed to disk in chunks and counted as they come, whatever the
# archive claims: past the total, or past the ratio once beyond the floor, the upload is
# refused. Real shapefiles deflate 3-20 times; the ratio OWASP suggests watching is 100.
MAX_UNZIPPED_BYTES = 1024**3
MAX_UNZIP_RATIO = 100
UNZIP_RATIO_FLOOR_BYTES = 10 * 1024**2
_UNZIP_CHUNK = 1024**2
_SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
_DBF_NAME_BYTES = 10

# Plain decimal numbers only: float() would also take "nan", "inf", "1_000" and padding.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
# "007" or "0123" is a code, not a number: parsing it would lose the zeros.
_ZERO_PADDED = re.compile(r"[+-]?0\d")
# Longer digit strings are identifiers (ID card, phone, parcel numbers), not quantities.
_MAX_INTEGER_DIGITS = 15
_WKT_COLUMN = "wkt"
_CSV_LON, _CSV_LAT = "lon", "lat"

# Polygons in WKT easily exceed the csv module's default 128 KiB per field.
csv.field_size_limit(max(csv.field_size_limit(), 256 * 1024**2))


@dataclass(frozen=True)
class DecodedFeatures:
    """Features read from a file, column-wise, before any validation or reprojection."""

    geometries: np.ndarray  # shapely geometries (object array), in the file's CRS; None allowed
    columns: dict[str, np.ndarray]  # property columns by name, same length; None/NaN = missing
    crs: str | None  # "EPSG:<code>" when the file declares a CRS pyproj can identify, else None
    feature_ids: np.ndarray | None  # "id" column / GeoJSON feature "id" as str (None = missing)


def decode(
    data: bytes,
    fmt: str,
    *,
    layer: str | None = None,
    lon_field: str = "lon",
    lat_field: str = "lat",
    max_features: int = 1_000_000,
) -> DecodedFeatures:
    """Read an uploaded file into arrays; raise `InvalidArgument` for anything unusable.

    `fmt` is one of `FORMATS`; "shapefile" is a .zip holding .shp/.shx/.dbf (and .prj/.cpg).
    `layer` picks the GeoPackage table (default: the first layer with geometry) or the
    shapefile inside the zip (by file name without .shp; default: the first one).
    CSV geometry comes from the numeric `lon_field`/`lat_field` columns, or from a "wkt"
    column when those are absent; both coordinates empty means no geometry. CSV rows in
    error messages are numbered from 1 after the header. A property named "id" also yields
    `feature_ids`; a GeoJSON feature-level "id" takes precedence over it.
    """
    _check_format(fmt)
    if not data:
        raise _bad_file("the file is empty")
    if fmt == "csv":
        try:
            return _decode_csv(data, lon_field, lat_field, max_features)
        except csv.Error as exc:
            raise _bad_file(f"not a readable CSV file: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="grassroots-map-") as tmp:
        try:
            return _decode_ogr(data, fmt, Path(tmp), layer, max_features)
        except _READ_ERRORS as exc:
            raise _bad_file(
                f"not a readable {_LABELS[fmt]} file: {_gdal_detail(exc, tmp)}"
            ) from None


def encode(
    geometries: np.ndarray,
    columns: dict[str, np.ndarray],
    fmt: str,
    *,
    crs: str = "EPSG:4326",
    layer_name: str = "features",
) -> tuple[bytes, str]:
    """Write features as a file of format `fmt`; return the payload and its media type.

    Columns may hold strings (object arrays), ints, floats and bools; None (and NaN in
    floats) becomes a null. GeoJSON and CSV are written in EPSG:4326 whatever `crs` says
    (RFC 7946; CSV has nowhere to declare one); GeoPackage and shapefile keep `crs`.
    A shapefile holds one geometry family (points, lines or polygons) per file; CSV has a
    "wkt" column, plus "lon"/"lat" when every geometry is a point.
    """
    _check_format(fmt)
    geoms = np.asarray(geometries, dtype=object)
    if geoms.ndim != 1:
        raise InvalidArgument.field("geometries", "must be a one-dimensional array")
    strangers = np.flatnonzero(~(shapely.is_geometry(geoms) | shapely.is_missing(geoms)))
    if strangers.size:
        raise InvalidArgument.field(
            "geometries", f"item {int(strangers[0])} is not a shapely geometry"
        )
    crs_text = _normalise_crs(crs)
    if not layer_name or re.search(r"[\x00-\x1f/\\:*?\"<>|]", layer_name):
        raise InvalidArgument.field(
            "layer_name", "must be non-empty, without path separators or control characters"
        )
    fields = [_field(name, values, len(geoms)) for name, values in columns.items()]
    if fmt == "csv":
        return _encode_csv(geoms, fields, crs_text), MEDIA_TYPES[fmt]
    with tempfile.TemporaryDirectory(prefix="grassroots-map-") as tmp:
        try:
            payload = _encode_ogr(geoms, fields, fmt, crs_text, layer_name, Path(tmp))
        except _READ_ERRORS as exc:
            field = "geometries" if isinstance(exc, GeometryError) else "columns"
            raise InvalidArgument.field(
                field, f"cannot be written: {_gdal_detail(exc, tmp)}"
            ) from None
    return payload, MEDIA_TYPES[fmt]


# --- decoding: GDAL formats ---------------------------------------------------------------


def _decode_ogr(
    data: bytes, fmt: str, tmp: Path, layer: str | None, max_features: int
) -> DecodedFeatures:
    """Read GeoJSON, GeoPackage or a zipped shapefile through GDAL from a private temp dir."""
    encoding: str | None = None
    read_layer: str | None = None
    options: dict[str, str] = {}
    if fmt == "shapefile":
        path, encoding = _unpack_shapefile(data, tmp, layer)
    else:
        _check_signature(data, fmt)
        path = tmp / ("upload.geojson" if fmt == "geojson" else "upload.gpkg")
        path.write_bytes(data)
        if fmt == "gpkg":
            read_layer = _gpkg_layer(path, layer)
        else:
            options = _GEOJSON_OPEN_OPTIONS
    info = pyogrio.read_info(path, layer=read_layer, force_feature_count=True, **options)
    if info["driver"] not in _DRIVERS[fmt]:
        raise _bad_file(f"not a {_LABELS[fmt]} file (it reads as {info['driver']})")
    count = int(info["features"])
    if count > max_features:
        raise _too_many(count, max_features)
    meta, fids, wkb, field_data = pyogrio.raw.read(
        path,
        layer=read_layer,
        encoding=encoding,
        max_features=max_features + 1,
        datetime_as_string=True,
        return_fids=True,
        **options,
    )
    size = len(fids)
    if size > max_features:
        raise _too_many(size, max_features)
    geometries = np.full(size, None, dtype=object) if wkb is None else shapely.from_wkb(wkb)
    columns = {
        str(name): _nullable(values, ogr_type, subtype)
        for name, values, ogr_type, subtype in zip(
            meta["fields"], field_data, meta["ogr_types"], meta["ogr_subtypes"], strict=True
        )
    }
    feature_ids = None
    if fmt == "geojson":
        feature_ids, synthetic_id = _geojson_ids(data, size)
        if synthetic_id:
            # GDAL exposes string feature ids as an "id" field; it is not a property.
            columns.pop("id", None)
    if feature_ids is None and "id" in columns:
        feature_ids = _id_strings(columns["id"])
    return DecodedFeatures(
        geometries=geometries, columns=columns, crs=_epsg(meta["crs"]), feature_ids=feature_ids
    )


def _check_signature(data: bytes, fmt: str) -> None:
    """Refuse the wrong kind of file before GDAL guesses some other driver for it."""
    if fmt == "gpkg":
        ok = data.startswith(b"SQLite format 3\x00")
    else:  # JSON object, or an RFC 8142 GeoJSON text sequence
        ok = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"\x1e")
    if not ok:
        raise _bad_file(f"not a {_LABELS[fmt]} file")


def _gpkg_layer(path: Path, layer: str | None) -> str:
    """The requested table, or the first one with geometry (attribute tables list last)."""
    layers = pyogrio.list_layers(path)
    names = [str(name) for name in layers[:, 0]]
    if not names:
        raise _bad_file("the GeoPackage holds no layers")
    if layer is not None:
        if layer not in names:
            raise InvalidArgument.field(
                "layer", f"no layer {layer!r} in the GeoPackage; it holds {_listing(names)}"
            )
        return layer
    spatial = [str(name) for name, geometry_type in layers if geometry_type is not None]
    return (spatial or names)[0]


def _unpack_shapefile(data: bytes, tmp: Path, layer: str | None) -> tuple[Path, str | None]:
    """Extract one shapefile's parts from the zip under fixed ASCII names.

    Fixed names sidestep zip-slip and the zip's own file-name encoding (Windows archives
    name "村界.shp" in GBK without saying so); the shapefile may sit in a sub-folder.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise _bad_file("a shapefile upload must be a .zip archive of .shp/.shx/.dbf") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir() and not _is_junk(m.filename)]
        by_name = {m.filename.lower(): m for m in members}
        shps = [m.filename for m in members if m.filename.lower().endswith(".shp")]
        if not shps:
            raise _bad_file("the zip archive holds no .shp file")
        stems = [PurePosixPath(name).stem for name in shps]
        if layer is None:
            chosen = shps[0]
        elif layer in stems or layer in shps:
            chosen = shps[stems.index(layer)] if layer in stems else layer
        else:
            raise InvalidArgument.field(
                "layer", f"no shapefile {layer!r} in the archive; it holds {_listing(stems)}"
            )
        base = chosen[: -len(".shp")].lower()
        parts = {ext: by_name.get(base + ext) for ext in _SHAPEFILE_PARTS}
        for ext in (".shx", ".dbf"):
            if parts[ext] is None:
                raise _bad_file(f"the archive lacks {PurePosixPath(base).name}{ext}")
        chosen_parts = [(ext, m) for ext, m in parts.items() if m is not None]
        _check_unpacked(sum(m.file_size for _, m in chosen_parts), len(data))  # as declared
        unpacked = 0
        for ext, member in chosen_parts:
            unpacked = _extract(archive, member, tmp / f"layer{ext}", unpacked, len(data))
    encoding = None if parts[".cpg"] else _dbf_encoding((tmp / "layer.dbf").read_bytes())
    return tmp / "layer.shp", encoding


def _check_unpacked(unpacked: int, packed: int) -> None:
    """Refuse a zip bomb: too many bytes in all, or too many per byte uploaded."""
    if unpacked > MAX_UNZIPPED_BYTES:
        raise _bad_file(f"the shapefile unpacks to more than {MAX_UNZIPPED_BYTES} bytes")
    if unpacked > UNZIP_RATIO_FLOOR_BYTES and unpacked > MAX_UNZIP_RATIO * max(packed, 1):
        raise _bad_file(
            f"the archive unpacks to over {MAX_UNZIP_RATIO} times its size; upload the "
            "shapefile less compressed, or as a GeoPackage"
        )


def _extract(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, unpacked: int, packed: int
) -> int:
    """Stream one member to `target` chunk by chunk; the running total, checked per chunk."""
    with archive.open(member) as source, target.open("wb") as sink:
        while chunk := source.read(_UNZIP_CHUNK):
            unpacked += len(chunk)
            _check_unpacked(unpacked, packed)
            sink.write(chunk)
    return unpacked


def _is_junk(name: str) -> bool:
    """macOS Finder adds __MACOSX/._name.shp resource forks that are not shapefiles."""
    path = PurePosixPath(name)
    return path.parts[0] == "__MACOSX" or path.name.startswith("._")


def _dbf_encoding(dbf: bytes) -> str | None:
    """Guess the text encoding of a .dbf that declares none.

    Shapefiles from older Chinese GIS tools are GBK without a .cpg or code-page byte, and
    GDAL would read them as Latin-1 mojibake; UTF-8 records decode cleanly, GBK ones do not.
    """
    if len(dbf) < 32 or dbf[29] != 0:
        return None  # the language driver byte names a code page GDAL knows
    header_size = int.from_bytes(dbf[8:10], "little")
    sample = dbf[header_size : header_size + 4 * 1024**2]
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 3:  # not just a character cut by the sample's end
            return "GB18030"
    return "UTF-8"


def _nullable(values: np.ndarray, ogr_type: str, subtype: str) -> np.ndarray:
    """Give back int and bool columns that pyogrio widened to float because of nulls."""
    if values.dtype.kind != "f":
        return values
    if subtype == "OFSTBoolean":
        cast: Callable[[float], object] = bool
    elif ogr_type in ("OFTInteger", "OFTInteger64"):
        cast = int
    else:
        return values
    out = np.empty(len(values), dtype=object)
    out[:] = [None if math.isnan(v) else cast(v) for v in values.tolist()]
    return out


def _geojson_ids(data: bytes, size: int) -> tuple[np.ndarray | None, bool]:
    """Feature-level GeoJSON ids, and whether GDAL turned them into an "id" field.

    GDAL makes integer ids the FID (indistinguishable from a row number) and string ids an
    "id" field - unless a property is called "id", which then wins. Only the JSON itself
    tells, so it is parsed when it mentions "id" at all.
    """
    if b'"id"' not in data:
        return None, False
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None, False
    if not isinstance(doc, dict):
        return None, False
    if doc.get("type") == "FeatureCollection":
        features = doc.get("features")
    elif doc.get("type") == "Feature":
        features = [doc]
    else:
        return None, False
    if not isinstance(features, list) or not all(isinstance(f, dict) for f in features):
        return None, False
    has_id_property = any(
        isinstance(f.get("properties"), dict) and "id" in f["properties"] for f in features
    )
    ids = [_id_text(f.get("id")) for f in features]
    if len(ids) != size or all(i is None for i in ids):
        return None, not has_id_property
    out = np.empty(size, dtype=object)
    out[:] = ids
    return out, not has_id_property


def _id_strings(values: np.ndarray) -> np.ndarray | None:
    """An "id" column as text; None when it holds no value at all."""
    ids = [_id_text(v) for v in values.tolist()]
    if all(i is None for i in ids):
        return None
    out = np.empty(len(ids), dtype=object)
    out[:] = ids
    return out


def _id_text(value: Any) -> str | None:
    """1 and 1.0 (an int column widened by nulls) are both "1"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _epsg(crs: str | None) -> str | None:
    """ "EPSG:<code>" for a CRS pyproj can match to an EPSG code (ESRI .prj text included)."""
    if not crs:
        return None
    try:
        code = pyproj.CRS.from_user_input(crs).to_epsg()
    except CRSError:
        return None
    return None if code is None else f"EPSG:{code}"


# --- decoding: CSV ------------------------------------------------------------------------


def _decode_csv(data: bytes, lon_field: str, lat_field: str, max_features: int) -> DecodedFeatures:
    """Parse a spreadsheet export; row numbers in errors count data rows from 1."""
    rows = list(csv.reader(io.StringIO(_csv_text(data), newline="")))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise _bad_file("the CSV file has no header row")
    header = [cell.strip() for cell in rows[0]]
    body = rows[1:]
    while body and not any(cell.strip() for cell in body[-1]):
        body.pop()  # trailing blank lines
    kept = [i for i, row in enumerate(body) if any(cell.strip() for cell in row)]
    if len(kept) > max_features:
        raise _too_many(len(kept), max_features)
    width = len(header)
    for i in kept:
        extra = body[i][width:]
        if any(cell.strip() for cell in extra):
            raise _bad_file(f"row {i + 1} has {len(body[i])} fields but the header has {width}")
    cells = [[_cell(body[i], j) for i in kept] for j in range(width)]
    named: dict[str, int] = {}
    for j, name in enumerate(header):
        if not name:
            if any(v is not None for v in cells[j]):
                raise _bad_file(f"column {j + 1} has values but no name in the header")
            continue
        if name in named:
            raise _bad_file(f"the header names column {name!r} twice")
        named[name] = j
    rows_1based = [i + 1 for i in kept]
    lon_j, lat_j = _find_column(named, lon_field), _find_column(named, lat_field)
    wkt_j = _find_column(named, _WKT_COLUMN)
    if lon_j is not None and lat_j is not None:
        geometries = _csv_points(cells[lon_j], cells[lat_j], rows_1based, lon_field, lat_field)
    elif wkt_j is not None:
        geometries = _csv_wkt(cells[wkt_j], rows_1based)
    else:
        field, name = ("lon_field", lon_field) if lon_j is None else ("lat_field", lat_field)
        raise InvalidArgument.field(
            field, f"the CSV file has no {name!r} column (nor 'wkt'); it has {_listing(named)}"
        )
    geometry_columns = {lon_j, lat_j, wkt_j}
    columns = {name: _typed(cells[j]) for name, j in named.items() if j not in geometry_columns}
    feature_ids = None
    if "id" in named and named["id"] not in geometry_columns:
        feature_ids = _id_strings(_objects([_stripped(v) for v in cells[named["id"]]]))
    return DecodedFeatures(
        geometries=geometries, columns=columns, crs=None, feature_ids=feature_ids
    )


def _csv_text(data: bytes) -> str:
    """UTF-8 (with or without Excel's BOM), UTF-16 with BOM, else GB18030 (Excel on zh-CN)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encodings: tuple[str, ...] = ("utf-16",)
    else:
        encodings = ("utf-8-sig", "gb18030")
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            break
        return text
    raise _bad_file("not a CSV text file (expected UTF-8 or GB18030 text)")


def _cell(row: list[str], j: int) -> str | None:
    """A cell's text, None when empty or missing from a short row."""
    value = row[j] if j < len(row) else ""
    return value if value.strip() else None


def _stripped(value: str | None) -> str | None:
    return None if value is None else value.strip()


def _find_column(named: dict[str, int], name: str) -> int | None:
    """Exact header match first, then case-insensitive ("LON", "Lat")."""
    if name in named:
        return named[name]
    matches = [j for header, j in named.items() if header.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def _csv_points(
    lons: list[str | None], lats: list[str | None], rows: list[int], lon: str, lat: str
) -> np.ndarray:
    """Points from coordinate columns; a row with both empty has no geometry."""
    xs = np.full(len(rows), np.nan)
    ys = np.full(len(rows), np.nan)
    for k, (x, y, row) in enumerate(zip(lons, lats, rows, strict=True)):
        if x is None and y is None:
            continue
        xs[k] = _coordinate(x, row, lon)
        ys[k] = _coordinate(y, row, lat)
    geometries = np.asarray(shapely.points(xs, ys), dtype=object)
    geometries[np.isnan(xs)] = None
    return geometries


def _coordinate(value: str | None, row: int, name: str) -> float:
    if value is None:
        raise _bad_file(f"row {row}: {name} is empty")
    text = value.strip()
    number = float(text) if _NUMBER.fullmatch(text) else math.nan
    if not math.isfinite(number):
        raise _bad_file(f"row {row}: {name} {_preview(value)} is not a number")
    return number


def _csv_wkt(values: list[str | None], rows: list[int]) -> np.ndarray:
    texts = np.array([_stripped(v) for v in values], dtype=object)
    geometries = np.asarray(shapely.from_wkt(texts, on_invalid="ignore"), dtype=object)
    for text, geom, row in zip(texts, geometries, rows, strict=True):
        if text is not None and geom is None:
            raise _bad_file(f"row {row}: wkt {_preview(text)} is not valid WKT")
    return geometries


def _typed(values: list[str | None]) -> np.ndarray:
    """Numbers and true/false where the whole column is, text otherwise."""
    present = [v.strip() for v in values if v is not None]
    if not present:
        return _objects(values)
    complete = len(present) == len(values)
    if not any(_ZERO_PADDED.match(v) for v in present):
        short = all(len(v.lstrip("+-")) <= _MAX_INTEGER_DIGITS for v in present)
        if short and all(_INTEGER.fullmatch(v) for v in present):
            if complete:
                return np.array([int(v) for v in present], dtype=np.int64)
            return _objects([None if v is None else int(v) for v in values])
        if all(_NUMBER.fullmatch(v) for v in present):
            floats = np.array([math.nan if v is None else float(v) for v in values])
            if np.isfinite(floats[~np.isnan(floats)]).all():
                return floats
    if all(v.lower() in ("true", "false") for v in present):
        flags = [None if v is None else v.strip().lower() == "true" for v in values]
        return np.array(flags, dtype=bool) if complete else _objects(flags)
    return _objects(values)


def _objects(values: Sequence[object]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


# --- encoding -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """One property column made writable: values, null mask and its kind."""

    name: str
    values: np.ndarray
    mask: np.ndarray | None
    kind: str  # "str", "int", "float" or "bool"


def _field(name: str, column: np.ndarray, size: int) -> _Field:
    """Map a numpy column onto the four kinds every format can store, keeping nulls."""
    where = f"columns.{name}"
    if not isinstance(name, str) or not name:
        raise InvalidArgument.field("columns", "column names must be non-empty strings")
    values = np.asarray(column)
    if values.ndim != 1 or len(values) != size:
        raise InvalidArgument.field(where, f"has {values.size} values for {size} geometries")
    kind = values.dtype.kind
    if kind == "b":
        return _Field(name, values.astype(bool), None, "bool")
    if kind in "iu":
        if kind == "u" and values.size and int(values.max()) > np.iinfo(np.int64).max:
            return _Field(name, values.astype(np.float64), None, "float")
        return _Field(name, values.astype(np.int64), None, "int")
    if kind == "f":
        return _Field(name, values.astype(np.float64), None, "float")
    if kind in "US":
        return _from_objects(name, [_text(v) for v in values.tolist()])
    if kind == "O":
        return _from_objects(name, values.tolist())
    raise InvalidArgument.field(where, f"unsupported column type {values.dtype}")


def _from_objects(name: str, items: list[Any]) -> _Field:
    """Infer an object column's kind from its non-null values; mixed values become text."""
    missing = np.array([_is_missing(v) for v in items], dtype=bool)
    present = [v for v, gone in zip(items, missing, strict=True) if not gone]
    if present and all(isinstance(v, bool | np.bool_) for v in present):
        flags = np.array(
            [False if gone else bool(v) for v, gone in zip(items, missing, strict=True)]
        )
        return _Field(name, flags, missing, "bool")
    numbers = all(isinstance(v, int | float | np.integer | np.floating) for v in present)
    if present and numbers and not any(isinstance(v, bool | np.bool_) for v in present):
        if all(isinstance(v, int | np.integer) for v in present) and all(
            np.iinfo(np.int64).min <= int(v) <= np.iinfo(np.int64).max for v in present
        ):
            ints = np.array([0 if gone else int(v) for v, gone in zip(items, missing, strict=True)])
            return _Field(name, ints.astype(np.int64), missing, "int")
        floats = np.array(
            [math.nan if gone else float(v) for v, gone in zip(items, missing, strict=True)]
        )
        return _Field(name, floats, None, "float")
    texts = _objects([None if gone else _text(v) for v, gone in zip(items, missing, strict=True)])
    return _Field(name, texts, None, "str")


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _normalise_crs(crs: str) -> str:
    """ "EPSG:<code>" when there is one, else WKT; raise for what pyproj cannot read."""
    try:
        parsed = pyproj.CRS.from_user_input(crs)
    except CRSError:
        raise InvalidArgument.field(
            "crs", f"{crs!r} is not a coordinate reference system"
        ) from None
    code = parsed.to_epsg()
    return f"EPSG:{code}" if code else parsed.to_wkt()


def _encode_ogr(
    geoms: np.ndarray, fields: list[_Field], fmt: str, crs: str, layer_name: str, tmp: Path
) -> bytes:
    """Write through GDAL into a private temp dir and return the file (or zip) bytes."""
    names = [f.name for f in fields]
    layer_options: dict[str, str] = {}
    promote = False
    if fmt == "geojson":
        path, driver = tmp / "layer.geojson", "GeoJSON"
        geometry_type = _layer_type(geoms)
        layer_options = {"RFC7946": "YES", "COORDINATE_PRECISION": "15"}
    elif fmt == "gpkg":
        path, driver = tmp / "layer.gpkg", "GPKG"
        geometry_type = _layer_type(geoms)
        # A property called "fid" or "geom" would collide with GDAL's default column names.
        taken = {name.lower() for name in names}
        layer_options = {
            "FID": _free_name("fid", taken),
            "GEOMETRY_NAME": _free_name("geom", taken),
        }
    else:
        path, driver = tmp / "layer.shp", "ESRI Shapefile"
        geometry_type, promote = _shapefile_type(geoms)
        names = _dbf_names(names)
    pyogrio.raw.write(
        str(path),
        shapely.to_wkb(geoms),
        [f.values for f in fields],
        names,
        field_mask=[f.mask for f in fields],
        layer=layer_name,
        driver=driver,
        geometry_type=geometry_type,
        crs=crs,
        encoding="UTF-8" if fmt == "shapefile" else None,
        promote_to_multi=promote,
        layer_options=layer_options,
    )
    if fmt != "shapefile":
        return path.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for ext in _SHAPEFILE_PARTS:
            part = tmp / f"layer{ext}"
            if part.exists():
                archive.writestr(f"{layer_name}{ext}", part.read_bytes())
    return buffer.getvalue()


def _layer_type(geoms: np.ndarray) -> str:
    """The one geometry type if there is one, else "Unknown" so nothing gets promoted."""
    present = geoms[~shapely.is_missing(geoms)]
    types = {_TYPE_NAMES[code] for code in shapely.get_type_id(present).tolist()}
    if len(types) != 1:
        return "Unknown"
    name = types.pop()
    return f"{name} Z" if shapely.has_z(present).any() else name


_TYPE_NAMES = {
    0: "Point",
    1: "LineString",
    2: "LineString",  # a LinearRing is written as a LineString
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}
_FAMILIES = {
    "Point": "Point",
    "MultiPoint": "Point",
    "LineString": "LineString",
    "MultiLineString": "LineString",
    "Polygon": "Polygon",
    "MultiPolygon": "Polygon",
}


def _shapefile_type(geoms: np.ndarray) -> tuple[str, bool]:
    """One shapefile holds one family; Point + MultiPoint need promoting to MultiPoint."""
    present = geoms[~shapely.is_missing(geoms)]
    types = {_TYPE_NAMES[code] for code in shapely.get_type_id(present).tolist()}
    families = {_FAMILIES.get(t, t) for t in types}
    if len(families) > 1 or not families <= set(_FAMILIES.values()):
        raise InvalidArgument.field(
            "geometries",
            f"a shapefile holds one kind of geometry, got {_listing(sorted(types))}; "
            "export each kind separately or use GeoPackage",
        )
    if not families:
        return "Point", False
    family = families.pop()
    promote = len(types) > 1
    name = f"Multi{family}" if promote or types == {f"Multi{family}"} else family
    return (f"{name} Z" if shapely.has_z(present).any() else name), promote


def _dbf_names(names: list[str]) -> list[str]:
    """Cut names to 10 UTF-8 bytes on a character boundary and make them unique.

    GDAL cuts bytes blindly, splitting a Chinese character and producing a .dbf that GDAL
    itself then fails to read.
    """
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        candidate, n = _utf8_prefix(name, _DBF_NAME_BYTES), 1
        while candidate.lower() in seen:
            suffix = f"_{n}"
            candidate, n = _utf8_prefix(name, _DBF_NAME_BYTES - len(suffix)) + suffix, n + 1
        seen.add(candidate.lower())
        out.append(candidate)
    return out


def _utf8_prefix(text: str, size: int) -> str:
    return text.encode("utf-8")[:size].decode("utf-8", "ignore")


def _free_name(base: str, taken: set[str]) -> str:
    name, n = base, 1
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def _encode_csv(geoms: np.ndarray, fields: list[_Field], crs: str) -> bytes:
    """UTF-8 with a BOM so Excel on a Chinese Windows shows 星明村, not mojibake."""
    for f in fields:
        if f.name in (_WKT_COLUMN, _CSV_LON, _CSV_LAT):
            raise InvalidArgument.field(
                f"columns.{f.name}", "this name holds the geometry in CSV; rename the column"
            )
    geoms = _to_wgs84(geoms, crs)
    present = ~shapely.is_missing(geoms)
    points = bool(present.any()) and bool(
        (shapely.get_type_id(geoms[present]) == shapely.GeometryType.POINT).all()
    )
    header = [_WKT_COLUMN, *([_CSV_LON, _CSV_LAT] if points else []), *(f.name for f in fields)]
    wkt = shapely.to_wkt(geoms, rounding_precision=-1)
    xs, ys = shapely.get_x(geoms), shapely.get_y(geoms)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([_inert(name) for name in header])
    cells = [_csv_cells(f) for f in fields]
    for i in range(len(geoms)):
        row = ["" if wkt[i] is None else str(wkt[i])]
        if points:
            row += [_float_cell(xs[i]), _float_cell(ys[i])]
        row += [column[i] for column in cells]
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8-sig")


def _to_wgs84(geoms: np.ndarray, crs: str) -> np.ndarray:
    if crs == "EPSG:4326":
        return geoms
    transformer = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    def project(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y, *coords.T[2:]])

    return np.asarray(shapely.transform(geoms, project, include_z=None), dtype=object)


def _csv_cells(f: _Field) -> list[str]:
    """Shortest round-tripping text per value; nulls are empty cells."""
    mask = f.mask if f.mask is not None else np.zeros(len(f.values), dtype=bool)
    values = f.values.tolist()
    if f.kind == "float":
        return [_float_cell(v) for v in values]
    if f.kind == "bool":
        return [
            "" if gone else ("true" if v else "false") for v, gone in zip(values, mask, strict=True)
        ]
    if f.kind == "int":
        return ["" if gone else str(v) for v, gone in zip(values, mask, strict=True)]
    return ["" if v is None else _inert(str(v)) for v in values]


# A spreadsheet runs a cell starting with one of these as a formula (=HYPERLINK(...),
# +cmd|..., @SUM(...)); tab and CR start one too after a quoted line break.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(text: str) -> str:
    """A text cell a spreadsheet shows as text: a leading quote before a formula start,
    as OWASP's CSV injection advice says. Numbers are written by us and never escaped."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _float_cell(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


# --- errors -------------------------------------------------------------------------------


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InvalidArgument.field("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")


def _bad_file(description: str) -> InvalidArgument:
    return InvalidArgument.field("file", description)


def _too_many(count: int, limit: int) -> InvalidArgument:
    return _bad_file(f"the file has {count} features; at most {limit} can be imported at once")


def _gdal_detail(exc: BaseException, tmp: str | Path) -> str:
    """The last clause of GDAL's message (the cause, not the SQL), minus our temp paths."""
    text = str(exc).replace(f"{tmp}/", "").replace(str(tmp), "")
    if "not recognized as" in text or "not a supported dataset" in text:
        return "the format is not recognised"
    clauses = [c.strip() for c in text.split(";") if c.strip()]
    detail = " ".join(clauses[-1].split()) if clauses else type(exc).__name__
    return detail[:200]


def _listing(names: Iterable[str], limit: int = 20) -> str:
    items = list(names)
    if not items:
        return "nothing"
    shown = ", ".join(repr(n) for n in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _preview(value: str, size: int = 40) -> str:
    return repr(value if len(value) <= size else value[:size] + "...")


def ready() -> bool:
    """Nothing: run in a fresh decoder process, it only loads this module (and GDAL)."""
    return True
