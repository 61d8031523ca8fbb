"""`grassroots layers list | import`: map layers through the REST API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from grassroots_sdk.cli._common import emit, err, fail, handles_errors, out, settings
from grassroots_sdk.errors import NotFound

app = typer.Typer(help="Map layers: list them, import files into them.", no_args_is_help=True)

GEOMETRY_TYPES = {
    "Point",
    "LineString",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
}


@app.command("list")
@handles_errors
def list_layers(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="tenant id or path")] = None,
) -> None:
    """Layers you can see: your node's own and the shared layers above it."""
    chosen = settings(ctx)
    with chosen.client() as client:
        layers = list(client.layers.iterate(tenant=tenant, page_size=200))
    if chosen.json:
        emit([layer.model_dump(mode="json") for layer in layers])
        return
    table = Table()
    table.add_column("layer", no_wrap=True)
    for heading in ("kind", "geometry", "features", "shared"):
        table.add_column(heading)
    table.add_column("name", overflow="fold")  # ids are copied: never cut them short
    for layer in layers:
        table.add_row(
            layer.layer_id,
            layer.kind,
            layer.geometry_type,
            str(layer.feature_count),
            "yes" if layer.shared else "",
            layer.name,
        )
    out.print(table)


def layer_spec_of(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """The geometry type and fields a new layer needs for a GeoJSON file, read from it."""
    data = json.loads(path.read_text(encoding="utf-8"))
    features = data.get("features") if isinstance(data, dict) else None
    if not features:
        raise ValueError(f"{path}: not a GeoJSON FeatureCollection with features")
    kinds = {(f.get("geometry") or {}).get("type") for f in features}
    geometry = kinds.pop() if len(kinds) == 1 else "Geometry"
    if geometry not in GEOMETRY_TYPES:
        geometry = "Geometry"
    fields: dict[str, str] = {}
    for feature in features:
        for name, value in (feature.get("properties") or {}).items():
            if value is None or name in ("id", "fid"):
                continue
            kind = (
                "boolean"
                if isinstance(value, bool)
                else "integer"
                if isinstance(value, int)
                else "number"
                if isinstance(value, float)
                else "string"
            )
            previous = fields.get(name)
            if previous and previous != kind:
                kind = "number" if {previous, kind} == {"integer", "number"} else "string"
            fields[name] = kind
    return geometry, [{"name": n, "type": t} for n, t in fields.items()]


@app.command("import")
@handles_errors
def import_files(
    ctx: typer.Context,
    files: Annotated[
        list[Path], typer.Argument(help="GeoJSON files (or GeoPackage, zipped Shapefile, CSV)")
    ],
    layer: Annotated[str, typer.Option(help="the layer's id, e.g. hydrants")],
    tenant: Annotated[str | None, typer.Option(help="tenant id or path")] = None,
    create: Annotated[
        bool,
        typer.Option(help="create the layer when missing, its fields read from the first file"),
    ] = False,
    kind: Annotated[str, typer.Option(help="a new layer's kind: poi, building, ...")] = "poi",
    display_name: Annotated[str | None, typer.Option(help="a new layer's name")] = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="geojson, gpkg, shapefile, csv; default: suffix")
    ] = None,
    source_crs: Annotated[
        str | None, typer.Option(help="the files' CRS if they name none, e.g. EPSG:4490")
    ] = None,
    id_field: Annotated[str | None, typer.Option(help="the property holding feature ids")] = None,
    replace: Annotated[bool, typer.Option(help="replace the layer's features")] = False,
    repair_invalid: Annotated[bool, typer.Option(help="repair invalid geometries")] = False,
) -> None:
    """Import files into a map layer, each in one transaction (all of it or none)."""
    chosen = settings(ctx)
    for path in files:
        if not path.is_file():
            raise fail(f"{path}: no such file")
    results = []
    with chosen.client() as client:
        try:
            client.layers.get(layer, tenant=tenant)
        except NotFound:
            if not create:
                raise fail(f"layer {layer!r} not found (add --create to make it)") from None
            geometry, fields = layer_spec_of(files[0])
            made = client.layers.create(
                layer, display_name or layer, kind, geometry, fields=fields, tenant=tenant
            )
            if not chosen.json:
                err.print(f"created {made.name} ({geometry}, {len(fields)} fields)", markup=False)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} files"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=chosen.json,
        ) as progress:
            task = progress.add_task(f"importing into {layer}", total=len(files))
            for number, path in enumerate(files):
                progress.update(task, description=f"importing {path.name}")
                result = client.layers.import_features(
                    layer,
                    path,
                    format=file_format,
                    source_crs=source_crs,
                    id_field=id_field,
                    replace=replace and number == 0,
                    repair_invalid=repair_invalid,
                    tenant=tenant,
                )
                results.append((path, result))
                progress.advance(task)
    if chosen.json:
        emit(
            {
                "layer": results[-1][1].layer.model_dump(mode="json"),
                "files": [
                    {"file": str(p), "imported": r.imported_count, "repaired": r.repaired_count}
                    for p, r in results
                ],
            }
        )
        return
    table = Table("file", "imported", "repaired")
    for path, result in results:
        table.add_row(str(path), str(result.imported_count), str(result.repaired_count))
    out.print(table)
    final = results[-1][1].layer
    out.print(f"{final.name}: {final.feature_count} features", markup=False)
