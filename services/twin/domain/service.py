"""The twin hub: entities, ingest, rules and history, free of gRPC and SQL.

Ingest of one batch, in order: find the entities (a cache in front of the store), check
every reading against its model (domain.ingest), drop the readings older than the
stored latest value from the latest state (they still go to history), walk the rules
over the fresh readings, then write readings, rule states and alarms in one store
transaction, and only then move the latest state and tell subscribers. One batch at a
time per process, so rule states never race.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from services.kit import tenancy
from services.kit.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound
from services.kit.principal import Principal
from services.twin.domain import history
from services.twin.domain import ingest as checks
from services.twin.domain.entities import (
    Entity,
    Latest,
    Point,
    entity_name,
    parse_entity_name,
    validate_entity,
)
from services.twin.domain.history import HistoryPoint
from services.twin.domain.ingest import Columns, Rejection
from services.twin.domain.models import Kind, Model, ModelCatalog, validate_model
from services.twin.domain.ports import (
    Alarm,
    EntityKey,
    LatestBatch,
    LatestState,
    LayerSource,
    ReadingRows,
    RuleKey,
    SeriesKey,
    SeriesRef,
    TwinStore,
)
from services.twin.domain.rules import (
    IDLE,
    Cleared,
    Fired,
    Geofence,
    GeofenceMode,
    Inactivity,
    LevelChanged,
    Outcome,
    Phase,
    Rule,
    RuleState,
    evaluate,
    geofence_walk,
    is_busy,
    may_cross,
    silence_step,
    validate_rule,
)

_ENTITY_CACHE_LIMIT = 200_000
log = logging.getLogger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class EntityChange:
    """One change of one entity, for subscribers: `seq` grows by one per change."""

    tenant: str
    entity_id: str
    entity_type: str
    seq: int
    kind: str  # "created" | "updated" | "deleted"
    properties: dict[str, Latest] = field(default_factory=dict)
    # Where the entity is, so watchers of an area can select it.
    location: Point | None = None

    @property
    def name(self) -> str:
        return entity_name(self.tenant, self.entity_id)


@dataclass
class IngestOutcome:
    accepted_count: int
    rejected_count: int
    stale_count: int
    rejections: list[Rejection]
    reasons: np.ndarray  # per reading: 0 accepted, else domain.ingest.Reason
    # Index of each stale reading (accepted, older than the stored latest value).
    stale: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


ChangeListener = Callable[[list[EntityChange]], None]


class TwinHub:
    def __init__(
        self,
        store: TwinStore,
        latest: LatestState,
        models: ModelCatalog,
        rules: list[Rule],
        states: dict[tuple[RuleKey, EntityKey], RuleState],
        epoch: int,
        on_alarm: Callable[[], None] = lambda: None,
        layers: LayerSource | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        """`epoch` counts the starts of the service: sequence numbers of this run begin at
        (epoch - 1) << 32 (1, 2, 3... on a new store), so they keep growing across
        restarts without being written per change. `clock` is the twin's time in
        milliseconds (the wall clock, or one moved forward by drills and tests): it
        bounds readings ahead of it, stamps new entities and runs inactivity checks."""
        self._now = clock
        self.store = store
        self.latest = latest
        self.models = models
        self._rules: dict[RuleKey, Rule] = {r.key: r for r in rules}
        self._rules_for: dict[tuple[str, str, str], list[Rule]] = {}
        self._states: dict[tuple[RuleKey, EntityKey], RuleState] = {}
        self._busy: dict[RuleKey, set[int]] = {}
        # Sequence numbers: per entity slot (a dense number the hub gives each entity it
        # sees), the changes of this run; the number handed out is epoch << 32 plus that.
        self._slots: dict[EntityKey, int] = {}
        self._seq_array = np.zeros(1024, np.int64)
        self._epoch_base = (epoch - 1) << 32
        self._keep_states(states)
        self._targets: dict[
            tuple[tuple[str, str], tuple[str, str]], checks.Series | checks.Reason
        ] = {}
        self._entities: dict[EntityKey, Entity] = {}
        self._series: dict[SeriesKey, int] = {}
        self._lock = asyncio.Lock()
        self._listeners: list[ChangeListener] = []
        self._on_alarm = on_alarm
        self.layers = layers
        self.rejected_total: dict[str, int] = {}
        # Batches whose geofence rules could not be walked (the map service was down
        # before the layer was ever read).
        self.geofence_skipped = 0

    @classmethod
    async def open(
        cls,
        store: TwinStore,
        latest: LatestState,
        on_alarm: Callable[[], None] = lambda: None,
        layers: LayerSource | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> TwinHub:
        """A hub with the models, rules, rule states and sequence numbers the store holds."""
        return cls(
            store,
            latest,
            ModelCatalog(await store.list_models()),
            await store.list_rules(),
            await store.rule_states(),
            await store.next_epoch(),
            on_alarm,
            layers,
            clock,
        )

    # ---- subscribers -------------------------------------------------------------

    def subscribe_changes(self, listener: ChangeListener) -> Callable[[], None]:
        """Call `listener` after every committed change; returns the unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _publish(self, changes: list[EntityChange]) -> None:
        if changes:
            for listener in list(self._listeners):
                listener(changes)

    def _slot(self, key: EntityKey) -> int:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = len(self._slots)
            if slot >= len(self._seq_array):
                grown = np.zeros(2 * len(self._seq_array), np.int64)
                grown[: len(self._seq_array)] = self._seq_array
                self._seq_array = grown
        return slot

    def _next_seq(self, key: EntityKey) -> int:
        slot = self._slot(key)
        self._seq_array[slot] += 1
        return self._epoch_base + int(self._seq_array[slot])

    def seq_of(self, key: EntityKey) -> int:
        """The entity's current sequence number (what its last change carried)."""
        return self._epoch_base + int(self._seq_array[self._slot(key)])

    def require_visible(self, principal: Principal, tenant: str) -> None:
        """NOT_FOUND unless the caller sees the tenant (checked before anything else)."""
        _visible(principal, tenant)

    # ---- models ------------------------------------------------------------------

    async def create_model(self, principal: Principal, tenant: str, model: Model) -> Model:
        _visible(principal, tenant)
        model = validate_model(replace(model, tenant=tenant))
        await self.store.save_model(model)
        self.models.add(model)
        self._forget_targets()
        return model

    def list_models(self, principal: Principal, tenant: str) -> list[Model]:
        _visible(principal, tenant)
        return self.models.visible(tenant)

    # ---- entities ----------------------------------------------------------------

    async def create_entity(self, principal: Principal, entity: Entity) -> Entity:
        _visible(principal, entity.tenant)
        validate_entity(entity)
        self.models.require(entity.tenant, entity.entity_type)
        for i, rel in enumerate(entity.relationships):
            if not principal.can_see(rel.target[0]) or not await self._find(rel.target):
                raise InvalidArgument.field(
                    f"entity.relationships[{i}].target",
                    f"no entity {entity_name(*rel.target)!r}",
                )
        entity = replace(entity, create_ms=self._now(), latest={})
        async with self._lock:
            await self.store.create_entity(entity)
            self._entities[entity.key] = entity
            self._forget_targets()
            seq = self._next_seq(entity.key)
        self._publish(
            [
                EntityChange(
                    entity.tenant,
                    entity.entity_id,
                    entity.entity_type,
                    seq,
                    "created",
                    location=entity.location,
                )
            ]
        )
        return entity

    async def _find(self, key: EntityKey) -> Entity | None:
        found = self._entities.get(key)
        if found is None:
            got = await self.store.get_entities([key])
            if got:
                found = self._remember(got[0])
        return found

    def _remember(self, entity: Entity) -> Entity:
        if len(self._entities) >= _ENTITY_CACHE_LIMIT:
            self._entities.clear()
        self._entities[entity.key] = entity
        return entity

    async def get_entity(self, principal: Principal, name: str) -> Entity:
        key = parse_entity_name(name)
        entity = await self._find(key) if principal.can_see(key[0]) else None
        if entity is None:
            raise NotFound(f"entity {name!r} not found")
        return await self._with_latest(entity)

    async def _with_latest(self, entity: Entity) -> Entity:
        model = self.models.resolve(entity.tenant, entity.entity_type)
        props = [p.name for p in model.properties] if model else []
        if not props:
            return entity
        ids = await self._series_ids([(entity.tenant, entity.entity_id, p) for p in props])
        values = await self.latest.get_many(ids)
        latest = {p: v for p, v in zip(props, values, strict=True) if v is not None}
        return replace(entity, latest=latest)

    async def list_entities(
        self,
        principal: Principal,
        subtree: str,
        entity_type: str,
        limit: int,
        after: EntityKey | None,
    ) -> list[Entity]:
        _visible(principal, subtree)
        found = await self.store.list_entities(subtree, entity_type, limit, after)
        return [await self._with_latest(e) for e in found]

    async def delete_entity(self, principal: Principal, name: str) -> None:
        key = parse_entity_name(name)
        entity = await self._find(key) if principal.can_see(key[0]) else None
        if entity is None:
            raise NotFound(f"entity {name!r} not found")
        async with self._lock:
            await self.store.delete_entity(key)
            self._entities.pop(key, None)
            self._forget_targets()
            seq = self._next_seq(key)
        self._publish(
            [
                EntityChange(
                    key[0], key[1], entity.entity_type, seq, "deleted", location=entity.location
                )
            ]
        )

    async def related(
        self, principal: Principal, name: str, incoming: bool, relationship_type: str
    ) -> list[tuple[str, Entity]]:
        """Entities linked to one entity, either way; those the caller may not see are left out."""
        entity = await self.get_entity(principal, name)
        out: list[tuple[str, Entity]] = []
        for rel_type, other in await self.store.related(entity.key, incoming, relationship_type):
            if principal.can_see(other[0]):
                found = await self._find(other)
                if found is not None:
                    out.append((rel_type, await self._with_latest(found)))
        return out

    # ---- ingest ------------------------------------------------------------------

    async def _series_ids(self, keys: list[SeriesKey]) -> list[int]:
        missing = [k for k in keys if k not in self._series]
        if missing:
            for key, sid in zip(missing, await self.store.series_ids(missing), strict=True):
                self._series[key] = sid
        return [self._series[k] for k in keys]

    async def _lookup_table(
        self, principal: Principal, parent: str, raw: list[str]
    ) -> dict[str, tuple[Entity, Model] | None]:
        """Each distinct entity string of a batch -> its entity and model, when the caller
        may write to it; an entity outside the parent's subtree counts as unknown."""
        keys: dict[str, EntityKey | None] = {}
        for text in raw:
            if "/" in text:
                try:
                    key: EntityKey | None = parse_entity_name(text)
                except InvalidArgument:
                    key = None
            else:
                key = (parent, text)
            if key is not None and not (
                tenancy.contains(parent, key[0]) and principal.can_see(key[0])
            ):
                key = None
            keys[text] = key
        missing = [k for k in keys.values() if k is not None and k not in self._entities]
        if missing:
            for entity in await self.store.get_entities(missing):
                self._remember(entity)
        table: dict[str, tuple[Entity, Model] | None] = {}
        for text, key in keys.items():
            found = self._entities.get(key) if key is not None else None
            model = self.models.resolve(found.tenant, found.entity_type) if found else None
            table[text] = (found, model) if found is not None and model is not None else None
        return table

    def _rules_of(self, tenant: str, entity_type: str, prop: str) -> list[Rule]:
        key = (tenant, entity_type, prop)
        found = self._rules_for.get(key)
        if found is None:
            found = self._rules_for[key] = [
                r
                for r in self._rules.values()
                if r.entity_type == entity_type
                and r.watched == prop
                and tenancy.contains(r.tenant, tenant)
            ]
        return found

    def _forget_targets(self) -> None:
        """Entities, models or rules changed: resolve pairs afresh."""
        self._targets.clear()

    async def _resolve(
        self, principal: Principal, parent: str, pairs: checks.Pairs
    ) -> list[checks.Series | checks.Reason]:
        """What each distinct pair of a batch names, from the cache; the misses are looked
        up together (entities, then new series ids) and remembered."""
        subtree = (principal.tenant, parent)
        targets = self._targets
        found = [targets.get((subtree, pair)) for pair in pairs.distinct]
        missing = [pair for pair, got in zip(pairs.distinct, found, strict=True) if got is None]
        if not missing:
            return found  # type: ignore[return-value]
        table = await self._lookup_table(principal, parent, list({e: 0 for e, _ in missing}))
        fresh: dict[tuple[str, str], checks.Series | checks.Reason] = {}
        for raw_entity, prop in missing:
            hit = table[raw_entity]
            if hit is None:
                fresh[(raw_entity, prop)] = checks.Reason.UNKNOWN_ENTITY
                continue
            entity, model = hit
            spec = model.spec(prop)
            if spec is None:
                fresh[(raw_entity, prop)] = checks.Reason.UNKNOWN_PROPERTY
                continue
            watchers = tuple(self._rules_of(entity.tenant, entity.entity_type, prop))
            fresh[(raw_entity, prop)] = checks.Series(
                entity, spec, model, -1, watchers, self._slot(entity.key)
            )
        new = [(k, v) for k, v in fresh.items() if isinstance(v, checks.Series)]
        ids = await self._series_ids([v.key for _, v in new])
        for (pair, series), sid in zip(new, ids, strict=True):
            fresh[pair] = replace(series, series_id=sid)
        if len(targets) > _ENTITY_CACHE_LIMIT:
            targets.clear()
        for pair, target in fresh.items():
            targets[(subtree, pair)] = target
        return [targets[(subtree, pair)] for pair in pairs.distinct]

    async def ingest(self, principal: Principal, parent: str, columns: Columns) -> IngestOutcome:
        """Check, store and evaluate one batch; each reading is accepted or refused alone."""
        _visible(principal, parent)
        pairs = checks.pairs_of(columns)
        async with self._lock:
            targets = await self._resolve(principal, parent, pairs)
            checked = checks.check(columns, pairs, targets, self._now())
            rejected = checked.rejected_count()
            if rejected:
                names, counts = np.unique(checked.reasons[checked.reasons > 0], return_counts=True)
                for code, count in zip(names.tolist(), counts.tolist(), strict=True):
                    reason = checks.Reason(code).name
                    self.rejected_total[reason] = self.rejected_total.get(reason, 0) + count
            accepted = np.flatnonzero(checked.accepted)
            stale = accepted[:0]
            changes: list[EntityChange] = []
            if len(accepted):
                stale, changes = await self._apply(checked, accepted)
        self._publish(changes)
        return IngestOutcome(
            accepted_count=len(accepted),
            rejected_count=rejected,
            stale_count=len(stale),
            rejections=checks.describe(checked) if rejected else [],
            reasons=checked.reasons,
            stale=stale,
        )

    async def _apply(
        self, checked: checks.Checked, accepted: np.ndarray
    ) -> tuple[np.ndarray, list[EntityChange]]:
        """Store the accepted readings and walk the rules; the stale readings' indexes
        and the changes to publish."""
        series_of = checked.series_index[accepted]
        used = np.unique(series_of)
        used_series = [checked.series[s] for s in used.tolist()]
        ids = np.fromiter((s.series_id for s in used_series), np.int64, len(used_series))
        prev_t = await self.latest.times_of(ids)
        # Position of each accepted reading's series among `used`.
        local = np.searchsorted(used, series_of)
        times = checked.observed_ms[accepted]
        values = checked.values[accepted]
        fresh = times >= prev_t[local]
        stale = accepted[~fresh]
        # Fresh readings grouped by series, oldest first.
        order = np.lexsort((times, local))
        order = order[fresh[order]]
        group = local[order]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(order) else order
        ends = np.r_[starts[1:], len(order)] if len(order) else order
        lon = checked.longitudes[accepted] if checked.longitudes is not None else None
        lat = checked.latitudes[accepted] if checked.latitudes is not None else None
        group_slots = group[starts]
        last_rows = order[ends - 1] if len(order) else order
        newest = LatestBatch(
            ids[group_slots],
            times[last_rows],
            values[last_rows],
            lon[last_rows] if lon is not None else None,
            lat[last_rows] if lat is not None else None,
        )
        changed_states, alarms = self._walk_rules(
            used_series, group_slots.tolist(), values[order], times[order], starts, ends
        )
        if lon is not None and lat is not None and self.layers is not None:
            fence_states, fence_alarms = await self._walk_geofences(
                used_series,
                group_slots,
                _Sorted(times[order], values[order], lon[order], lat[order]),
                starts,
                ends,
            )
            changed_states.update(fence_states)
            alarms.extend(fence_alarms)
        rows_out = ReadingRows(
            series_ids=ids[local],
            observed_ms=times,
            values=values,
            longitudes=lon,
            latitudes=lat,
        )
        await self.store.record(rows_out, changed_states, alarms)
        self._keep_states(changed_states)
        await self.latest.put_newer(newest)
        if alarms:
            self._on_alarm()
        return stale, self._count_changes(used_series, group_slots, newest)

    def _count_changes(
        self, used_series: list[checks.Series], group_slots: np.ndarray, newest: LatestBatch
    ) -> list[EntityChange]:
        """One more sequence number for every entity the batch changed; the changes
        themselves are built only when someone listens."""
        slots = np.fromiter(
            (used_series[s].entity_slot for s in group_slots.tolist()), np.int64, len(group_slots)
        )
        touched = np.unique(slots)
        if len(touched) and touched[-1] >= len(self._seq_array):
            grown = np.zeros(max(2 * len(self._seq_array), int(touched[-1]) + 1024), np.int64)
            grown[: len(self._seq_array)] = self._seq_array
            self._seq_array = grown
        self._seq_array[touched] += 1
        if not self._listeners:
            return []
        by_entity: dict[int, tuple[checks.Series, dict[str, Latest]]] = {}
        for (_, latest), slot in zip(newest.items(), group_slots.tolist(), strict=True):
            series = used_series[slot]
            entry = by_entity.setdefault(series.entity_slot, (series, {}))
            entry[1][series.spec.name] = latest
        return [
            EntityChange(
                s.entity.tenant,
                s.entity.entity_id,
                s.entity.entity_type,
                self._epoch_base + int(self._seq_array[slot]),
                "updated",
                props,
                s.entity.location,
            )
            for slot, (s, props) in by_entity.items()
        ]

    def _walk_rules(
        self,
        used_series: list[checks.Series],
        group_slots: list[int],
        values: np.ndarray,
        times: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
    ) -> tuple[dict[tuple[RuleKey, EntityKey], RuleState], list[Alarm]]:
        """Every rule over the fresh readings of the series it watches. Whole-array tests
        pick the series whose state may change (readings past the rule's bound, or a state
        already away from idle); only those are walked reading by reading."""
        changed: dict[tuple[RuleKey, EntityKey], RuleState] = {}
        alarms: list[Alarm] = []
        watched: dict[RuleKey, list[int]] = {}
        for slot, series in enumerate(used_series):
            for rule in series.watchers:
                if not isinstance(rule.condition, Geofence):  # type: ignore[attr-defined]
                    watched.setdefault(rule.key, []).append(slot)  # type: ignore[attr-defined]
        if not watched:
            return changed, alarms
        group_of_slot = np.full(len(used_series), -1, dtype=np.int64)
        group_of_slot[np.asarray(group_slots, dtype=np.int64)] = np.arange(len(group_slots))
        group_min = np.minimum.reduceat(values, starts)
        group_max = np.maximum.reduceat(values, starts)
        entity_slots: np.ndarray | None = None
        for rule_key, slot_list in watched.items():
            rule = self._rules[rule_key]
            slots = np.asarray(slot_list, dtype=np.int64)
            groups = group_of_slot[slots]
            slots, groups = slots[groups >= 0], groups[groups >= 0]
            hot = may_cross(rule, group_min[groups], group_max[groups])
            busy = self._busy.get(rule_key)
            if busy:
                if entity_slots is None:
                    entity_slots = np.fromiter(
                        (s.entity_slot for s in used_series), np.int64, len(used_series)
                    )
                hot |= np.isin(entity_slots[slots], np.fromiter(busy, np.int64, len(busy)))
            for i in np.flatnonzero(hot).tolist():
                series, g = used_series[int(slots[i])], int(groups[i])
                key = (series.entity.tenant, series.entity.entity_id)
                state = self._states.get((rule_key, key), IDLE)
                span = slice(int(starts[g]), int(ends[g]))
                new_state, outcomes = evaluate(rule, key, state, values[span], times[span])
                if new_state != state:
                    changed[(rule_key, key)] = new_state
                alarms.extend(_alarms(rule, key, outcomes))
        return changed, alarms

    async def _walk_geofences(
        self,
        used_series: list[checks.Series],
        group_slots: np.ndarray,
        fresh: _Sorted,
        starts: np.ndarray,
        ends: np.ndarray,
    ) -> tuple[dict[tuple[RuleKey, EntityKey], RuleState], list[Alarm]]:
        """Every geofence rule over the fresh positions of the series it watches: per rule
        one vectorised test of all its positions against the layer's prepared shape, then
        only the entities with a breach, or a state away from idle, walked in time order."""
        changed: dict[tuple[RuleKey, EntityKey], RuleState] = {}
        alarms: list[Alarm] = []
        groups_of: dict[RuleKey, list[int]] = {}
        for g, slot in enumerate(group_slots.tolist()):
            for rule in used_series[slot].watchers:
                if isinstance(rule.condition, Geofence):  # type: ignore[attr-defined]
                    groups_of.setdefault(rule.key, []).append(g)  # type: ignore[attr-defined]
        for rule_key, group_list in groups_of.items():
            rule = self._rules[rule_key]
            cond = rule.condition
            assert isinstance(cond, Geofence) and self.layers is not None
            try:
                shape = await self.layers.shape(rule.tenant, cond.layer, cond.buffer_m)
            except DomainError as exc:
                self.geofence_skipped += 1
                log.warning("geofence rule %s not walked: %s", rule.rule_id, exc)
                continue
            groups = np.asarray(group_list, dtype=np.int64)
            lengths = ends[groups] - starts[groups]
            local_starts = np.r_[0, np.cumsum(lengths)[:-1]]
            # Positions of every watched series, series after series (each in time order).
            rows = np.repeat(starts[groups] - local_starts, lengths) + np.arange(lengths.sum())
            inside = shape.covers(fresh.longitudes[rows], fresh.latitudes[rows])
            breach = inside if cond.mode == GeofenceMode.INSIDE else ~inside
            if cond.speed_property:
                breach &= await self._stopped(
                    cond, used_series, group_slots, groups, rows, lengths, fresh, starts, ends
                )
            hot = np.logical_or.reduceat(breach, local_starts)
            busy = self._busy.get(rule_key)
            if busy:
                slots = np.fromiter(
                    (used_series[s].entity_slot for s in group_slots[groups].tolist()),
                    np.int64,
                    len(groups),
                )
                hot |= np.isin(slots, np.fromiter(busy, np.int64, len(busy)))
            times = fresh.times[rows]
            for j in np.flatnonzero(hot).tolist():
                series = used_series[int(group_slots[groups[j]])]
                key = series.entity.key
                state = self._states.get((rule_key, key), IDLE)
                span = slice(int(local_starts[j]), int(local_starts[j] + lengths[j]))
                new_state, outcomes = geofence_walk(rule, key, state, breach[span], times[span])
                if new_state != state:
                    changed[(rule_key, key)] = new_state
                alarms.extend(_alarms(rule, key, outcomes))
        return changed, alarms

    async def _stopped(
        self,
        cond: Geofence,
        used_series: list[checks.Series],
        group_slots: np.ndarray,
        groups: np.ndarray,
        rows: np.ndarray,
        lengths: np.ndarray,
        fresh: _Sorted,
        starts: np.ndarray,
        ends: np.ndarray,
    ) -> np.ndarray:
        """Per position, whether the entity was stopped then: its speed reading at or
        before that time in this batch, else its stored latest speed (unknown: moving)."""
        speed_group: dict[EntityKey, int] = {}
        for g, slot in enumerate(group_slots.tolist()):
            if used_series[slot].spec.name == cond.speed_property:
                speed_group[used_series[slot].entity.key] = g
        entities = [used_series[int(group_slots[g])].entity for g in groups.tolist()]
        ids = await self._series_ids(
            [(e.tenant, e.entity_id, cond.speed_property) for e in entities]
        )
        stored = await self.latest.get_many(ids)
        speeds = np.full(len(rows), np.nan)
        offset = 0
        for entity, count, last in zip(entities, lengths.tolist(), stored, strict=True):
            at = fresh.times[rows[offset : offset + count]]
            known = np.full(count, last.value if last is not None else np.nan)
            speed_at = speed_group.get(entity.key)
            if speed_at is not None:
                span = slice(int(starts[speed_at]), int(ends[speed_at]))
                before = np.searchsorted(fresh.times[span], at, side="right") - 1
                in_batch = fresh.values[span][np.maximum(before, 0)]
                known = np.where(before >= 0, in_batch, known)
            speeds[offset : offset + count] = known
            offset += count
        with np.errstate(invalid="ignore"):
            return speeds <= cond.stopped_at_most

    def alarm_states(
        self, entities: Iterable[EntityKey]
    ) -> dict[EntityKey, list[tuple[RuleKey, RuleState]]]:
        """Each entity's rules that are not idle (pending or active), for readers: what
        the rules themselves walk from, so a page shows the alarm the events came from."""
        wanted = set(entities)
        found: dict[EntityKey, list[tuple[RuleKey, RuleState]]] = {}
        for (rule_key, entity_key), state in self._states.items():
            if entity_key in wanted and state.phase is not Phase.IDLE:
                found.setdefault(entity_key, []).append((rule_key, state))
        for states in found.values():
            states.sort()
        return found

    def _keep_states(self, changed: dict[tuple[RuleKey, EntityKey], RuleState]) -> None:
        """Remember changed rule states and which entities are away from idle."""
        self._states.update(changed)
        for (rule_key, entity_key), state in changed.items():
            busy = self._busy.setdefault(rule_key, set())
            if is_busy(state):
                busy.add(self._slot(entity_key))
            else:
                busy.discard(self._slot(entity_key))

    # ---- rules -------------------------------------------------------------------

    async def create_rule(self, principal: Principal, rule: Rule) -> Rule:
        _visible(principal, rule.tenant)
        validate_rule(rule)
        model = self.models.resolve(rule.tenant, rule.entity_type)
        if model is None:
            raise InvalidArgument.field("rule.entity_type", f"no model {rule.entity_type!r}")
        spec = model.spec(rule.watched)
        if spec is None:
            raise InvalidArgument.field(
                "rule.property", f"{rule.entity_type} has no property {rule.watched!r}"
            )
        if isinstance(rule.condition, Geofence):
            await self._check_geofence(rule, rule.condition, model, spec.kind)
        elif spec.kind == Kind.POINT:
            raise InvalidArgument.field(
                "rule.property", f"{rule.watched!r} is a position: only geofences watch it"
            )
        async with self._lock:
            await self.store.save_rule(rule)
            self._rules[rule.key] = rule
            self._rules_for.clear()
            self._forget_targets()
        return rule

    async def delete_rule(self, principal: Principal, tenant: str, rule_id: str) -> None:
        """Stop a rule; its open per-entity states go with it."""
        key = (tenant, rule_id)
        if not principal.can_see(tenant) or key not in self._rules:
            raise NotFound(f"rule {rule_id!r} not found")
        async with self._lock:
            await self.store.delete_rule(key)
            self._rules.pop(key, None)
            self._rules_for.clear()
            self._forget_targets()
            for state_key in [k for k in self._states if k[0] == key]:
                del self._states[state_key]

    async def _check_geofence(self, rule: Rule, cond: Geofence, model: Model, kind: Kind) -> None:
        """A geofence watches a position, its speed property is a number of the model, and
        its layer is one the rule's tenant sees (read now, so the first batch finds it)."""
        if kind != Kind.POINT:
            raise InvalidArgument.field(
                "rule.property", f"a geofence watches a position; {rule.watched!r} is not one"
            )
        if cond.speed_property:
            speed = model.spec(cond.speed_property)
            if speed is None or speed.kind == Kind.POINT:
                raise InvalidArgument.field(
                    "rule.geofence.stopped.speed_property",
                    f"{rule.entity_type} has no numeric property {cond.speed_property!r}",
                )
        if self.layers is None:
            raise FailedPrecondition("geofence rules need the map service (no map address)")
        try:
            await self.layers.shape(rule.tenant, cond.layer, cond.buffer_m)
        except NotFound:
            raise InvalidArgument.field(
                "rule.geofence.layer", f"no layer {cond.layer!r} the rule's tenant can see"
            ) from None

    async def placed(self, rule: Rule, entity: Entity) -> Entity:
        """The entity at its latest position when the rule watches one (a geofence's event
        is where the vehicle was, not where it was registered)."""
        if not isinstance(rule.condition, Geofence):
            return entity
        ids = await self._series_ids([(entity.tenant, entity.entity_id, rule.watched)])
        latest = (await self.latest.get_many(ids))[0]
        if latest is None or latest.point is None:
            return entity
        return replace(entity, location=latest.point)

    def list_rules(self, principal: Principal, subtree: str) -> list[Rule]:
        _visible(principal, subtree)
        return sorted(
            (r for r in self._rules.values() if tenancy.contains(subtree, r.tenant)),
            key=lambda r: r.key,
        )

    def rule(self, key: RuleKey) -> Rule | None:
        return self._rules.get(key)

    async def entity(self, key: EntityKey) -> Entity | None:
        """An entity by key, for the service's own work (no caller to check)."""
        return await self._find(key)

    async def check_silence(self, at_ms: int | None = None) -> int:
        """Walk the inactivity rules; returns how many episodes opened."""
        at = self._now() if at_ms is None else at_ms
        opened = 0
        async with self._lock:
            for rule in [r for r in self._rules.values() if isinstance(r.condition, Inactivity)]:
                entities = await self.store.list_entities(
                    rule.tenant, rule.entity_type, 100_000, None
                )
                keys = [(e.tenant, e.entity_id, rule.watched) for e in entities]
                ids = await self._series_ids(keys)
                latest = await self.latest.get_many(ids)
                changed: dict[tuple[RuleKey, EntityKey], RuleState] = {}
                alarms: list[Alarm] = []
                for entity, last in zip(entities, latest, strict=True):
                    state_key = (rule.key, entity.key)
                    state = self._states.get(state_key, IDLE)
                    last_ms = last.observed_ms if last else entity.create_ms
                    new_state, outcomes = silence_step(rule, entity.key, state, last_ms, at)
                    if new_state != state:
                        changed[state_key] = new_state
                        alarms.extend(_alarms(rule, entity.key, outcomes))
                if changed:
                    await self.store.record(ReadingRows(*_empty_rows()), changed, alarms)
                    self._keep_states(changed)
                    opened += len(alarms)
        if opened:
            self._on_alarm()
        return opened

    # ---- history -----------------------------------------------------------------

    async def history(
        self,
        principal: Principal,
        subtree: str,
        prop: str,
        entities: list[str],
        entity_type: str,
        box: tuple[float, float, float, float] | None,
        start_ms: int,
        end_ms: int,
        bucket_ms: int,
        limit: int,
        after: tuple[int, int] | None,
    ) -> tuple[list[tuple[str, HistoryPoint]], tuple[int, int] | None]:
        """Points of one property over entities, a model or an area; returns the next cursor."""
        _visible(principal, subtree)
        keys = [parse_entity_name(n, f"entities[{i}]") for i, n in enumerate(entities)]
        for i, key in enumerate(keys):
            if not tenancy.contains(subtree, key[0]) or not principal.can_see(key[0]):
                raise NotFound(f"entity {entities[i]!r} not found")
        refs: list[SeriesRef] = await self.store.find_series(subtree, prop, keys, entity_type, box)
        names = {r.series_id: entity_name(r.tenant, r.entity_id) for r in refs}
        wanted = [sid for sid in sorted(names) if after is None or sid >= after[0]]
        found = await self.store.readings(wanted, start_ms, end_ms)
        points, cursor = history.page(
            ((s.series_id, s.times, s.values) for s in found), start_ms, bucket_ms, limit, after
        )
        return [(names[p.series_id], p) for p in points], cursor


@dataclass(frozen=True)
class _Sorted:
    """A batch's fresh readings grouped by series, oldest first within each."""

    times: np.ndarray
    values: np.ndarray
    longitudes: np.ndarray
    latitudes: np.ndarray


def _visible(principal: Principal, tenant: str) -> None:
    if not principal.can_see(tenant):
        raise NotFound(f"tenant {tenancy.tenant_name(tenant)!r} not found")


def _empty_rows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))


def _alarms(rule: Rule, entity: EntityKey, outcomes: Sequence[Outcome]) -> list[Alarm]:
    out: list[Alarm] = []
    for o in outcomes:
        if isinstance(o, Fired):
            out.append(Alarm("fire", o.episode, rule.key, entity, o.at_ms, o.value))
        elif isinstance(o, Cleared):
            out.append(Alarm("clear", o.episode, rule.key, entity, o.at_ms, o.value))
        elif isinstance(o, LevelChanged):
            out.append(
                Alarm("level", "", rule.key, entity, o.at_ms, o.value, level=o.new, old_level=o.old)
            )
    return out
