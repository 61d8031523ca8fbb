"""What the README's `grpcurl` lines need, for machines without grpcurl (Debian has none).

`grpcurl -plaintext [-H 'name: value']... [-d JSON] ADDRESS (list | pkg.Service/Method)`:
like grpcurl it learns the contract from the server's reflection alone, so the README
commands are tested as a reader without proto files runs them. Unary methods only.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="grpcurl")
    parser.add_argument("-plaintext", action="store_true")
    parser.add_argument("-H", action="append", default=[], dest="headers")
    parser.add_argument("-d", default="{}", dest="data")
    parser.add_argument("address")
    parser.add_argument("target")
    args = parser.parse_args(argv)
    with grpc.insecure_channel(args.address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        if args.target == "list":
            print("\n".join(sorted(database.get_services())))
            return 0
        service_name, _, method_name = args.target.replace("/", ".").rpartition(".")
        pool = descriptor_pool.DescriptorPool(database)
        method = pool.FindServiceByName(service_name).methods_by_name[method_name]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        request = json_format.Parse(args.data, request_class())
        metadata = [tuple(part.strip() for part in h.split(":", 1)) for h in args.headers]
        call = channel.unary_unary(
            f"/{service_name}/{method_name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        try:
            response = call(request, metadata=[(k.lower(), v) for k, v in metadata], timeout=30)
        except grpc.RpcError as exc:
            print(f"ERROR:\n  Code: {exc.code().name}\n  Message: {exc.details()}", file=sys.stderr)
            return 1
        print(json_format.MessageToJson(response))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
