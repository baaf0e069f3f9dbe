"""Client of the NodeRegistry contract: staking, endpoints, served versions, unstaking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from registry.chain.events import IncrementalScan
from registry.clients.base import ContractClient, TxResult
from registry.errors import ChainError


@dataclass(frozen=True)
class NodeRecord:
    """A worker node as the chain records it."""

    address: str
    stake_wei: int
    unlock_at: int
    slash_count: int
    registered: bool
    endpoint: str
    public_key: bytes


class NodeRegistryClient(ContractClient):
    """Typed access to NodeRegistry."""

    contract_name = "NodeRegistry"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._serving = IncrementalScan(self._events("ServingChanged"), self.from_block)
        self._candidates: dict[bytes, dict[str, None]] = {}  # version id -> who ever declared it

    def register(self, endpoint: str, public_key: bytes, stake_wei: int = 0) -> TxResult:
        """Register (or update) the wallet's node, adding ``stake_wei`` to its stake."""
        fn = self.contract.functions.register(endpoint, public_key)
        return self._result(self._send(fn, value=stake_wei))

    def add_stake(self, amount_wei: int) -> TxResult:
        """Add to the wallet's stake."""
        return self._result(self._send(self.contract.functions.addStake(), value=amount_wei))

    def set_serving(self, version_ids: list[bytes], serving: bool = True) -> TxResult:
        """Declare that the node serves (or stops serving) these versions."""
        return self._result(self._send(self.contract.functions.setServing(version_ids, serving)))

    def request_unstake(self) -> TxResult:
        """Stop taking jobs and start the unstake delay."""
        return self._result(self._send(self.contract.functions.requestUnstake()))

    def withdraw_stake(self) -> TxResult:
        """After the delay, credit the stake for :meth:`withdraw`."""
        return self._result(self._send(self.contract.functions.withdrawStake()))

    def slash(self, node: str, amount_wei: int, beneficiary: str, job_id: int) -> TxResult:
        """Slash a node (slasher role only: the job board)."""
        fn = self.contract.functions.slash(node, amount_wei, beneficiary, job_id)
        return self._result(self._send(fn))

    def get_node(self, address: str) -> NodeRecord:
        """The record of ``address`` (``registered`` false when unknown)."""
        stake, unlock_at, slashes, registered, endpoint, key = self._read(
            self.contract.functions.getNode(address)
        )
        return NodeRecord(
            address=to_checksum_address(address),
            stake_wei=int(stake),
            unlock_at=int(unlock_at),
            slash_count=int(slashes),
            registered=bool(registered),
            endpoint=str(endpoint),
            public_key=bytes(key),
        )

    def is_eligible(self, address: str) -> bool:
        """Whether ``address`` may claim jobs now."""
        return bool(self._read(self.contract.functions.isEligible(address)))

    def serves(self, address: str, version_id: bytes) -> bool:
        """Whether ``address`` declared it serves ``version_id``."""
        return bool(self._read(self.contract.functions.serves(address, version_id)))

    def min_stake(self) -> int:
        """Minimum stake to take jobs, in wei."""
        return int(self._read(self.contract.functions.minStake()))

    def list_nodes(self, from_block: int | None = None) -> list[NodeRecord]:
        """Every node that ever registered (current records)."""
        seen: dict[str, None] = {}
        for ev in self._events("NodeRegistered").scan(self._from(from_block)):
            seen.setdefault(str(ev.args["node"]), None)
        return [self.get_node(a) for a in seen]

    def serving_nodes(self, version_id: bytes, from_block: int | None = None) -> list[NodeRecord]:
        """Eligible nodes currently serving ``version_id``.

        Without ``from_block``, only the blocks since the last call for ``version_id`` are
        scanned (less :data:`~registry.chain.events.RESCAN_DEPTH`): who ever declared the
        version is kept, and contract calls decide who serves it now."""
        where = {"versionId": version_id}
        if from_block is not None:
            candidates: dict[str, None] = {}
            events = self._events("ServingChanged").scan(from_block, where=where)
        else:
            candidates = self._candidates.setdefault(version_id, {})
            events = iter(self._serving.new_events(version_id, where))
        for ev in events:
            candidates.setdefault(str(ev.args["node"]), None)
        return self.eligible_serving(version_id, list(candidates))

    def eligible_serving(self, version_id: bytes, addresses: list[str]) -> list[NodeRecord]:
        """The records of those ``addresses`` that serve ``version_id`` and are eligible now
        (contract calls only: for a caller that already knows the candidates from events)."""
        return [
            self.get_node(address)
            for address in addresses
            if self.serves(address, version_id) and self.is_eligible(address)
        ]


def ensure_registered(
    client: NodeRegistryClient, endpoint: str, public_key: bytes
) -> TxResult | None:
    """Register the wallet's node with the minimum stake unless it already is eligible.

    Returns:
        The registration transaction, or None when nothing had to be done.
    """
    if client.wallet is None:
        raise ChainError("registering a node needs a signing key")
    me = client.get_node(client.wallet.address)
    if me.registered and me.endpoint == endpoint and client.is_eligible(me.address):
        return None
    missing = max(0, client.min_stake() - me.stake_wei)
    return client.register(endpoint, public_key, stake_wei=missing)
