"""Village credit's promises: a score only under a consent in force for the calling app
and purpose, every read on the audit chain, one scoring rule tuned per village, tenancy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.empower.domain.credit import CONSENT_REQUIRED, READ_ACTION, REFUSED_ACTION
from services.empower.domain.credit_model import Band, ConsentState
from services.empower.domain.points_model import HolderKind
from services.kit import tenancy
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.kit.principal import Principal
from tests.conftest import TOWN, XIANGYANG, XINGMING
from tests.unit.empower.credit.conftest import World

DISTRICT = "sh/jiading"
BANK_APP = f"{tenancy.tenant_name(DISTRICT)}/apps/app_bank"
OTHER_APP = f"{tenancy.tenant_name(DISTRICT)}/apps/app_other"
STAFF_SCOPES = frozenset({"points:write", "empower:read", "credit:consent"})
SECRETARY = Principal("users/sec", XINGMING, scopes=STAFF_SCOPES)
NEIGHBOUR = Principal("users/sec-b", XIANGYANG, scopes=STAFF_SCOPES)
BANK = Principal(BANK_APP, DISTRICT, kind="app", app=BANK_APP, scopes=frozenset({"credit:read"}))
OTHER = Principal(OTHER_APP, DISTRICT, kind="app", app=OTHER_APP, scopes=frozenset({"credit:read"}))
AUDITOR = Principal("users/aud", DISTRICT, scopes=frozenset({"audit:read"}))
BANDS = [Band("A", 700), Band("B", 450), Band("C", 0)]
PURPOSE = "loan_assessment"


async def _setup(w: World, *, label: str = "Zhang Wei household") -> str:
    w.apps.names |= {(DISTRICT, "app_bank"), (DISTRICT, "app_other")}
    await w.desk.create_policy(
        SECRETARY,
        XINGMING,
        "rural-credit",
        display_name="Credit on points",
        window_days=365,
        base_score=400,
        points_weight=2,
        deed_weight=5,
        bands=BANDS,
    )
    account = await w.ledger.open_account(
        SECRETARY, XINGMING, HolderKind.HOUSEHOLD, "households/xm-12", label
    )
    for n, amount in enumerate((25, 15)):
        await w.ledger.credit(SECRETARY, XINGMING, account.id, amount, "good deed", f"d{n}")
    await w.ledger.redeem(SECRETARY, XINGMING, account.id, 10, "shop", "r1")
    return account.resource_name


async def _grant(w: World, house: str, **changes: object) -> object:
    given: dict[str, object] = {
        "household": house,
        "consumer": BANK_APP,
        "purpose": PURPOSE,
        "expire_time": w.clock.now + timedelta(days=90),
        "request_id": "consent-1",
    }
    given.update(changes)
    return await w.desk.grant(SECRETARY, XINGMING, **given)  # type: ignore[arg-type]


def _account_id(household: str) -> str:
    return household.rsplit("/", 1)[-1]


async def test_a_bank_reads_a_score_only_while_consent_is_in_force(world: World) -> None:
    household = await _setup(world)
    account = _account_id(household)
    with pytest.raises(PermissionDenied) as refused:
        await world.desk.score(BANK, XINGMING, account, PURPOSE)
    assert refused.value.reason == CONSENT_REQUIRED

    consent = await _grant(world, household)
    score = await world.desk.score(BANK, XINGMING, account, PURPOSE)
    # 400 + 2 x 40 points + 5 x 2 deeds; the redemption neither adds nor subtracts.
    assert (score.score, score.band, score.points_earned, score.deeds) == (490, "B", 40, 2)
    assert score.consent == consent.resource_name  # type: ignore[attr-defined]
    assert score.policy.endswith("/creditPolicies/rural-credit")

    revoked = await world.desk.revoke(SECRETARY, XINGMING, consent.id)  # type: ignore[attr-defined]
    assert revoked.state(world.clock.now) is ConsentState.REVOKED
    with pytest.raises(PermissionDenied):
        await world.desk.score(BANK, XINGMING, account, PURPOSE)

    page = await world.audit.list_entries(AUDITOR, DISTRICT, f'record = "{household}"')
    actions = [e.action for e in reversed(page.entries)]
    assert actions == [
        REFUSED_ACTION,
        "credit.consent.grant",
        READ_ACTION,
        "credit.consent.revoke",
        REFUSED_ACTION,
    ]
    read = next(e for e in page.entries if e.action == READ_ACTION)
    assert read.subject == BANK_APP and read.purpose == PURPOSE
    assert consent.resource_name in read.records  # type: ignore[attr-defined]


async def test_another_app_another_purpose_or_an_expired_consent_is_refused(world: World) -> None:
    household = await _setup(world)
    account = _account_id(household)
    await _grant(world, household)
    for caller, purpose in ((OTHER, PURPOSE), (BANK, "marketing")):
        with pytest.raises(PermissionDenied):
            await world.desk.score(caller, XINGMING, account, purpose)
    # Staff hold the ledger, not the score: a user is never a consumer.
    staff = Principal("users/sec", XINGMING, scopes=STAFF_SCOPES | {"credit:read"})
    with pytest.raises(PermissionDenied):
        await world.desk.score(staff, XINGMING, account, PURPOSE)
    world.clock.now += timedelta(days=91)
    with pytest.raises(PermissionDenied):
        await world.desk.score(BANK, XINGMING, account, PURPOSE)
    listed, _ = await world.desk.list_consents(SECRETARY, XINGMING, "", 10, "")
    assert [c.state(world.clock.now) for c in listed] == [ConsentState.EXPIRED]


async def test_another_villages_or_a_missing_account_is_404(world: World) -> None:
    household = await _setup(world)
    with pytest.raises(NotFound):
        await world.desk.score(BANK, XINGMING, "pa_nosuchaccount", PURPOSE)
    # Xingming's account named under Xiangyang: not found there, whoever asks.
    await _grant(world, household)
    with pytest.raises(NotFound):
        await world.desk.score(BANK, XIANGYANG, _account_id(household), PURPOSE)
    # Outside the caller's subtree the answer is 404, as for every other resource.
    outsider = Principal(BANK_APP, "sh/baoshan", kind="app", app=BANK_APP, scopes=BANK.scopes)
    with pytest.raises(NotFound):
        await world.desk.score(outsider, XINGMING, _account_id(household), PURPOSE)
    named = f"{tenancy.tenant_name(XIANGYANG)}/pointsAccounts/{_account_id(household)}"
    page = await world.audit.list_entries(AUDITOR, DISTRICT, f'record = "{named}"')
    assert [e.action for e in page.entries] == [REFUSED_ACTION]


async def test_the_window_counts_only_recent_credits(world: World) -> None:
    household = await _setup(world)
    await _grant(world, household)
    world.clock.now += timedelta(days=366)
    await _grant(world, household, request_id="consent-2")
    score = await world.desk.score(BANK, XINGMING, _account_id(household), PURPOSE)
    assert (score.score, score.band, score.points_earned, score.deeds) == (400, "C", 0, 0)


async def test_names_are_masked_unless_the_caller_may_see_them(world: World) -> None:
    household = await _setup(world, label="Zhang Wei")
    await _grant(world, household)
    score = await world.desk.score(BANK, XINGMING, _account_id(household), PURPOSE)
    assert score.display_name != "Zhang Wei" and score.display_name.startswith("Z")
    trusted = Principal(
        BANK_APP, DISTRICT, kind="app", app=BANK_APP, scopes=BANK.scopes | {"people:read_sensitive"}
    )
    assert (
        await world.desk.score(trusted, XINGMING, _account_id(household), PURPOSE)
    ).display_name == "Zhang Wei"


async def test_consents_are_checked_and_kept_in_their_village(world: World) -> None:
    household = await _setup(world)
    first = await _grant(world, household)
    assert (await _grant(world, household)).id == first.id  # type: ignore[attr-defined]
    with pytest.raises(FailedPrecondition):
        await _grant(world, household, purpose="other_purpose")
    bad = {
        "credit_consent.consumer": {"consumer": f"{tenancy.tenant_name(XIANGYANG)}/apps/app_x"},
        "credit_consent.purpose": {"purpose": "Loan!"},
        "credit_consent.expire_time": {"expire_time": world.clock.now - timedelta(seconds=1)},
        "credit_consent.household": {
            "household": f"{tenancy.tenant_name(XINGMING)}/pointsAccounts/pa_missing"
        },
    }
    for field_name, change in bad.items():
        with pytest.raises(InvalidArgument) as error:
            await _grant(world, household, request_id=f"bad-{field_name}", **change)
        assert error.value.violations[0].field == field_name
    with pytest.raises(InvalidArgument):  # an app that is not registered
        await _grant(world, household, request_id="x", consumer=f"{BANK_APP}-gone")
    with pytest.raises(NotFound):
        await world.desk.get_consent(NEIGHBOUR, XINGMING, first.id)  # type: ignore[attr-defined]
    listed, _ = await world.desk.list_consents(NEIGHBOUR, XIANGYANG, "", 10, "")
    assert listed == []
    with pytest.raises(NotFound):
        await world.desk.revoke(NEIGHBOUR, XINGMING, first.id)  # type: ignore[attr-defined]
    mine, _ = await world.desk.list_consents(
        SECRETARY, XINGMING, f'household = "{household}"', 10, ""
    )
    assert [c.id for c in mine] == [first.id]  # type: ignore[attr-defined]


async def test_one_policy_per_node_and_the_nearest_scores(world: World) -> None:
    household = await _setup(world)
    town = Principal("users/town", TOWN, scopes=STAFF_SCOPES)
    await world.desk.create_policy(
        town,
        TOWN,
        "town-credit",
        display_name="",
        window_days=30,
        base_score=100,
        points_weight=0,
        deed_weight=0,
        bands=[Band("ALL", 0)],
    )
    with pytest.raises(AlreadyExists):
        await world.desk.create_policy(
            SECRETARY,
            XINGMING,
            "rural-credit",
            display_name="",
            window_days=30,
            base_score=1,
            points_weight=1,
            deed_weight=1,
            bands=[Band("X", 0)],
        )
    with pytest.raises(FailedPrecondition):
        await world.desk.create_policy(
            SECRETARY,
            XINGMING,
            "another",
            display_name="",
            window_days=30,
            base_score=1,
            points_weight=1,
            deed_weight=1,
            bands=[Band("X", 0)],
        )
    listed = await world.desk.list_policies(town, XINGMING)
    assert [p.id for p in listed] == ["town-credit", "rural-credit"]
    # The village sees its own; the nodes above it are not its to see.
    assert [p.id for p in await world.desk.list_policies(SECRETARY, XINGMING)] == ["rural-credit"]
    await _grant(world, household)
    assert (await world.desk.score(BANK, XINGMING, _account_id(household), PURPOSE)).score == 490
    await world.desk.delete_policy(SECRETARY, XINGMING, "rural-credit")
    score = await world.desk.score(BANK, XINGMING, _account_id(household), PURPOSE)
    assert (score.score, score.band) == (100, "ALL")
    with pytest.raises(NotFound):
        await world.desk.delete_policy(NEIGHBOUR, XINGMING, "rural-credit")


@pytest.mark.parametrize(
    ("bands", "field"),
    [
        ([], "credit_policy.bands"),
        ([Band("A", 500), Band("B", 600), Band("C", 0)], "credit_policy.bands[1].min_score"),
        ([Band("A", 500), Band("B", 100)], "credit_policy.bands[1].min_score"),
        ([Band("A", 500), Band("A", 0)], "credit_policy.bands[1].band"),
    ],
)
async def test_bad_bands_are_named(world: World, bands: list[Band], field: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        await world.desk.create_policy(
            SECRETARY,
            XINGMING,
            "p",
            display_name="",
            window_days=365,
            base_score=400,
            points_weight=2,
            deed_weight=5,
            bands=bands,
        )
    assert error.value.violations[0].field == field


async def test_weights_out_of_bounds_are_named(world: World) -> None:
    with pytest.raises(InvalidArgument) as error:
        await world.desk.create_policy(
            SECRETARY,
            XINGMING,
            "p",
            display_name="",
            window_days=10,
            base_score=400,
            points_weight=2,
            deed_weight=5,
            bands=BANDS,
        )
    assert error.value.violations[0].field == "credit_policy.window_days"
