"""ModelRegistry behaviour, one test group per external function, on every backend.

Covers models and their access policies (public, allowlist with expiry, paid with exact payment
and time extension, proceeds withdrawn by the owner), write-once versions whose stored CID and
manifest hash equal the event's (C9), revocation, and aliases (promote, rollback).
"""

from __future__ import annotations

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.chain import revert_errors
from registry.chain.events import RESCAN_DEPTH
from registry.clients import Access, ContentRef
from registry.clients.models import encode_license, model_id, version_id
from support.chain import (
    CODEC_DAG_PB,
    CODEC_RAW,
    GATED,
    LICENSE,
    PAID,
    PERIOD,
    PRICE,
    PUBLIC,
    V1,
    ZERO32,
    ZERO_ADDRESS,
    RpcCalls,
    World,
    content,
    events,
    gas_cost,
    hx,
    reverts,
    sha,
    transact_at,
)

FUZZ = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
UINT64_MAX = 2**64 - 1
MID = hx(model_id(PUBLIC))


def register(env: World, tag: str, model: str = PUBLIC, parent: bytes | None = None) -> bytes:
    """Register version ``tag`` of ``model`` as its owner; returns the version id."""
    owner = env.owner.models
    return bytes(owner.register_version(model, tag, content(tag), sha(f"m:{tag}"), parent).value)


def alias(env: World, name: str, model: str = PUBLIC) -> tuple[bytes, bytes]:
    current, previous = env.registry.functions.getAlias(model_id(model), name).call()
    return bytes(current), bytes(previous)


# ----------------------------------------------------------------------------- createModel


@pytest.mark.parametrize(
    ("access", "price", "period"),
    [(Access.PUBLIC, 0, 0), (Access.ALLOWLIST, 0, 0), (Access.PAID, PRICE, PERIOD)],
)
def test_create_model_records_owner_and_policy(
    env: World, access: Access, price: int, period: int
) -> None:
    result = env.user.models.create_model("m", access, price, period)

    assert result.value == model_id("m")
    assert env.registry.functions.getModel(model_id("m")).call() == (
        env.user.address,
        int(access),
        price,
        period,
    )
    receipt = env.receipt(result.tx_hash)
    assert events(env.registry, receipt, "ModelCreated") == [
        {"modelId": model_id("m"), "name": "m", "owner": env.user.address, "access": int(access)}
    ]
    assert events(env.registry, receipt, "AccessPolicySet") == [
        {"modelId": model_id("m"), "access": int(access), "price": price, "period": period}
    ]


@pytest.mark.parametrize("name", ["", "x" * 65])
def test_create_model_reverts_if_name_length_invalid(env: World, name: str) -> None:
    with reverts(revert_errors.InvalidName):
        env.user.models.create_model(name)


def test_create_model_accepts_64_byte_name(env: World) -> None:
    env.user.models.create_model("x" * 64)
    assert env.user.models.get_model("x" * 64).owner == env.user.address


def test_create_model_reverts_if_name_taken(env: World) -> None:
    with reverts(revert_errors.ModelAlreadyExists, model_id=MID):
        env.attacker.models.create_model(PUBLIC)
    assert env.user.models.get_model(PUBLIC).owner == env.owner.address


@pytest.mark.parametrize(
    ("access", "price", "period"),
    [
        (Access.PUBLIC, 1, 0),
        (Access.ALLOWLIST, 0, 1),
        (Access.PAID, 0, PERIOD),
        (Access.PAID, PRICE, 0),
    ],
)
def test_create_model_reverts_if_pricing_invalid(
    env: World, access: Access, price: int, period: int
) -> None:
    with reverts(revert_errors.InvalidPricing, price=price, period=period):
        env.user.models.create_model("m", access, price, period)


# ------------------------------------------------------------------------- setAccessPolicy


def test_set_access_policy_changes_policy(env: World) -> None:
    result = env.owner.models.set_access_policy(PUBLIC, Access.PAID, 5, 60)
    assert env.owner.models.get_model(PUBLIC).access == Access.PAID
    assert events(env.registry, env.receipt(result.tx_hash), "AccessPolicySet") == [
        {"modelId": model_id(PUBLIC), "access": int(Access.PAID), "price": 5, "period": 60}
    ]
    assert env.user.models.has_access(PUBLIC, env.user.address) is False


def test_set_access_policy_reverts_if_not_owner(env: World) -> None:
    with reverts(revert_errors.NotModelOwner, model_id=MID, caller=env.attacker.address):
        env.attacker.models.set_access_policy(PUBLIC, Access.ALLOWLIST)


def test_set_access_policy_reverts_if_model_unknown(env: World) -> None:
    with reverts(revert_errors.ModelNotFound, model_id=hx(model_id("ghost"))):
        env.owner.models.set_access_policy("ghost", Access.ALLOWLIST)


def test_set_access_policy_reverts_if_pricing_invalid(env: World) -> None:
    with reverts(revert_errors.InvalidPricing, price=0, period=60):
        env.owner.models.set_access_policy(PUBLIC, Access.PAID, 0, 60)


# --------------------------------------------------------------------------- transferModel


def test_transfer_model_hands_over_ownership(env: World) -> None:
    fn = env.registry.functions.transferModel(model_id(PUBLIC), env.user.address)
    result = env.owner.wallet.transact(fn)
    assert events(env.registry, result.receipt, "ModelOwnerChanged") == [
        {
            "modelId": model_id(PUBLIC),
            "previousOwner": env.owner.address,
            "newOwner": env.user.address,
        }
    ]
    register_as_user = env.user.models.register_version(PUBLIC, "v2", content("v2"), sha("m"))
    assert register_as_user.value == version_id(PUBLIC, "v2")
    with reverts(revert_errors.NotModelOwner, model_id=MID, caller=env.owner.address):
        register(env, "v3")


def test_transfer_model_reverts_if_new_owner_zero(env: World) -> None:
    fn = env.registry.functions.transferModel(model_id(PUBLIC), "0x" + "00" * 20)
    with reverts(revert_errors.NotModelOwner, model_id=MID, caller="0x" + "00" * 20):
        env.owner.wallet.transact(fn)


def test_transfer_model_reverts_if_not_owner(env: World) -> None:
    fn = env.registry.functions.transferModel(model_id(PUBLIC), env.attacker.address)
    with reverts(revert_errors.NotModelOwner, model_id=MID, caller=env.attacker.address):
        env.attacker.wallet.transact(fn)


# ------------------------------------------------------------------------- registerVersion


def test_register_version_stores_what_the_event_says(env: World) -> None:
    parent = version_id(PUBLIC, V1)
    ref = ContentRef(CODEC_DAG_PB, sha("root"))
    result = env.owner.models.register_version(PUBLIC, "v2", ref, sha("manifest"), parent, "MIT")

    (event,) = events(env.registry, env.receipt(result.tx_hash), "VersionRegistered")
    assert event == {
        "modelId": model_id(PUBLIC),
        "versionId": version_id(PUBLIC, "v2"),
        "tag": "v2",
        "cidCodec": CODEC_DAG_PB,
        "cidDigest": sha("root"),
        "manifestSha256": sha("manifest"),
        "parent": parent,
        "jobId": 0,
        "license": encode_license("MIT"),
    }
    stored = env.registry.functions.getVersion(event["versionId"]).call()
    assert stored == (
        event["cidDigest"],
        event["manifestSha256"],
        event["parent"],
        event["modelId"],
        0,
        event["cidCodec"],
        False,
        event["license"],
    )
    record = env.owner.models.version(PUBLIC, "v2")
    assert (record.content, record.parent, record.license) == (ref, parent, "MIT")


@FUZZ
@given(
    tag=st.text(min_size=1, max_size=15).filter(lambda t: 0 < len(t.encode()) <= 64),
    codec=st.sampled_from([CODEC_RAW, CODEC_DAG_PB]),
    digest=st.binary(min_size=32, max_size=32).filter(any),
    manifest=st.binary(min_size=32, max_size=32).filter(any),
    with_parent=st.booleans(),
)
def test_register_version_event_matches_storage(
    env: World, tag: str, codec: int, digest: bytes, manifest: bytes, with_parent: bool
) -> None:
    """C9: whatever is registered, storage and the VersionRegistered event agree."""
    if tag.startswith("job-") or tag == V1:
        tag = f"t{tag}"
    parent = version_id(PUBLIC, V1) if with_parent else None
    with env.isolated():
        result = env.owner.models.register_version(
            PUBLIC, tag, ContentRef(codec, digest), manifest, parent
        )
        (event,) = events(env.registry, env.receipt(result.tx_hash), "VersionRegistered")
        digest_, manifest_, parent_, model_, job_, codec_, revoked, _ = (
            env.registry.functions.getVersion(version_id(PUBLIC, tag)).call()
        )
        assert event["versionId"] == version_id(PUBLIC, tag)
        assert event["tag"] == tag
        assert (digest_, manifest_, codec_) == (event["cidDigest"], event["manifestSha256"], codec)
        assert (digest_, manifest_) == (digest, manifest)
        assert parent_ == event["parent"] == (parent or bytes(32))
        assert (model_, job_, revoked) == (model_id(PUBLIC), 0, False)


def test_register_version_reverts_if_tag_exists(env: World) -> None:
    """C9: versions are write-once; the stored record keeps the first registration."""
    vid = version_id(PUBLIC, V1)
    before = env.registry.functions.getVersion(vid).call()
    with reverts(revert_errors.VersionAlreadyExists, version_id=hx(vid)):
        env.owner.models.register_version(PUBLIC, V1, content("other"), sha("other"))
    assert env.registry.functions.getVersion(vid).call() == before


def test_register_version_reverts_if_parent_unknown(env: World) -> None:
    ghost = version_id(PUBLIC, "ghost")
    with reverts(revert_errors.VersionNotFound, version_id=hx(ghost)):
        register(env, "v2", parent=ghost)


def test_register_version_accepts_parent_of_another_model(env: World) -> None:
    env.user.models.create_model("derived")
    parent = version_id(PUBLIC, V1)
    env.user.models.register_version("derived", "ft", content("ft"), sha("m"), parent)
    assert env.user.models.version("derived", "ft").parent == parent


@pytest.mark.parametrize(
    ("codec", "digest"), [(0x71, sha("x")), (0, sha("x")), (CODEC_RAW, bytes(32))]
)
def test_register_version_reverts_if_cid_invalid(env: World, codec: int, digest: bytes) -> None:
    with reverts(revert_errors.InvalidCid, codec=codec, digest=hx(digest)):
        env.owner.models.register_version(PUBLIC, "v2", ContentRef(codec, digest), sha("m"))


def test_register_version_reverts_if_manifest_hash_zero(env: World) -> None:
    with reverts(revert_errors.InvalidManifestHash):
        env.owner.models.register_version(PUBLIC, "v2", content("v2"), bytes(32))


@pytest.mark.parametrize("tag", ["", "t" * 65])
def test_register_version_reverts_if_tag_length_invalid(env: World, tag: str) -> None:
    with reverts(revert_errors.InvalidName):
        register(env, tag)


@pytest.mark.parametrize("tag", ["job-1", "job-", "job-latest"])
def test_register_version_reverts_if_tag_reserved(env: World, tag: str) -> None:
    with reverts(revert_errors.ReservedTag, tag=tag):
        register(env, tag)


@pytest.mark.parametrize("tag", ["job", "jobs-1", "Job-1", "my-job-1"])
def test_register_version_accepts_tags_resembling_job_tags(env: World, tag: str) -> None:
    assert register(env, tag) == version_id(PUBLIC, tag)


def test_register_version_reverts_if_not_owner(env: World) -> None:
    with reverts(revert_errors.NotModelOwner, model_id=MID, caller=env.attacker.address):
        env.attacker.models.register_version(PUBLIC, "v2", content("x"), sha("m"))


def test_register_version_reverts_if_model_unknown(env: World) -> None:
    with reverts(revert_errors.ModelNotFound, model_id=hx(model_id("ghost"))):
        env.owner.models.register_version("ghost", "v1", content("x"), sha("m"))


# ---------------------------------------------------------------------- registerJobVersion


@pytest.fixture
def board_role(env: World) -> None:
    """Give ``admin`` the job board's role, to call registerJobVersion directly."""
    role = env.registry.functions.JOB_BOARD_ROLE().call()
    env.admin.wallet.transact(env.registry.functions.grantRole(role, env.admin.address))


def test_register_job_version_inherits_the_parent_licence(env: World, board_role: None) -> None:
    parent = version_id(PUBLIC, V1)
    fn = env.registry.functions.registerJobVersion(
        model_id(PUBLIC), "job-7", CODEC_RAW, sha("w"), sha("m"), parent, 7
    )
    env.admin.wallet.transact(fn)
    record = env.owner.models.version(PUBLIC, "job-7")
    assert (record.job_id, record.parent, record.license) == (7, parent, LICENSE)


def test_register_job_version_reverts_if_model_unknown(env: World, board_role: None) -> None:
    fn = env.registry.functions.registerJobVersion(
        model_id("ghost"), "job-1", CODEC_RAW, sha("w"), sha("m"), version_id(PUBLIC, V1), 1
    )
    with reverts(revert_errors.ModelNotFound, model_id=hx(model_id("ghost"))):
        env.admin.wallet.transact(fn)


# --------------------------------------------------------------------------- revokeVersion


def test_revoke_version_marks_it_revoked(env: World) -> None:
    result = env.owner.models.revoke_version(PUBLIC, V1)
    assert events(env.registry, env.receipt(result.tx_hash), "VersionRevoked") == [
        {"modelId": model_id(PUBLIC), "versionId": version_id(PUBLIC, V1)}
    ]
    assert env.owner.models.version(PUBLIC, V1).revoked is True
    fn = env.registry.functions.checkVersionAccess(version_id(PUBLIC, V1), env.user.address)
    with reverts(revert_errors.VersionIsRevoked, version_id=hx(version_id(PUBLIC, V1))):
        env.user.wallet.call(fn)


def test_revoke_version_reverts_if_already_revoked(env: World) -> None:
    env.owner.models.revoke_version(PUBLIC, V1)
    with reverts(revert_errors.VersionIsRevoked, version_id=hx(version_id(PUBLIC, V1))):
        env.owner.models.revoke_version(PUBLIC, V1)


def test_revoke_version_reverts_if_unknown(env: World) -> None:
    with reverts(revert_errors.VersionNotFound, version_id=hx(version_id(PUBLIC, "nope"))):
        env.owner.models.revoke_version(PUBLIC, "nope")


def test_revoke_version_reverts_if_not_owner(env: World) -> None:
    with reverts(revert_errors.NotModelOwner, model_id=MID, caller=env.attacker.address):
        env.attacker.models.revoke_version(PUBLIC, V1)
    assert env.owner.models.version(PUBLIC, V1).revoked is False


# -------------------------------------------------------------------- setAlias/rollbackAlias


def test_set_alias_promotes_and_remembers_previous(env: World) -> None:
    v1, v2 = version_id(PUBLIC, V1), register(env, "v2")
    env.owner.models.set_alias(PUBLIC, "prod", V1)
    result = env.owner.models.set_alias(PUBLIC, "prod", "v2")

    assert alias(env, "prod") == (v2, v1)
    assert events(env.registry, env.receipt(result.tx_hash), "AliasSet") == [
        {
            "modelId": model_id(PUBLIC),
            "aliasHash": keccak(text="prod"),
            "name": "prod",
            "versionId": v2,
            "previous": v1,
        }
    ]
    assert env.owner.models.resolve(f"{PUBLIC}@prod").tag == "v2"


def test_set_alias_to_current_target_keeps_rollback_target(env: World) -> None:
    """Regression: re-promoting the current version overwrote the rollback target with itself."""
    v1, v2 = version_id(PUBLIC, V1), register(env, "v2")
    env.owner.models.set_alias(PUBLIC, "prod", V1)
    env.owner.models.set_alias(PUBLIC, "prod", "v2")
    env.owner.models.set_alias(PUBLIC, "prod", "v2")
    assert alias(env, "prod") == (v2, v1)
    env.owner.models.rollback_alias(PUBLIC, "prod")
    assert alias(env, "prod") == (v1, v2)


def test_set_alias_reverts_if_version_of_another_model(env: World) -> None:
    fn = env.registry.functions.setAlias(model_id(PUBLIC), "prod", version_id(GATED, V1))
    with reverts(revert_errors.VersionNotFound, version_id=hx(version_id(GATED, V1))):
        env.owner.wallet.transact(fn)


def test_set_alias_reverts_if_version_revoked(env: World) -> None:
    env.owner.models.revoke_version(PUBLIC, V1)
    with reverts(revert_errors.VersionIsRevoked, version_id=hx(version_id(PUBLIC, V1))):
        env.owner.models.set_alias(PUBLIC, "prod", V1)


@pytest.mark.parametrize("name", ["", "a" * 65])
def test_set_alias_reverts_if_name_length_invalid(env: World, name: str) -> None:
    with reverts(revert_errors.InvalidName):
        env.owner.models.set_alias(PUBLIC, name, V1)


def test_set_alias_reverts_if_not_owner(env: World) -> None:
    with reverts(revert_errors.NotModelOwner, model_id=MID, caller=env.attacker.address):
        env.attacker.models.set_alias(PUBLIC, "prod", V1)


def test_rollback_alias_swaps_current_and_previous(env: World) -> None:
    v1, v2 = version_id(PUBLIC, V1), register(env, "v2")
    env.owner.models.set_alias(PUBLIC, "prod", V1)
    env.owner.models.set_alias(PUBLIC, "prod", "v2")

    result = env.owner.models.rollback_alias(PUBLIC, "prod")

    assert alias(env, "prod") == (v1, v2)
    assert events(env.registry, env.receipt(result.tx_hash), "AliasSet")[0]["versionId"] == v1
    env.owner.models.rollback_alias(PUBLIC, "prod")  # rolling back a rollback re-promotes
    assert alias(env, "prod") == (v2, v1)


def test_rollback_alias_reverts_if_alias_unset(env: World) -> None:
    with reverts(revert_errors.AliasNotFound, model_id=MID, alias_hash=hx(keccak(text="prod"))):
        env.owner.models.rollback_alias(PUBLIC, "prod")


def test_rollback_alias_reverts_if_nothing_before(env: World) -> None:
    env.owner.models.set_alias(PUBLIC, "prod", V1)
    with reverts(revert_errors.NothingToRollBack, model_id=MID, alias_hash=hx(keccak(text="prod"))):
        env.owner.models.rollback_alias(PUBLIC, "prod")


def test_rollback_alias_reverts_if_target_revoked(env: World) -> None:
    register(env, "v2")
    env.owner.models.set_alias(PUBLIC, "prod", V1)
    env.owner.models.set_alias(PUBLIC, "prod", "v2")
    env.owner.models.revoke_version(PUBLIC, V1)
    with reverts(revert_errors.VersionIsRevoked, version_id=hx(version_id(PUBLIC, V1))):
        env.owner.models.rollback_alias(PUBLIC, "prod")


def test_rollback_alias_reverts_if_not_owner(env: World) -> None:
    with reverts(revert_errors.NotModelOwner, model_id=MID, caller=env.attacker.address):
        env.attacker.models.rollback_alias(PUBLIC, "prod")


# ------------------------------------------------------------------------ access: public


def test_public_model_is_open_to_everyone(env: World) -> None:
    for name in ("user", "attacker"):
        assert env.user.models.has_access(PUBLIC, env.actors[name].address) is True
    env.user.jobs.create_job(env.spec(), 10**15)


def test_unknown_model_grants_nobody_access(env: World) -> None:
    assert env.user.models.has_access("ghost", env.owner.address) is False


# --------------------------------------------------------------- access: allowlist (grant)


def test_allowlist_denies_until_granted(env: World) -> None:
    assert env.user.models.has_access(GATED, env.user.address) is False
    assert env.user.models.has_access(GATED, env.owner.address) is True  # owners always may
    result = env.owner.models.grant_access(GATED, env.user.address)
    assert events(env.registry, env.receipt(result.tx_hash), "AccessChanged") == [
        {"modelId": model_id(GATED), "account": env.user.address, "expiry": UINT64_MAX}
    ]
    assert env.user.models.access_expiry(GATED, env.user.address) == UINT64_MAX
    env.create_job(model=GATED)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_grant_access_ends_at_expiry(env: World, offset: int) -> None:
    """The grant holds while ``block.timestamp < expiry``: a job at ``expiry - 1`` is accepted,
    at ``expiry`` refused."""
    expiry = env.now() + 1_000
    env.owner.models.grant_access(GATED, env.user.address, expiry)
    spec = env.spec(model=GATED, deadline_in=5_000)
    fn = env.board.functions.createJob(env.request(spec))
    if offset < 0:
        transact_at(env.user.wallet, fn, expiry + offset, value=10**15)
    else:
        with reverts(
            revert_errors.NoAccess, model_id=hx(model_id(GATED)), account=env.user.address
        ):
            transact_at(env.user.wallet, fn, expiry + offset, value=10**15)
        assert env.user.models.has_access(GATED, env.user.address) is False


def test_revoke_access_removes_the_grant(env: World) -> None:
    env.owner.models.grant_access(GATED, env.user.address)
    result = env.owner.models.revoke_access(GATED, env.user.address)
    assert events(env.registry, env.receipt(result.tx_hash), "AccessChanged") == [
        {"modelId": model_id(GATED), "account": env.user.address, "expiry": 0}
    ]
    assert env.user.models.access_expiry(GATED, env.user.address) == 0
    with reverts(revert_errors.NoAccess, model_id=hx(model_id(GATED)), account=env.user.address):
        env.create_job(model=GATED)


@pytest.mark.parametrize("fn_name", ["grantAccess", "revokeAccess"])
def test_access_grants_revert_if_not_owner(env: World, fn_name: str) -> None:
    args = [model_id(GATED), env.attacker.address] + ([0] if fn_name == "grantAccess" else [])
    fn = getattr(env.registry.functions, fn_name)(*args)
    with reverts(
        revert_errors.NotModelOwner, model_id=hx(model_id(GATED)), caller=env.attacker.address
    ):
        env.attacker.wallet.transact(fn)


# -------------------------------------------------------------------- access: paid (buy)


def test_buy_access_needs_exact_payment(env: World) -> None:
    buy = env.registry.functions.buyAccess(model_id(PAID), 2)
    for sent in (2 * PRICE - 1, 2 * PRICE + 1, 0):
        with reverts(revert_errors.WrongPayment, expected=2 * PRICE, sent=sent):
            env.buyer.wallet.transact(buy, value=sent)
    with reverts(revert_errors.WrongPayment, expected=0, sent=0):
        env.buyer.wallet.transact(env.registry.functions.buyAccess(model_id(PAID), 0))
    assert env.user.models.has_access(PAID, env.buyer.address) is False


def test_buy_access_grants_periods_and_credits_owner(env: World) -> None:
    before = env.balance(env.registry.address)
    result = env.buyer.models.buy_access(PAID, periods=3)
    mined_at = int(env.w3.eth.get_block(result.block_number)["timestamp"])

    assert env.buyer.models.access_expiry(PAID, env.buyer.address) == mined_at + 3 * PERIOD
    assert env.buyer.models.has_access(PAID, env.buyer.address) is True
    assert env.balance(env.registry.address) == before + 3 * PRICE
    assert env.credit(env.registry, env.owner.address) == 3 * PRICE
    assert events(env.registry, env.receipt(result.tx_hash), "Credited") == [
        {"account": env.owner.address, "amount": 3 * PRICE}
    ]


def test_buy_access_extends_unexpired_access(env: World) -> None:
    first = env.buyer.models.buy_access(PAID)
    start = int(env.w3.eth.get_block(first.block_number)["timestamp"])
    env.warp(start + PERIOD // 2)
    env.buyer.models.buy_access(PAID)
    assert env.buyer.models.access_expiry(PAID, env.buyer.address) == start + 2 * PERIOD


def test_buy_access_after_expiry_starts_from_now(env: World) -> None:
    first = env.buyer.models.buy_access(PAID)
    start = int(env.w3.eth.get_block(first.block_number)["timestamp"])
    later = start + 3 * PERIOD
    fn = env.registry.functions.buyAccess(model_id(PAID), 1)
    transact_at(env.buyer.wallet, fn, later, value=PRICE)
    assert env.buyer.models.access_expiry(PAID, env.buyer.address) == later + PERIOD


def test_buy_access_reverts_if_not_for_sale(env: World) -> None:
    for name in (PUBLIC, GATED):
        fn = env.registry.functions.buyAccess(model_id(name), 1)
        with reverts(revert_errors.NotForSale, model_id=hx(model_id(name))):
            env.buyer.wallet.transact(fn, value=PRICE)


def test_buy_access_reverts_if_model_unknown(env: World) -> None:
    fn = env.registry.functions.buyAccess(model_id("ghost"), 1)
    with reverts(revert_errors.ModelNotFound, model_id=hx(model_id("ghost"))):
        env.buyer.wallet.transact(fn, value=PRICE)


def test_owner_withdraws_access_proceeds(env: World) -> None:
    env.buyer.models.buy_access(PAID, 2)
    env.user.models.buy_access(PAID, 1)
    before = env.balance(env.owner.address)

    sent = env.owner.wallet.transact(env.registry.functions.withdraw())

    assert env.balance(env.owner.address) == before + 3 * PRICE - gas_cost(sent.receipt)
    assert env.credit(env.registry, env.owner.address) == 0
    with reverts(revert_errors.NothingToWithdraw, account=env.owner.address):
        env.owner.models.withdraw()


# ------------------------------------------------------------------------------------ views


def test_check_version_access_returns_model(env: World) -> None:
    fn = env.registry.functions.checkVersionAccess(version_id(GATED, V1), env.owner.address)
    assert bytes(env.owner.wallet.call(fn)) == model_id(GATED)


def test_check_version_access_reverts_without_access(env: World) -> None:
    fn = env.registry.functions.checkVersionAccess(version_id(GATED, V1), env.user.address)
    with reverts(revert_errors.NoAccess, model_id=hx(model_id(GATED)), account=env.user.address):
        env.user.wallet.call(fn)


def test_check_version_access_reverts_if_version_unknown(env: World) -> None:
    vid = version_id(GATED, "nope")
    fn = env.registry.functions.checkVersionAccess(vid, env.owner.address)
    with reverts(revert_errors.VersionNotFound, version_id=hx(vid)):
        env.owner.wallet.call(fn)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(min_size=1, max_size=20), tag=st.text(min_size=1, max_size=20))
def test_version_id_of_matches_sdk(env: World, name: str, tag: str) -> None:
    onchain = env.registry.functions.versionIdOf(model_id(name), tag).call()
    assert bytes(onchain) == version_id(name, tag)


def test_get_version_of_unknown_version_is_empty(env: World) -> None:
    empty = env.registry.functions.getVersion(version_id(PUBLIC, "nope")).call()
    assert empty[3] == bytes(32)
    assert hx(empty[0]) == ZERO32


# ----------------------------------------------------------------- serving restriction


def test_may_serve_is_open_until_restricted(env: World) -> None:
    vid = version_id(PUBLIC, V1)
    assert env.user.models.may_serve(vid, env.node1.address)
    assert not env.user.models.servers_restricted(PUBLIC)


def test_set_server_restriction_limits_serving_to_allowed_nodes(env: World) -> None:
    vid = version_id(PUBLIC, V1)
    owner = env.owner.models
    result = owner.set_server_restriction(PUBLIC, True)
    assert events(env.registry, env.receipt(result.tx_hash), "ServerRestrictionSet") == [
        {"modelId": model_id(PUBLIC), "restricted": True}
    ]
    assert owner.servers_restricted(PUBLIC)
    assert not owner.may_serve(vid, env.node1.address)

    result = owner.set_servers(PUBLIC, [env.node1.address, env.node2.address], True)
    assert events(env.registry, env.receipt(result.tx_hash), "ServerSet") == [
        {"modelId": model_id(PUBLIC), "node": env.node1.address, "allowed": True},
        {"modelId": model_id(PUBLIC), "node": env.node2.address, "allowed": True},
    ]
    assert owner.may_serve(vid, env.node1.address)
    assert owner.may_serve(vid, env.node2.address)
    assert not owner.may_serve(vid, env.node3.address)
    assert owner.may_serve(version_id(GATED, V1), env.node3.address)  # other models stay open

    owner.set_servers(PUBLIC, [env.node2.address], False)
    assert not owner.may_serve(vid, env.node2.address)
    assert owner.allowed_servers(PUBLIC) == [env.node1.address]

    owner.set_server_restriction(PUBLIC, False)  # open again; the allowed set is kept
    assert owner.may_serve(vid, env.node3.address)
    assert owner.is_server(PUBLIC, env.node1.address)


def test_may_serve_is_false_for_unknown_or_revoked_versions(env: World) -> None:
    assert not env.user.models.may_serve(version_id(PUBLIC, "nope"), env.node1.address)
    env.owner.models.revoke_version(PUBLIC, V1)
    assert not env.user.models.may_serve(version_id(PUBLIC, V1), env.node1.address)


@pytest.mark.parametrize("call", ["restriction", "servers"])
def test_serving_changes_revert_if_not_owner(env: World, call: str) -> None:
    models = env.attacker.models
    with reverts(revert_errors.NotModelOwner, model_id=MID, caller=env.attacker.address):
        if call == "restriction":
            models.set_server_restriction(PUBLIC, True)
        else:
            models.set_servers(PUBLIC, [env.attacker.address], True)


def test_serving_changes_revert_if_model_unknown(env: World) -> None:
    with reverts(revert_errors.ModelNotFound, model_id=hx(model_id("nope"))):
        env.owner.models.set_server_restriction("nope", True)


def test_set_servers_reverts_for_the_zero_address(env: World) -> None:
    with reverts(revert_errors.InvalidServer, node=ZERO_ADDRESS):
        env.owner.models.set_servers(PUBLIC, [env.node1.address, ZERO_ADDRESS], True)


# ------------------------------------------------------------------ version scans (client)


def _logs_from_blocks(rpc_calls: RpcCalls) -> list[int]:
    return [int(p[0]["fromBlock"], 16) for m, p in rpc_calls.params if m == "eth_getLogs"]


def test_a_version_list_is_rescanned_only_from_the_last_scan(
    env: World, rpc_calls: RpcCalls
) -> None:
    client = env.user.models
    env.chain.mine(2 * RESCAN_DEPTH)  # so a scan from deployment starts far below the head
    assert [v.tag for v in client.list_versions(PUBLIC)] == [V1]
    scanned_to = env.w3.eth.block_number
    register(env, "v2")
    rpc_calls.clear()

    assert [v.tag for v in client.list_versions(PUBLIC)] == [V1, "v2"]
    starts = _logs_from_blocks(rpc_calls)
    assert starts, "the new blocks were not scanned"
    assert min(starts) >= max(client.from_block, scanned_to - RESCAN_DEPTH)
    assert client.resolve(PUBLIC).tag == "v2"  # a bare name is the newest version


def test_an_alias_tag_is_looked_up_once(env: World, rpc_calls: RpcCalls) -> None:
    env.owner.models.set_alias(PUBLIC, "prod", V1)
    client = env.user.models
    assert client.resolve(f"{PUBLIC}@prod").tag == V1
    rpc_calls.clear()
    assert client.resolve(f"{PUBLIC}@prod").tag == V1
    assert rpc_calls["eth_getLogs"] == 0
