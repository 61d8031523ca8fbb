"""Bad input over gRPC: INVALID_ARGUMENT naming the field, and nothing half-applied."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from grassroots.command.v1 import command_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.status import failure_of
from tests.conftest import TOWN, XIANGYANG, XINGMING
from tests.unit.command.test_loop import (
    FAR,
    NEAR,
    OTHER,
    desk,
    eventually,
    report,
    setup_town,
    task_of,
    worker,
)


async def refused(call) -> tuple[grpc.StatusCode, set[str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    failure = failure_of(caught.value)
    return caught.value.code(), {v.field for v in failure.violations}


async def test_a_bad_rule_names_its_fields_and_is_not_stored(command):
    stub = command.stub

    def create(rule: pb.RoutingRule):
        return stub.CreateRoutingRule(
            pb.CreateRoutingRuleRequest(parent=tenancy.tenant_name(TOWN), routing_rule=rule),
            metadata=desk(),
        )

    # The contract's bounds first (checked before any handler), then the domain's rules.
    code, fields = await refused(create(pb.RoutingRule(category="x", min_severity=7)))
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"routing_rule.min_severity"})
    code, fields = await refused(
        create(pb.RoutingRule(category="Garbage!", sla=Duration(seconds=-5)))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert {"routing_rule.category", "routing_rule.handler_role", "routing_rule.sla"} <= fields
    listed = await stub.ListRoutingRules(
        pb.ListRoutingRulesRequest(parent=tenancy.tenant_name(TOWN)), metadata=desk()
    )
    assert list(listed.routing_rules) == []


async def test_a_bad_profile_names_its_fields(command):
    code, fields = await refused(
        command.stub.CreateHandlerProfile(
            pb.CreateHandlerProfileRequest(
                parent=tenancy.tenant_name(XINGMING),
                handler_profile=pb.HandlerProfile(
                    user="users/u_someone",
                    roles=["grid_worker"],
                    position=geo_pb2.GeoPoint(longitude=121.1, latitude=91.0),
                ),
            ),
            metadata=desk(),
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "handler_profile.position.latitude" in fields
    code, fields = await refused(
        command.stub.CreateHandlerProfile(
            pb.CreateHandlerProfileRequest(
                parent=tenancy.tenant_name(XINGMING),
                handler_profile=pb.HandlerProfile(user="someone", capacity=1000),
            ),
            metadata=desk(),
        )
    )
    assert fields == {"handler_profile.user", "handler_profile.capacity"}  # the contract's
    code, fields = await refused(
        command.stub.CreateHandlerProfile(
            pb.CreateHandlerProfileRequest(
                parent=tenancy.tenant_name(XINGMING),
                handler_profile=pb.HandlerProfile(user="users/u_someone"),
            ),
            metadata=desk(),
        )
    )
    assert fields == {"handler_profile.roles"}  # the domain's: a handler holds a role


async def test_bad_moves_name_the_field_or_the_state(command, grid_index):
    _, lon, lat = await setup_town(command, grid_index)
    event = await report(command, lon, lat)
    task = await eventually(lambda: task_of(command, event.name))
    stub = command.stub
    code, fields = await refused(
        stub.TransferTask(
            pb.TransferTaskRequest(name=task.name, handler=OTHER, reason="closer"),
            metadata=desk(),
        )
    )
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"handler"})  # another village
    code, fields = await refused(
        stub.TransferTask(pb.TransferTaskRequest(name=task.name, handler=FAR), metadata=desk())
    )
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"reason"})
    await stub.AcceptTask(pb.AcceptTaskRequest(name=task.name), metadata=worker(NEAR))
    code, fields = await refused(
        stub.ResolveTask(
            pb.ResolveTaskRequest(name=task.name, note="done", media_uris=["http://x/y.jpg"]),
            metadata=worker(NEAR),
        )
    )
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"media_uris[0]"})
    # PostgreSQL keeps no NUL in text: refused before any store, naming the field.
    code, fields = await refused(
        stub.ResolveTask(
            pb.ResolveTaskRequest(name=task.name, note="a\x00b"), metadata=worker(NEAR)
        )
    )
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"note"})
    unchanged = await stub.GetTask(pb.GetTaskRequest(name=task.name), metadata=desk())
    assert unchanged.state == pb.Task.STATE_ACCEPTED and not unchanged.resolution_note
    code, _ = await refused(
        stub.AcceptTask(pb.AcceptTaskRequest(name=task.name + "x"), metadata=worker(NEAR))
    )
    assert code == grpc.StatusCode.NOT_FOUND


async def test_unroutable_explanations_and_malformed_names(command):
    stub = command.stub
    code, _ = await refused(
        stub.ExplainRouting(
            pb.ExplainRoutingRequest(
                parent=tenancy.tenant_name(XIANGYANG), category="roads.damage"
            ),
            metadata=desk(XIANGYANG),
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    code, fields = await refused(
        stub.AssignTask(
            pb.AssignTaskRequest(parent=tenancy.tenant_name(TOWN), event="not-an-event"),
            metadata=desk(),
        )
    )
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"event"})
    code, fields = await refused(
        stub.ListTasks(
            pb.ListTasksRequest(parent=tenancy.tenant_name(TOWN), filter='sla_status = "late"'),
            metadata=desk(),
        )
    )
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"filter"})


async def test_a_rule_id_chosen_by_the_caller_is_kept_and_taken_only_once(command):
    stub = command.stub
    rule = pb.RoutingRule(category="environment.*", handler_role="grid_worker")

    def create(tenant: str, rule_id: str):
        return stub.CreateRoutingRule(
            pb.CreateRoutingRuleRequest(
                parent=tenancy.tenant_name(tenant), routing_rule=rule, routing_rule_id=rule_id
            ),
            metadata=desk(),
        )

    made = await create(XINGMING, "sc-environment")
    assert made.name == f"{tenancy.tenant_name(XINGMING)}/routingRules/sc-environment"
    got = await stub.GetRoutingRule(pb.GetRoutingRuleRequest(name=made.name), metadata=desk())
    assert got.category == "environment.*"
    # The same id in another village is another rule; in the same village it is taken.
    assert (await create(XIANGYANG, "sc-environment")).name.endswith("/sc-environment")
    code, _ = await refused(create(XINGMING, "sc-environment"))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    code, fields = await refused(create(XINGMING, "Bad Id"))
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"routing_rule_id"})


async def test_a_retry_with_the_same_request_id_answers_the_rule_it_made(command):
    stub = command.stub

    def create(request_id: str):
        return stub.CreateRoutingRule(
            pb.CreateRoutingRuleRequest(
                parent=tenancy.tenant_name(XINGMING),
                routing_rule=pb.RoutingRule(category="roads.*", handler_role="grid_worker"),
                request_id=request_id,
            ),
            metadata=desk(),
        )

    first = await create("install-roads-1")
    again = await create("install-roads-1")
    other = await create("install-roads-2")
    assert again.name == first.name
    assert other.name != first.name
    listed = await stub.ListRoutingRules(
        pb.ListRoutingRulesRequest(parent=tenancy.tenant_name(XINGMING)), metadata=desk()
    )
    assert sum(r.category == "roads.*" for r in listed.routing_rules) == 2
