"""gRPC adapter of the empower service.

The v1 contract is published so that gateways, SDKs and scenario templates can be
written against it; until the component lands every method answers UNIMPLEMENTED
with a message saying so.
"""

from __future__ import annotations

from grassroots.empower.v1 import empower_service_pb2 as pb
from grassroots.empower.v1 import empower_service_pb2_grpc as pb_grpc
from services.kit.component import ServiceComponent
from services.kit.unimplemented import fill_unimplemented

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EmpowerService"].full_name


class EmpowerServicer(pb_grpc.EmpowerServiceServicer):
    """Nothing yet: every method comes from fill_unimplemented below."""


fill_unimplemented(
    EmpowerServicer, SERVICE_NAME, "the empower component (tenants, identity, catalog)"
)


def build_component() -> ServiceComponent:
    return ServiceComponent(
        [(EmpowerServicer(), pb_grpc.add_EmpowerServiceServicer_to_server)], [SERVICE_NAME]
    )
