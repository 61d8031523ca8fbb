"""Command line for town GIS staff: import a file into a layer, export a layer.

    python -m services.map.cli import tenants/sh-jiading-anting-xingming/layers/hydrants \\
        hydrants.geojson [--format geojson] [--source-crs EPSG:4490] [--replace] [--repair]
    python -m services.map.cli export tenants/.../layers/hydrants out.gpkg [--crs EPSG:4490]

It calls the map over gRPC through the platform's edge (GRASSROOTS_EDGE_ADDRESS,
default 127.0.0.1:50050) with an app's API key (--api-key or GRASSROOTS_API_KEY), so
the key's tenant, scopes and quota apply exactly as they do over REST.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc

from grassroots.map.v1 import map_service_pb2 as pb
from grassroots.map.v1 import map_service_pb2_grpc as pb_grpc
from services.kit.status import failure_of

SUFFIX_FORMATS = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".gpkg": "gpkg",
    ".zip": "shapefile",
    ".csv": "csv",
}


def _format(path: Path, given: str | None) -> str:
    if given:
        return given
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SystemExit(f"cannot tell the format of {path.name}; pass --format")
    return fmt


EDGE_ADDRESS_VARIABLE = "GRASSROOTS_EDGE_ADDRESS"
API_KEY_VARIABLE = "GRASSROOTS_API_KEY"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.map.cli",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = {
        "address": os.environ.get(EDGE_ADDRESS_VARIABLE, "127.0.0.1:50050"),
        "api_key": os.environ.get(API_KEY_VARIABLE, ""),
    }
    # Where to connect and with which key, accepted before or after the command.
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--address",
        default=argparse.SUPPRESS,
        help=f"the platform's gRPC edge (${EDGE_ADDRESS_VARIABLE}; {defaults['address']})",
    )
    connection.add_argument(
        "--api-key",
        default=argparse.SUPPRESS,
        help=f"your app's key, grk_... (${API_KEY_VARIABLE})",
    )
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--api-key", help=argparse.SUPPRESS)
    parser.set_defaults(**defaults)
    commands = parser.add_subparsers(dest="command", required=True)
    imp = commands.add_parser(
        "import", parents=[connection], help="import a file into a layer, all or nothing"
    )
    imp.add_argument("layer", help="tenants/{tenant}/layers/{layer}")
    imp.add_argument("file", type=Path)
    imp.add_argument("--format", choices=sorted(set(SUFFIX_FORMATS.values())))
    imp.add_argument("--source-crs", default="")
    imp.add_argument("--id-field", default="")
    imp.add_argument("--source-layer", default="")
    imp.add_argument("--lon-field", default="lon")
    imp.add_argument("--lat-field", default="lat")
    imp.add_argument("--replace", action="store_true")
    imp.add_argument("--repair", action="store_true")
    imp.add_argument("--ignore-unknown-fields", action="store_true")
    exp = commands.add_parser("export", parents=[connection], help="export a layer as a file")
    exp.add_argument("layer")
    exp.add_argument("file", type=Path)
    exp.add_argument("--format", choices=sorted(set(SUFFIX_FORMATS.values())))
    exp.add_argument("--crs", default="")
    args = parser.parse_args(argv)
    if not args.api_key.strip():
        print(
            f"error: no API key: pass --api-key or set {API_KEY_VARIABLE} "
            "(your village secretary issues one; make run prints the demo keys)",
            file=sys.stderr,
        )
        return 2
    metadata = (("x-api-key", args.api_key.strip()),)

    with grpc.insecure_channel(args.address) as channel:
        stub = pb_grpc.MapServiceStub(channel)
        try:
            if args.command == "import":
                response = stub.ImportFeatures(
                    pb.ImportFeaturesRequest(
                        parent=args.layer,
                        data=args.file.read_bytes(),
                        format=_format(args.file, args.format),
                        source_crs=args.source_crs,
                        repair_invalid=args.repair,
                        replace=args.replace,
                        id_field=args.id_field,
                        source_layer=args.source_layer,
                        lon_field=args.lon_field,
                        lat_field=args.lat_field,
                        ignore_unknown_fields=args.ignore_unknown_fields,
                    ),
                    metadata=metadata,
                    timeout=300,
                )
                print(
                    f"imported {response.imported_count} features "
                    f"({response.repaired_count} repaired); "
                    f"{response.layer.name} now has {response.layer.feature_count}"
                )
            else:
                exported = stub.ExportFeatures(
                    pb.ExportFeaturesRequest(
                        name=args.layer, format=_format(args.file, args.format), crs=args.crs
                    ),
                    metadata=metadata,
                    timeout=300,
                )
                args.file.write_bytes(exported.data)
                print(f"wrote {len(exported.data)} bytes to {args.file}")
        except grpc.RpcError as exc:
            failure = failure_of(exc)  # type: ignore[arg-type]
            print(f"error: {failure.code.name}: {failure.message}", file=sys.stderr)
            for violation in failure.violations:
                print(f"  {violation.field}: {violation.description}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
