"""Client of the ModelRegistry contract: models, write-once versions, aliases, access rights."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eth_utils import keccak

from registry.chain.events import ChainEvent, IncrementalScan
from registry.clients.base import ContentRef, ContractClient, TxResult
from registry.errors import ModelError, ModelNotFoundError

ZERO32 = b"\x00" * 32
LICENSE_BYTES = 22


class Access(enum.IntEnum):
    """Access policy of a model."""

    PUBLIC = 0
    ALLOWLIST = 1
    PAID = 2


@dataclass(frozen=True)
class ModelRecord:
    """A model as the chain records it."""

    model_id: bytes
    name: str
    owner: str
    access: Access
    price_wei: int
    access_period_s: int


@dataclass(frozen=True)
class VersionRecord:
    """A write-once model version."""

    version_id: bytes
    model_id: bytes
    tag: str
    content: ContentRef
    manifest_sha256: bytes
    parent: bytes | None
    job_id: int
    license: str
    revoked: bool

    @cached_property
    def cid(self) -> str:
        """The version's root CID (base32; computed once: serving looks it up per request)."""
        return self.content.to_cid()


def model_id(name: str) -> bytes:
    """The on-chain id of a model name."""
    return keccak(text=name)


def version_id(name: str, tag: str) -> bytes:
    """The on-chain id of a version tag of a model (``versionIdOf`` in the contract)."""
    from eth_abi import encode

    return keccak(encode(["bytes32", "bytes32"], [model_id(name), keccak(text=tag)]))


def encode_license(license: str) -> bytes:
    """The licence as the contract stores it: UTF-8, at most 22 bytes, zero-padded.

    Raises:
        ModelError: the licence is longer than 22 bytes.
    """
    raw = license.encode()
    if len(raw) > LICENSE_BYTES:
        raise ModelError(f"licence {license!r} is longer than {LICENSE_BYTES} bytes")
    return raw.ljust(LICENSE_BYTES, b"\x00")


class ModelRegistryClient(ContractClient):
    """Typed access to ModelRegistry.

    Version tags live only in ``VersionRegistered`` events. Versions are write-once, so the
    tags found are kept, and a model's version list is scanned from where the last scan ended
    (less :data:`~registry.chain.events.RESCAN_DEPTH`): resolving a bare name or an alias
    again costs contract calls and a scan of the new blocks, not a scan of the chain since
    deployment, which grows with the chain (on the embedded chain ~0.7 ms per block; a public
    chain has millions).
    """

    contract_name = "ModelRegistry"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tags: dict[bytes, str] = {}  # version id -> tag (write-once)
        self._versions = IncrementalScan(self._events("VersionRegistered"), self.from_block)
        self._listed: dict[bytes, dict[bytes, str]] = {}  # model id -> version ids, in order

    # --- models --------------------------------------------------------------------------------

    def create_model(
        self, name: str, access: Access = Access.PUBLIC, price_wei: int = 0, period_s: int = 0
    ) -> TxResult:
        """Create a model owned by the wallet; ``value`` of the result is the model id."""
        sent = self._send(
            self.contract.functions.createModel(name, int(access), price_wei, period_s)
        )
        return self._result(sent, model_id(name))

    def get_model(self, name: str) -> ModelRecord:
        """The model named ``name``.

        Raises:
            ModelNotFoundError: no such model.
        """
        mid = model_id(name)
        owner, access, price, period = self._read(self.contract.functions.getModel(mid))
        if int(owner, 16) == 0:
            raise ModelNotFoundError(f"model {name!r} is not registered")
        return ModelRecord(mid, name, owner, Access(access), int(price), int(period))

    def set_access_policy(
        self, name: str, access: Access, price_wei: int = 0, period_s: int = 0
    ) -> TxResult:
        """Change a model's access policy."""
        fn = self.contract.functions.setAccessPolicy(
            model_id(name), int(access), price_wei, period_s
        )
        return self._result(self._send(fn))

    def list_models(self, from_block: int | None = None) -> list[ModelRecord]:
        """Every model, in creation order (from ``ModelCreated`` events)."""
        events = self._events("ModelCreated").scan(self._from(from_block))
        return [self.get_model(ev.args["name"]) for ev in events]

    # --- versions ------------------------------------------------------------------------------

    def register_version(
        self,
        name: str,
        tag: str,
        content: ContentRef,
        manifest_sha256: bytes,
        parent: bytes | None = None,
        license: str = "",
    ) -> TxResult:
        """Register a write-once version; ``value`` of the result is the version id."""
        fn = self.contract.functions.registerVersion(
            model_id(name),
            tag,
            content.codec,
            content.digest,
            manifest_sha256,
            parent or ZERO32,
            encode_license(license),
        )
        return self._result(self._send(fn), version_id(name, tag))

    def get_version(self, vid: bytes, tag: str = "") -> VersionRecord:
        """The version with id ``vid``.

        Raises:
            ModelNotFoundError: no such version.
        """
        raw = self._read(self.contract.functions.getVersion(vid))
        return self._version(vid, raw, tag)

    def version(self, name: str, tag: str) -> VersionRecord:
        """Version ``tag`` of model ``name``."""
        return self.get_version(version_id(name, tag), tag)

    def resolve(self, ref: str, default_alias: str = "latest") -> VersionRecord:
        """Resolve ``name``, ``name@tag`` or ``name@alias`` to a version.

        A bare name resolves the ``latest`` alias if set, else the newest version. An ``@ref``
        is tried as a version tag first, then as an alias.

        Raises:
            ModelNotFoundError: the model, tag or alias does not exist.
        """
        name, _, tag = ref.partition("@")
        self.get_model(name)
        if tag:
            found = self._try_version(name, tag)
            if found is not None:
                return found
            target = self.alias_target(name, tag)
            if target is None:
                raise ModelNotFoundError(f"{name!r} has no version or alias {tag!r}")
            return self.get_version(target, self._tag_of(name, target))
        target = self.alias_target(name, default_alias)
        if target is not None:
            return self.get_version(target, self._tag_of(name, target))
        versions = self.list_versions(name)
        if not versions:
            raise ModelNotFoundError(f"model {name!r} has no versions")
        return versions[-1]

    def list_versions(self, name: str, from_block: int | None = None) -> list[VersionRecord]:
        """Every version of ``name`` in registration order (with current revoked flags).

        Without ``from_block``, only the blocks since this client's last scan of ``name`` are
        scanned (see the class doc)."""
        mid = model_id(name)
        if from_block is not None:
            events = self._events("VersionRegistered").scan(from_block, where={"modelId": mid})
            return [self.get_version(vid, tag) for vid, tag in self._found(events)]
        listed = dict(self._listed.get(mid, {}))
        for vid, tag in self._found(self._versions.new_events(mid, {"modelId": mid})):
            listed.setdefault(vid, tag)
        self._listed[mid] = listed
        out = []
        for vid, tag in listed.items():
            try:
                out.append(self.get_version(vid, tag))
            except ModelNotFoundError:
                continue  # registered in a block a reorg replaced
        return out

    def _found(self, events: Iterable[ChainEvent]) -> list[tuple[bytes, str]]:
        """(version id, tag) of ``VersionRegistered`` events, remembered (tags are write-once)."""
        found = [(bytes(ev.args["versionId"]), str(ev.args["tag"])) for ev in events]
        self._tags.update(found)
        return found

    def exists(self, name: str, tag: str) -> bool:
        """Whether ``name@tag`` is registered."""
        return self._try_version(name, tag) is not None

    def revoke_version(self, name: str, tag: str) -> TxResult:
        """Revoke a version (it stays on record but must not be served)."""
        return self._result(
            self._send(self.contract.functions.revokeVersion(version_id(name, tag)))
        )

    # --- aliases -------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, tag: str) -> TxResult:
        """Point ``alias`` at version ``tag`` (promote)."""
        fn = self.contract.functions.setAlias(model_id(name), alias, version_id(name, tag))
        return self._result(self._send(fn))

    def rollback_alias(self, name: str, alias: str) -> TxResult:
        """Move ``alias`` back to its previous target."""
        return self._result(
            self._send(self.contract.functions.rollbackAlias(model_id(name), alias))
        )

    def alias_target(self, name: str, alias: str) -> bytes | None:
        """The version id ``alias`` points at, or None when unset."""
        current, _previous = self._read(self.contract.functions.getAlias(model_id(name), alias))
        return None if bytes(current) == ZERO32 else bytes(current)

    # --- access --------------------------------------------------------------------------------

    def grant_access(self, name: str, account: str, expiry: int = 0) -> TxResult:
        """Allow ``account`` to use ``name`` until ``expiry`` (0 = no expiry)."""
        fn = self.contract.functions.grantAccess(model_id(name), account, expiry)
        return self._result(self._send(fn))

    def revoke_access(self, name: str, account: str) -> TxResult:
        """Withdraw ``account``'s access to ``name``."""
        return self._result(
            self._send(self.contract.functions.revokeAccess(model_id(name), account))
        )

    def buy_access(self, name: str, periods: int = 1) -> TxResult:
        """Buy ``periods`` access periods of a paid model at its current price."""
        model = self.get_model(name)
        fn = self.contract.functions.buyAccess(model.model_id, periods)
        return self._result(self._send(fn, value=model.price_wei * periods))

    def has_access(self, name_or_id: str | bytes, account: str) -> bool:
        """Whether ``account`` may use the model now."""
        mid = name_or_id if isinstance(name_or_id, bytes) else model_id(name_or_id)
        return bool(self._read(self.contract.functions.hasAccess(mid, account)))

    def access_expiry(self, name: str, account: str) -> int:
        """Unix time ``account``'s granted or bought access ends (0 = none)."""
        return int(self._read(self.contract.functions.accessExpiry(model_id(name), account)))

    # --- serving -------------------------------------------------------------------------------

    def may_serve(self, vid: bytes, node: str) -> bool:
        """Whether ``node`` may serve version ``vid``: it exists, is not revoked, and its model
        is unrestricted or allows ``node``."""
        return bool(self._read(self.contract.functions.mayServe(vid, node)))

    def set_server_restriction(self, name: str, restricted: bool) -> TxResult:
        """Restrict serving ``name`` to its allowed nodes, or open it to every node."""
        fn = self.contract.functions.setServerRestriction(model_id(name), restricted)
        return self._result(self._send(fn))

    def set_servers(self, name: str, nodes: list[str], allowed: bool = True) -> TxResult:
        """Allow (or stop allowing) ``nodes`` to serve ``name`` while it is restricted."""
        fn = self.contract.functions.setServers(model_id(name), nodes, allowed)
        return self._result(self._send(fn))

    def servers_restricted(self, name: str) -> bool:
        """Whether serving ``name`` is restricted to its allowed nodes."""
        return bool(self._read(self.contract.functions.serversRestricted(model_id(name))))

    def is_server(self, name: str, node: str) -> bool:
        """Whether ``node`` is on ``name``'s allowed servers (applies while restricted)."""
        return bool(self._read(self.contract.functions.isServer(model_id(name), node)))

    def allowed_servers(self, name: str, from_block: int | None = None) -> list[str]:
        """The nodes currently allowed to serve ``name`` (from ``ServerSet`` events)."""
        allowed: dict[str, bool] = {}
        events = self._events("ServerSet").scan(
            self._from(from_block), where={"modelId": model_id(name)}
        )
        for ev in events:
            allowed[str(ev.args["node"])] = bool(ev.args["allowed"])
        return [node for node, ok in allowed.items() if ok]

    # --- internals -----------------------------------------------------------------------------

    def _try_version(self, name: str, tag: str) -> VersionRecord | None:
        try:
            return self.version(name, tag)
        except ModelNotFoundError:
            return None

    def _tag_of(self, name: str, vid: bytes) -> str:
        """The tag ``vid`` was registered with (kept once found: versions are write-once)."""
        if vid in self._tags:
            return self._tags[vid]
        events = self._events("VersionRegistered").scan(
            self.from_block, where={"modelId": model_id(name), "versionId": vid}
        )
        for ev in events:
            self._tags[vid] = str(ev.args["tag"])
            return self._tags[vid]
        return ""

    def _version(self, vid: bytes, raw: Any, tag: str) -> VersionRecord:
        cid_digest, manifest, parent, mid, job_id, codec, revoked, license = raw
        if bytes(mid) == ZERO32:
            raise ModelNotFoundError(f"version 0x{vid.hex()} is not registered")
        return VersionRecord(
            version_id=vid,
            model_id=bytes(mid),
            tag=tag,
            content=ContentRef(int(codec), bytes(cid_digest)),
            manifest_sha256=bytes(manifest),
            parent=None if bytes(parent) == ZERO32 else bytes(parent),
            job_id=int(job_id),
            license=bytes(license).rstrip(b"\x00").decode(errors="replace"),
            revoked=bool(revoked),
        )
