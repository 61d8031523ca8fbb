"""gRPC adapter of the command service.

The v1 contract is published so that gateways, SDKs and scenario templates can be
written against it; until the component lands every method answers UNIMPLEMENTED
with a message saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from grassroots.command.v1 import command_service_pb2 as pb
from grassroots.command.v1 import command_service_pb2_grpc as pb_grpc
from services.kit.component import ServiceComponent
from services.kit.scopes import method_scopes
from services.kit.unimplemented import fill_unimplemented

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CommandService"].full_name


class CommandServicer(pb_grpc.CommandServiceServicer):
    """Nothing yet: every method comes from fill_unimplemented below."""


fill_unimplemented(
    CommandServicer, SERVICE_NAME, "the command component (routing, assignment, SLA timers)"
)


def build_component(closers: Sequence[Callable[[], Any]] = ()) -> ServiceComponent:
    return ServiceComponent(
        # The methods come from fill_unimplemented, which mypy cannot see.
        [(CommandServicer(), pb_grpc.add_CommandServiceServicer_to_server)],  # type: ignore[abstract]
        [SERVICE_NAME],
        closers,
        method_scopes=method_scopes(SERVICE_NAME),
    )
