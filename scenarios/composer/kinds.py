"""How each kind of resource a manifest declares is read, created, changed and removed,
through the owning component's public gRPC contract (never its database).

A kind is addressed in one of two ways:
* **keyed**: the manifest's id is the resource's id (a category code, a model id, a
  routing rule id), so the resource's name is known before it exists and two
  scenarios declaring the same id share one resource;
* **server-named** (emergency and service plans, points rules, notices): the service
  picks the name. They are found again by the name recorded at install, or else by display name;
  plans are created with a request id derived from the specification, so a retry after
  a lost answer returns the plan the first call made.
A kind with an update is changed in place (an update mask of the fields the manifest
writes); one without replaces (delete, then create) when it can delete, and otherwise
cannot be changed in place; a kind without a delete is released, not removed, on
uninstall (the plan says so). A kind may say when a resource cannot be changed or
deleted right now (`busy`: an emergency plan with an active level), which the plan
reports as a blocker before any step runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.message import Message

from grassroots.command.v1 import command_service_pb2 as command_pb
from grassroots.command.v1 import command_service_pb2_grpc as command_grpc
from grassroots.command.v1 import plans_service_pb2 as plans_pb
from grassroots.command.v1 import plans_service_pb2_grpc as plans_grpc
from grassroots.empower.v1 import catalog_service_pb2_grpc as catalog_grpc
from grassroots.empower.v1 import credit_service_pb2 as credit_pb
from grassroots.empower.v1 import credit_service_pb2_grpc as credit_grpc
from grassroots.empower.v1 import empower_service_pb2_grpc as empower_grpc
from grassroots.empower.v1 import forms_service_pb2 as forms_pb
from grassroots.empower.v1 import forms_service_pb2_grpc as forms_grpc
from grassroots.empower.v1 import notices_service_pb2 as notices_pb
from grassroots.empower.v1 import notices_service_pb2_grpc as notices_grpc
from grassroots.empower.v1 import points_service_pb2 as points_pb
from grassroots.empower.v1 import points_service_pb2_grpc as points_grpc
from grassroots.events.v1 import events_service_pb2 as events_pb
from grassroots.events.v1 import events_service_pb2_grpc as events_grpc
from grassroots.map.v1 import map_service_pb2 as map_pb
from grassroots.map.v1 import map_service_pb2_grpc as map_grpc
from grassroots.twin.v1 import twin_service_pb2 as twin_pb
from grassroots.twin.v1 import twin_service_pb2_grpc as twin_grpc
from services.command import api as command_api
from services.command import plans_api
from services.command.domain import emergency, routing, service_orders
from services.empower.domain.credit import check_bands
from services.empower.domain.credit_model import Band
from services.kit import tenancy
from services.kit.errors import InvalidArgument

# Why the composer deletes a plan, for the command log (its actor is the composer).
COMPOSER_REASON = "removed by the scenario composer: the scenario no longer declares it"


class Stubs:
    """One stub per service the composer calls, over the kit's channels."""

    def __init__(self, channels: Mapping[str, grpc.aio.Channel]) -> None:
        self.map = map_grpc.MapServiceStub(channels["map"])
        self.events = events_grpc.EventsServiceStub(channels["events"])
        self.command = command_grpc.CommandServiceStub(channels["command"])
        self.plans = plans_grpc.PlansServiceStub(channels["command"])
        self.twin = twin_grpc.TwinServiceStub(channels["twin"])
        self.points = points_grpc.PointsServiceStub(channels["empower"])
        self.forms = forms_grpc.FormsServiceStub(channels["empower"])
        self.notices = notices_grpc.NoticesServiceStub(channels["empower"])
        self.catalog = catalog_grpc.CatalogServiceStub(channels["empower"])
        self.credit = credit_grpc.CreditServiceStub(channels["empower"])
        self.tenants = empower_grpc.EmpowerServiceStub(channels["empower"])


Lister = Callable[[Stubs, str], Awaitable[list[Any]]]
Creator = Callable[[Stubs, str, str, Any, str], Awaitable[Any]]
Deleter = Callable[[Stubs, str], Awaitable[None]]
# (stubs, name, message, the fields the manifest writes as JSON names, why) -> changed.
Updater = Callable[[Stubs, str, Any, tuple[str, ...], str], Awaitable[Any]]
# (current resource, the fields that would change, or None for a delete) -> why it
# cannot be done now, or None.
Busy = Callable[[Any, tuple[str, ...] | None], str | None]
# A component's own rules, checked before any call: (message, parent) -> (field, why)
# or None. The component's adapter converts the message and its domain validates it,
# so each rule is declared once, in the component.
Checker = Callable[[Any, str], tuple[str, str] | None]


@dataclass(frozen=True)
class Kind:
    """What the composer needs to know about one kind of resource."""

    name: str  # as manifests spell it: "command.routing_rules"
    message: type[Message]
    collection: str  # the name's collection segment, for keyed kinds
    list_all: Lister  # resources at or above the village (filtered to the village's own)
    create: Creator  # (stubs, parent, key, message, request id) -> created message
    key_field: str = ""  # where the key goes in the message ("code" for categories)
    keyed: bool = True
    delete: Deleter | None = None
    upsert: bool = False  # create again changes it in place
    check: Checker | None = None
    update: Updater | None = None  # changes it in place, keeping its name
    busy: Busy | None = None

    def name_of(self, parent: str, key: str) -> str:
        return f"{parent}/{self.collection}/{key}"

    def parse(self, spec: Mapping[str, Any], key: str) -> Message:
        """The specification as the component's message (ParseError names the field)."""
        body = dict(spec)
        if self.key_field:
            body[self.key_field] = key
        message = self.message()
        json_format.ParseDict(body, message)
        return message


async def _pages(call: Callable[[str], Awaitable[Any]], field: str) -> list[Any]:
    found: list[Any] = []
    token = ""
    while True:
        page = await call(token)
        found.extend(getattr(page, field))
        token = getattr(page, "next_page_token", "")
        if not token:
            return found


# ---- map -------------------------------------------------------------------------------


async def _list_layers(s: Stubs, parent: str) -> list[Any]:
    return await _pages(
        lambda t: s.map.ListLayers(
            map_pb.ListLayersRequest(parent=parent, page_size=1000, page_token=t)
        ),
        "layers",
    )


async def _create_layer(s: Stubs, parent: str, key: str, message: Any, _: str) -> Any:
    return await s.map.CreateLayer(
        map_pb.CreateLayerRequest(parent=parent, layer_id=key, layer=message)
    )


async def _delete_layer(s: Stubs, name: str) -> None:
    await s.map.DeleteLayer(map_pb.DeleteLayerRequest(name=name))


# ---- events ----------------------------------------------------------------------------


async def _list_categories(s: Stubs, parent: str) -> list[Any]:
    return await _pages(
        lambda t: s.events.ListCategories(
            events_pb.ListCategoriesRequest(parent=parent, page_size=1000, page_token=t)
        ),
        "categories",
    )


async def _create_category(s: Stubs, parent: str, key: str, message: Any, _: str) -> Any:
    return await s.events.CreateCategory(
        events_pb.CreateCategoryRequest(parent=parent, category=message)
    )


# ---- twin ------------------------------------------------------------------------------


async def _list_models(s: Stubs, parent: str) -> list[Any]:
    return await _pages(
        lambda t: s.twin.ListModels(
            twin_pb.ListModelsRequest(parent=parent, page_size=1000, page_token=t)
        ),
        "models",
    )


async def _create_model(s: Stubs, parent: str, key: str, message: Any, _: str) -> Any:
    return await s.twin.CreateModel(twin_pb.CreateModelRequest(parent=parent, model=message))


async def _list_rules(s: Stubs, parent: str) -> list[Any]:
    return await _pages(
        lambda t: s.twin.ListRules(
            twin_pb.ListRulesRequest(parent=parent, page_size=1000, page_token=t)
        ),
        "rules",
    )


async def _create_rule(s: Stubs, parent: str, key: str, message: Any, _: str) -> Any:
    return await s.twin.CreateRule(
        twin_pb.CreateRuleRequest(parent=parent, rule=message, rule_id=key)
    )


async def _delete_twin_rule(s: Stubs, name: str) -> None:
    await s.twin.DeleteRule(twin_pb.DeleteRuleRequest(name=name))


# ---- command ---------------------------------------------------------------------------


async def _list_routing_rules(s: Stubs, parent: str) -> list[Any]:
    return await _pages(
        lambda t: s.command.ListRoutingRules(
            command_pb.ListRoutingRulesRequest(parent=parent, page_size=1000, page_token=t)
        ),
        "routing_rules",
    )


async def _create_routing_rule(
    s: Stubs, parent: str, key: str, message: Any, request_id: str
) -> Any:
    return await s.command.CreateRoutingRule(
        command_pb.CreateRoutingRuleRequest(
            parent=parent, routing_rule=message, routing_rule_id=key, request_id=request_id
        )
    )


async def _delete_routing_rule(s: Stubs, name: str) -> None:
    await s.command.DeleteRoutingRule(command_pb.DeleteRoutingRuleRequest(name=name))


def _check_routing_rule(message: Any, parent: str) -> tuple[str, str] | None:
    """Command's rule checks (category pattern, a role, team or department, SLAs ...)."""
    village = tenancy.parse_parent(parent)
    return _refusal(
        lambda: routing.validate(command_api.rule_from(village, message)), "routing_rule."
    )


def _check_emergency_plan(message: Any, _: str) -> tuple[str, str] | None:
    """Command's plan checks (levels 3, 2 and 1, each once; roles and teams; texts)."""
    return _refusal(
        lambda: emergency.validate(plans_api.emergency_definition(message)), "emergency_plan."
    )


def _check_service_plan(message: Any, _: str) -> tuple[str, str] | None:
    """Command's service plan checks (a rule that fires, targets, roles), as of now."""

    def check() -> None:
        definition = plans_api.service_definition(message)
        start = definition.start_time.replace(microsecond=0)  # as the desk stores it
        service_orders.validate(replace(definition, start_time=start), datetime.now(UTC))

    return _refusal(check, "service_plan.")


async def _list_emergency_plans(s: Stubs, parent: str) -> list[Any]:
    return await _pages(
        lambda t: s.plans.ListEmergencyPlans(
            plans_pb.ListEmergencyPlansRequest(parent=parent, page_size=1000, page_token=t)
        ),
        "emergency_plans",
    )


async def _create_emergency_plan(
    s: Stubs, parent: str, key: str, message: Any, request_id: str
) -> Any:
    return await s.plans.CreateEmergencyPlan(
        plans_pb.CreateEmergencyPlanRequest(
            parent=parent, emergency_plan=message, request_id=request_id
        )
    )


def _mask(message: Message, written: tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
    """The contract's names of the fields the manifest writes that an update may change."""
    return [
        f.name
        for f in message.DESCRIPTOR.fields
        if f.name in allowed and (f.name in written or f.json_name in written)
    ]


# What UpdateEmergencyPlan and UpdateServicePlan change (the rest is output only).
_EMERGENCY_FIELDS = ("display_name", "signal", "levels", "location")
_SERVICE_FIELDS = (
    "display_name",
    "recurrence",
    "start_time",
    "visit_minutes",
    "handler_role",
    "carers",
    "max_check_in_distance_meters",
    "targets",
    "escalation_role",
)
# What an active level freezes: its response, and what moves it.
_FROZEN_WHILE_ACTIVE = ("levels", "signal")


async def _update_emergency_plan(
    s: Stubs, name: str, message: Any, written: tuple[str, ...], reason: str
) -> Any:
    plan = plans_pb.EmergencyPlan()
    plan.CopyFrom(message)
    plan.name = name
    paths = _mask(message, written, _EMERGENCY_FIELDS)
    return await s.plans.UpdateEmergencyPlan(
        plans_pb.UpdateEmergencyPlanRequest(
            emergency_plan=plan, update_mask=field_mask_pb2.FieldMask(paths=paths), reason=reason
        )
    )


async def _delete_emergency_plan(s: Stubs, name: str) -> None:
    await s.plans.DeleteEmergencyPlan(
        plans_pb.DeleteEmergencyPlanRequest(name=name, reason=COMPOSER_REASON)
    )


def _emergency_plan_busy(current: Any, changed: tuple[str, ...] | None) -> str | None:
    """A plan with an active level keeps its levels and signal, and is not deleted."""
    if not current.current_level:
        return None
    if changed is not None and not set(changed) & set(_FROZEN_WHILE_ACTIVE):
        return None
    what = "deleted" if changed is None else f"changed in {', '.join(changed)}"
    return (
        f"level {current.current_level} of it is active, so it cannot be {what}: "
        "stand it down first (level 0), then plan again"
    )


async def _update_service_plan(
    s: Stubs, name: str, message: Any, written: tuple[str, ...], reason: str
) -> Any:
    plan = plans_pb.ServicePlan()
    plan.CopyFrom(message)
    plan.name = name
    paths = _mask(message, written, _SERVICE_FIELDS)
    return await s.plans.UpdateServicePlan(
        plans_pb.UpdateServicePlanRequest(
            service_plan=plan, update_mask=field_mask_pb2.FieldMask(paths=paths), reason=reason
        )
    )


async def _delete_service_plan(s: Stubs, name: str) -> None:
    await s.plans.DeleteServicePlan(
        plans_pb.DeleteServicePlanRequest(name=name, reason=COMPOSER_REASON)
    )


async def _list_service_plans(s: Stubs, parent: str) -> list[Any]:
    return await _pages(
        lambda t: s.plans.ListServicePlans(
            plans_pb.ListServicePlansRequest(parent=parent, page_size=1000, page_token=t)
        ),
        "service_plans",
    )


async def _create_service_plan(
    s: Stubs, parent: str, key: str, message: Any, request_id: str
) -> Any:
    return await s.plans.CreateServicePlan(
        plans_pb.CreateServicePlanRequest(
            parent=parent, service_plan=message, request_id=request_id
        )
    )


# ---- empower ---------------------------------------------------------------------------


async def _list_forms(s: Stubs, parent: str) -> list[Any]:
    return list((await s.forms.ListForms(forms_pb.ListFormsRequest(parent=parent))).forms)


async def _create_form(s: Stubs, parent: str, key: str, message: Any, _: str) -> Any:
    return await s.forms.CreateForm(
        forms_pb.CreateFormRequest(parent=parent, form=message, form_id=key)
    )


async def _list_report_templates(s: Stubs, parent: str) -> list[Any]:
    found = await s.forms.ListReportTemplates(forms_pb.ListReportTemplatesRequest(parent=parent))
    return list(found.report_templates)


async def _create_report_template(s: Stubs, parent: str, key: str, message: Any, _: str) -> Any:
    return await s.forms.CreateReportTemplate(
        forms_pb.CreateReportTemplateRequest(
            parent=parent, report_template=message, report_template_id=key
        )
    )


async def _list_points_rules(s: Stubs, parent: str) -> list[Any]:
    found = await s.points.ListPointsRules(points_pb.ListPointsRulesRequest(parent=parent))
    return list(found.points_rules)


async def _delete_points_rule(s: Stubs, name: str) -> None:
    await s.points.DeletePointsRule(points_pb.DeletePointsRuleRequest(name=name))


async def _create_points_rule(s: Stubs, parent: str, key: str, message: Any, _: str) -> Any:
    return await s.points.CreatePointsRule(
        points_pb.CreatePointsRuleRequest(parent=parent, points_rule=message)
    )


async def _list_credit_policies(s: Stubs, parent: str) -> list[Any]:
    found = await s.credit.ListCreditPolicies(credit_pb.ListCreditPoliciesRequest(parent=parent))
    return list(found.credit_policies)


async def _create_credit_policy(s: Stubs, parent: str, key: str, message: Any, _: str) -> Any:
    return await s.credit.CreateCreditPolicy(
        credit_pb.CreateCreditPolicyRequest(
            parent=parent, credit_policy_id=key, credit_policy=message
        )
    )


def _refusal(check: Callable[[], object], prefix: str) -> tuple[str, str] | None:
    """The first field a component's validation refuses, below the resource (`levels`,
    not `emergency_plan.levels`), or None when it passes."""
    try:
        check()
    except InvalidArgument as exc:
        found = exc.violations[0]
        return found.field.removeprefix(prefix), found.description
    return None


def _check_credit_policy(message: Any, _: str) -> tuple[str, str] | None:
    """Empower's own band rule (highest first, strictly falling, the last at 0)."""
    return _refusal(
        lambda: check_bands([Band(b.band, b.min_score) for b in message.bands], "bands"), ""
    )


async def _delete_credit_policy(s: Stubs, name: str) -> None:
    await s.credit.DeleteCreditPolicy(credit_pb.DeleteCreditPolicyRequest(name=name))


async def _list_notices(s: Stubs, parent: str) -> list[Any]:
    return await _pages(
        lambda t: s.notices.ListNotices(
            notices_pb.ListNoticesRequest(parent=parent, page_size=1000, page_token=t)
        ),
        "notices",
    )


async def _create_notice(s: Stubs, parent: str, key: str, message: Any, request_id: str) -> Any:
    """A notice is sent once: its request id, derived from its text and audience, makes a
    retried apply return the notice the first call sent."""
    return await s.notices.CreateNotice(
        notices_pb.CreateNoticeRequest(parent=parent, notice=message, request_id=request_id)
    )


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "map.layers",
            map_pb.Layer,
            "layers",
            _list_layers,
            _create_layer,
            delete=_delete_layer,
        ),
        Kind(
            "events.categories",
            events_pb.Category,
            "categories",
            _list_categories,
            _create_category,
            key_field="code",
            upsert=True,
        ),
        Kind(
            "twin.models", twin_pb.Model, "models", _list_models, _create_model, key_field="modelId"
        ),
        Kind(
            "twin.rules", twin_pb.Rule, "rules", _list_rules, _create_rule, delete=_delete_twin_rule
        ),
        Kind(
            "command.routing_rules",
            command_pb.RoutingRule,
            "routingRules",
            _list_routing_rules,
            _create_routing_rule,
            delete=_delete_routing_rule,
            check=_check_routing_rule,
        ),
        Kind(
            "command.emergency_plans",
            plans_pb.EmergencyPlan,
            "emergencyPlans",
            _list_emergency_plans,
            _create_emergency_plan,
            keyed=False,
            delete=_delete_emergency_plan,
            update=_update_emergency_plan,
            busy=_emergency_plan_busy,
            check=_check_emergency_plan,
        ),
        Kind(
            "command.service_plans",
            plans_pb.ServicePlan,
            "servicePlans",
            _list_service_plans,
            _create_service_plan,
            keyed=False,
            delete=_delete_service_plan,
            update=_update_service_plan,
            check=_check_service_plan,
        ),
        Kind("empower.forms", forms_pb.Form, "forms", _list_forms, _create_form),
        Kind(
            "empower.report_templates",
            forms_pb.ReportTemplate,
            "reportTemplates",
            _list_report_templates,
            _create_report_template,
        ),
        Kind(
            "empower.points_rules",
            points_pb.PointsRule,
            "pointsRules",
            _list_points_rules,
            _create_points_rule,
            keyed=False,
            delete=_delete_points_rule,
        ),
        Kind(
            "empower.credit_policies",
            credit_pb.CreditPolicy,
            "creditPolicies",
            _list_credit_policies,
            _create_credit_policy,
            delete=_delete_credit_policy,
            check=_check_credit_policy,
        ),
        Kind(
            "empower.notices",
            notices_pb.Notice,
            "notices",
            _list_notices,
            _create_notice,
            keyed=False,
        ),
    )
}
