"""The plan: what applying a manifest to a village would change, worked out without I/O.

Inputs are what the composer read (the village's resources of each kind, this
scenario's install record and the other scenarios' records); the output is a list of
actions a reader checks like `terraform plan`:

    + create   ~ change in place   -/+ replace   - delete   . release (left in place)
    = unchanged

Ownership is the install record's (ADR 26): a resource another installed scenario
also lists is shared and never deleted or changed by one of them; a resource that was
in the village before any scenario is used but never owned.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from scenarios.composer.kinds import KINDS, Kind
from scenarios.composer.manifest import (
    _REFERENCE,
    BUILTINS,
    Declared,
    Manifest,
    ManifestError,
    render,
)
from scenarios.composer.manifest import KINDS as ORDER
from services.kit import tenancy


class Op(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    RELEASE = "release"
    KEEP = "keep"


SYMBOLS = {
    Op.CREATE: "+",
    Op.UPDATE: "~",
    Op.REPLACE: "-/+",
    Op.DELETE: "-",
    Op.RELEASE: ".",
    Op.KEEP: "=",
}


@dataclass(frozen=True)
class Recorded:
    """A resource as an install record lists it."""

    name: str
    kind: str
    key: str
    digest: str
    owned: bool


@dataclass(frozen=True)
class Record:
    """A scenario's install record in a village, as read from empower's catalog."""

    name: str
    scenario: str
    version: str
    complete: bool
    settings: Mapping[str, Any]
    resources: tuple[Recorded, ...]


@dataclass(frozen=True)
class Desired:
    """A declared resource with the village's settings filled in."""

    declared: Declared
    message: Message
    digest: str
    written: tuple[str, ...]  # the fields the manifest wrote (JSON names), compared
    refused: str = ""  # what the component's own checks refuse in it: blocks the plan
    spec: Mapping[str, Any] | None = None  # as rendered: the shape of what is written


@dataclass(frozen=True)
class Action:
    op: Op
    kind: str
    key: str
    name: str  # the resource's name; empty for a server-named one not made yet
    digest: str = ""
    owned: bool = True
    fields: tuple[str, ...] = ()  # what differs, for ~ and -/+
    note: str = ""
    desired: Desired | None = None
    previous: Message | None = None  # what a replace deletes, to put back if the create fails
    shared: bool = False  # released because another installed scenario lists it

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.op]

    def line(self) -> str:
        label = self.name or f"{self.kind}/{self.key} (named by the service)"
        extra = f" ({', '.join(self.fields)})" if self.fields else ""
        note = f"  # {self.note}" if self.note else ""
        return f"  {self.symbol:>3} {self.kind} {self.key}: {label}{extra}{note}"


@dataclass(frozen=True)
class Plan:
    """What apply (or uninstall) would do to one village for one scenario."""

    village: str
    scenario: str
    from_version: str  # empty when not installed
    to_version: str  # empty for an uninstall
    settings: Mapping[str, Any]
    actions: tuple[Action, ...]
    record: Record | None = None
    warnings: tuple[str, ...] = ()
    blockers: tuple[str, ...] = ()

    @property
    def uninstall(self) -> bool:
        return not self.to_version

    @property
    def downgrade(self) -> bool:
        """The manifest is older than the installed version."""
        return bool(self.from_version and self.to_version) and version_key(
            self.to_version
        ) < version_key(self.from_version)

    @property
    def changes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.op != Op.KEEP)

    @property
    def record_changes(self) -> bool:
        """Whether empower's install record must be written."""
        if self.uninstall:
            return self.record is not None
        r = self.record
        return (
            r is None
            or not r.complete
            or r.version != self.to_version
            or dict(r.settings) != dict(self.settings)
            or {(x.kind, x.key, x.name, x.digest, x.owned) for x in r.resources}
            != {(a.kind, a.key, a.name, a.digest, a.owned) for a in self.kept()}
        )

    @property
    def empty(self) -> bool:
        """Applying it would change nothing at all."""
        return not self.changes and not self.record_changes

    @property
    def digest(self) -> str:
        """What applying would do, as 16 hex digits: an apply given the digest of the
        plan a reader checked refuses to do anything else (PlanChanged)."""
        shown = {
            "village": self.village,
            "scenario": self.scenario,
            "from": self.from_version,
            "to": self.to_version,
            "settings": dict(self.settings),
            "actions": [
                [a.op.value, a.kind, a.key, a.name, a.digest, a.owned, list(a.fields)]
                for a in self.actions
            ],
            "record": self.record_changes,
        }
        text = json.dumps(shown, sort_keys=True, default=str, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def check_digest(self, expected: str) -> None:
        """Refuse when the reader checked another plan than this one (none given: any)."""
        if expected and expected != self.digest:
            raise PlanChanged(
                "plan_digest",
                f"the plan changed since it was shown (shown {expected}, now {self.digest}); "
                "review the new plan and apply that",
            )

    def kept(self) -> list[Action]:
        """The resources the record lists once the plan is applied."""
        return [a for a in self.actions if a.op not in (Op.DELETE, Op.RELEASE)]

    def counts(self) -> dict[str, int]:
        found = {op.value: 0 for op in Op}
        for a in self.actions:
            found[a.op.value] += 1
        # Of the releases, those another installed scenario still uses (the rest are gone
        # already, or not the scenario's to delete).
        found["shared"] = sum(1 for a in self.actions if a.shared)
        return found

    def render(self) -> str:
        """The plan as a reader checks it before applying."""
        if self.uninstall:
            head = f"uninstall {self.scenario} {self.from_version} from {self.village}"
        elif self.from_version and self.from_version != self.to_version:
            verb = "downgrade" if self.downgrade else "upgrade"
            head = (
                f"{verb} {self.scenario} {self.from_version} -> {self.to_version} in {self.village}"
            )
        else:
            head = f"install {self.scenario} {self.to_version} in {self.village}"
        lines = [head]
        if self.record is not None and not self.record.complete:
            lines.append("  (the last apply stopped half-way: this one finishes it)")
        lines += [a.line() for a in self.actions]
        lines += [f"  ! {b}" for b in self.blockers]
        lines += [f"  warning: {w}" for w in self.warnings]
        c = self.counts()
        lines.append(
            f"Plan: {c['create']} to create, {c['update']} to change, {c['replace']} to replace, "
            f"{c['delete']} to delete, {c['release']} to release, {c['keep']} unchanged."
        )
        if self.empty:
            lines.append("Nothing to do: the village is as the manifest says.")
        return "\n".join(lines)


# What replacing a resource its component cannot change or delete means for the village
# (a notice: a new one is sent; the old one stays with those it reached).
RELEASED_STAYS = (
    "a new one is made; the old one stays in the village (its component cannot change "
    "or delete it): retire it there"
)


class PlanBlocked(ManifestError):
    """The plan cannot be applied (a shared resource would change, or a kind cannot)."""


class PlanChanged(ManifestError):
    """The village or the template moved between the plan a reader checked and the apply."""


def version_key(version: str) -> tuple[int, ...]:
    """`1.10.0` as (1, 10, 0), to order versions (a pre-release suffix is ignored)."""
    core = version.split("+", 1)[0].split("-", 1)[0]
    return tuple(int(p) if p.isdigit() else 0 for p in core.split("."))


def digest_of(kind: str, key: str, message: Message) -> str:
    """A short hash of the specification as the component's message (so 80 and 80.0,
    or a field spelt in snake_case or camelCase, are one specification)."""
    body = json_format.MessageToDict(message)
    text = json.dumps([kind, key, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def seen_digest(message: Message, written: Iterable[str]) -> str:
    """A short hash of the written fields as the component holds them (its defaults and
    normalisations included: a points rule without a cap keeps no cap period)."""
    body = _as_dict(message)
    part = {k: body.get(k) for k in sorted(set(written))}
    text = json.dumps(part, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def spec_digest(recorded: str) -> str:
    """The specification's digest of a recorded one (`<spec>/<as the component made it>`)."""
    return recorded.split("/", 1)[0]


def desired_of(
    manifest: Manifest,
    settings: Mapping[str, Any],
    parent: str,
    overrides: Mapping[str, Any] | None = None,
) -> list[Desired]:
    """Every declared resource rendered for the village, parsed as its component's message
    and checked against the component's own rules (`Kind.check`). A value refused because
    of a village's override is an error naming the override; one the manifest itself
    writes is kept in `Desired.refused`, which blocks a plan that would write it."""
    values = {**settings, "tenant": parent, "village": tenancy.parse_parent(parent)}
    found: list[Desired] = []
    for declared in manifest.resources:
        kind = KINDS[declared.kind]
        spec = render(declared.spec, values)
        try:
            message = kind.parse(spec, declared.key)
        except json_format.ParseError as exc:
            raise ManifestError(declared.path, str(exc), manifest.source) from None
        refused = ""
        if kind.check is not None:
            refusal = kind.check(message, parent)
            if refusal is not None:
                path, why = blame(declared, refusal[0], refusal[1], overrides or {}, settings)
                if path.startswith("overrides."):  # the caller's value: a bad request
                    raise ManifestError(path, why)
                component = declared.kind.split(".")[0]
                refused = f"{path}: {why} (the {component} component refuses it)"
        written = tuple(_json_name(message, k) for k in spec)
        if kind.key_field:
            written += (_json_name(message, kind.key_field),)
        found.append(
            Desired(
                declared,
                message,
                digest_of(declared.kind, declared.key, message),
                written,
                refused,
                spec,
            )
        )
    return found


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _setting_at(spec: Any, field: str) -> str | None:
    """The setting a rendered field came from (`bands[1].min_score` -> `band_b_min`); ""
    for a value the manifest writes as it is; None when the field is not in the manifest."""
    node = spec
    for part in re.findall(r"[^.\[\]]+", field):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, Mapping) and (part in node or _camel(part) in node):
            node = node.get(part, node.get(_camel(part)))
        else:
            return None
    found = _REFERENCE.fullmatch(node) if isinstance(node, str) else None
    return found.group(1) if found and found.group(1) not in BUILTINS else ""


def blame(
    declared: Declared,
    field: str,
    why: str,
    overrides: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> tuple[str, str]:
    """Where a refused value came from: `(path, message)`. A value from a setting, or a
    field the manifest does not write, in a resource that uses the village's overrides
    names the override (the one at the field if it is one, else the
    first the resource uses) and the message names the manifest field; a value the
    manifest writes as it is names the manifest field."""
    at = f"{declared.path}.{field}" if field else declared.path
    here = _setting_at(declared.spec, field) if field else None
    used = [
        n
        for n in dict.fromkeys(m[0] for m in _REFERENCE.findall(json.dumps(declared.spec)))
        if n in overrides
    ]
    if not field and used:
        chosen = ", ".join(f"{n}={overrides[n]!r}" for n in used)
        return at, f"{why} (the village's overrides here: {chosen})"
    if here == "" or not used:
        if here:
            value = f"={settings[here]!r}" if here in settings else ""
            return at, f"{why} (the setting {here}{value})"
        return at, why
    culprit = here if here and here in overrides else used[0]
    chosen = ", ".join(f"{n}={overrides[n]!r}" for n in used)
    source = f"from the setting {here}; " if here and here != culprit else ""
    return (
        f"overrides.{culprit}",
        f"makes {at} refused: {why} ({source}the village's overrides here: {chosen})",
    )


def _json_name(message: Message, key: str) -> str:
    for f in message.DESCRIPTOR.fields:
        if key in (f.name, f.json_name):
            return f.json_name
    return key


def _as_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def _covers(have: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_covers(have.get(k), v) for k, v in want.items())
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(have) == len(want)
            and all(_covers(h, w) for h, w in zip(have, want, strict=True))
        )
    if isinstance(want, float) or isinstance(have, float):
        try:
            return math.isclose(float(have), float(want), rel_tol=1e-9, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return bool(have == want)


def _shaped(value: Any, shape: Any) -> Any:
    """`value` (a message as JSON, defaults included) cut down to the keys `shape` (the
    rendered specification) writes, at every depth: a field the manifest writes as its
    default (`team: ""`) is compared, one it leaves to the component is not."""
    if isinstance(shape, Mapping) and isinstance(value, dict):
        found = {}
        for key, inner in shape.items():
            at = key if key in value else _camel(str(key))
            if at in value:
                found[at] = _shaped(value[at], inner)
        return found
    if isinstance(shape, list) and isinstance(value, list) and len(shape) == len(value):
        return [_shaped(v, s) for v, s in zip(value, shape, strict=True)]
    return value


def differences(desired: Desired, actual: Message) -> tuple[str, ...]:
    """The written fields whose value the resource does not have. Every field the
    manifest writes counts, at any depth, also when it is written as its default (going
    back to an empty team is a change); inside nested messages what the manifest leaves
    out is not compared (the component may fill in defaults of its own there)."""
    set_fields = json_format.MessageToDict(desired.message)
    every_field = _as_dict(desired.message)
    have = _as_dict(actual)
    if desired.spec is not None:
        shape = {_json_name(desired.message, k): v for k, v in desired.spec.items()}
        want = {k: _shaped(every_field.get(k), shape.get(k)) for k in desired.written}
    else:
        want = {k: set_fields.get(k, every_field.get(k)) for k in desired.written}
    return tuple(k for k in desired.written if not _covers(have.get(k), want[k]))


def _written_copy(current: Message, written: Sequence[str]) -> Message:
    """The fields the manifest writes, as the resource has them now (what a rollback
    creates again; the rest is the component's to fill in)."""
    body = {k: v for k, v in json_format.MessageToDict(current).items() if k in written}
    copy = type(current)()
    json_format.ParseDict(body, copy)
    return copy


def _own(parent: str, name: str) -> bool:
    return name.startswith(parent + "/")


def diff(
    parent: str,
    scenario: str,
    to_version: str,
    settings: Mapping[str, Any],
    desired: Sequence[Desired],
    actual: Mapping[str, Mapping[str, Message]],
    record: Record | None,
    others: Iterable[Record],
) -> Plan:
    """The plan for `desired` (empty for an uninstall) against what is in place."""
    others = list(others)
    users: dict[str, list[str]] = {}
    for other in others:
        for r in other.resources:
            users.setdefault(r.name, []).append(other.scenario)
    shared_named = {
        (r.kind, r.key, spec_digest(r.digest)): r.name for o in others for r in o.resources
    }
    recorded: dict[str, set[str]] = {}
    for rec in [*others, *([record] if record else [])]:
        for x in rec.resources:
            recorded.setdefault(x.name, set()).add(x.digest)
    mine = {(r.kind, r.key): r for r in (record.resources if record else ())}
    actions: list[Action] = []
    blockers: list[str] = []
    wanted: set[tuple[str, str]] = set()
    for d in desired:
        kind = KINDS[d.declared.kind]
        key = d.declared.key
        wanted.add((kind.name, key))
        before = mine.get((kind.name, key))
        name, current = _find(kind, parent, d, before, actual, shared_named)
        owned = before.owned if before is not None else current is None
        if current is None:
            actions.append(Action(Op.CREATE, kind.name, key, name, d.digest, True, desired=d))
            continue
        # As an apply of this very specification left it: the component's own form of it
        # (a default it fills in, a field it clears) is not a difference.
        full = f"{d.digest}/{seen_digest(current, d.written)}"
        changed = () if full in recorded.get(name, ()) else differences(d, current)
        if not changed:
            digest = (
                before.digest if before is not None and before.digest in (d.digest, full) else full
            )
            note = f"shared with {', '.join(sorted(users[name]))}" if name in users else ""
            if not owned and name not in users:
                note = "was in the village already; used, not owned"
            actions.append(
                Action(Op.KEEP, kind.name, key, name, digest, owned, note=note, desired=d)
            )
            continue
        if name in users:
            blockers.append(
                f"{kind.name} {key} ({name}) is shared with {', '.join(sorted(users[name]))} "
                f"and differs in {', '.join(changed)}; give it another id"
            )
            continue
        if not owned:
            blockers.append(
                f"{kind.name} {key} ({name}) was in the village before this scenario and "
                f"differs in {', '.join(changed)}; it is left as it is: give the manifest's "
                "resource another id"
            )
            continue
        previous = None
        why = kind.busy(current, changed) if kind.busy is not None else None
        if why:
            blockers.append(f"{kind.name} {key} ({name}): {why}")
            continue
        if kind.upsert or kind.update is not None:
            op, note = Op.UPDATE, ""
        elif kind.delete is not None:
            op, note = Op.REPLACE, "the component changes it by delete and create"
            previous = _written_copy(current, d.written)
        elif not kind.keyed:
            op, note = Op.REPLACE, RELEASED_STAYS
        else:
            blockers.append(
                f"{kind.name} {key} ({name}) differs in {', '.join(changed)} but the "
                f"{kind.name.split('.')[0]} component cannot change or delete it; "
                "give it another id"
            )
            continue
        actions.append(
            Action(op, kind.name, key, name, d.digest, True, changed, note, d, previous=previous)
        )
    for r in record.resources if record else ():
        if (r.kind, r.key) in wanted:
            continue
        kind = KINDS[r.kind]
        present = r.name in actual.get(r.kind, {})
        if r.name in users:
            op, note = Op.RELEASE, f"still used by {', '.join(sorted(users[r.name]))}"
        elif not present:
            op, note = Op.RELEASE, "already gone"
        elif not r.owned:
            op, note = Op.RELEASE, "was in the village before; left to whoever made it"
        elif kind.delete is None:
            op, note = Op.RELEASE, f"the {r.kind.split('.')[0]} component has no delete; left"
        else:
            op, note = Op.DELETE, ""
            why = kind.busy(actual[r.kind][r.name], None) if kind.busy is not None else None
            if why:
                blockers.append(f"{r.kind} {r.key} ({r.name}): {why}")
        shared = r.name in users
        actions.append(
            Action(op, r.kind, r.key, r.name, r.digest, r.owned, note=note, shared=shared)
        )
    # What the component would refuse is found now, not half-way through an apply.
    blockers += [
        a.desired.refused
        for a in actions
        if a.op != Op.KEEP and a.desired is not None and a.desired.refused
    ]
    actions.sort(key=_order)
    return Plan(
        village=parent,
        scenario=scenario,
        from_version=record.version if record else "",
        to_version=to_version,
        settings=dict(settings),
        actions=tuple(actions),
        record=record,
        blockers=tuple(blockers),
    )


def _find(
    kind: Kind,
    parent: str,
    d: Desired,
    before: Recorded | None,
    actual: Mapping[str, Mapping[str, Message]],
    shared_named: Mapping[tuple[str, str, str], str],
) -> tuple[str, Message | None]:
    """The resource's name and its current state, if it exists."""
    present = actual.get(kind.name, {})
    if kind.keyed:
        name = kind.name_of(parent, d.declared.key)
        return name, present.get(name)
    if before is not None and before.name in present:
        return before.name, present[before.name]
    named = shared_named.get((kind.name, d.declared.key, d.digest))
    if named and named in present:
        return named, present[named]
    # Made by an apply that stopped before recording it, or by hand: same display name.
    title = getattr(d.message, "display_name", "")
    for name, message in present.items():
        if title and getattr(message, "display_name", "") == title:
            return name, message
    return "", None


def _order(action: Action) -> tuple[int, int]:
    position = ORDER.index(action.kind)
    if action.op in (Op.DELETE, Op.RELEASE):
        return (1, -position)
    return (0, position)


def own_only(parent: str, listed: Iterable[Message]) -> dict[str, Message]:
    """The resources defined at the village itself (lists also show inherited ones)."""
    return {m.name: m for m in listed if _own(parent, m.name)}  # type: ignore[attr-defined]


__all__ = [
    "Action",
    "Desired",
    "Op",
    "Plan",
    "PlanBlocked",
    "Record",
    "Recorded",
    "blame",
    "desired_of",
    "diff",
    "own_only",
    "seen_digest",
    "spec_digest",
]
