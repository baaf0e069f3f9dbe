"""Helpers of the contract suites: a throw-away anvil, the deployed world and its actors.

One behaviour suite runs on every backend (web3.py's pattern): :class:`World` wraps a chain, a
deployment with some base state (three models, four staked nodes) and named, funded actors, and
every test runs inside :meth:`World.isolated` (snapshot, test, revert). Helpers here also send
transactions *without* simulating them first, at an exact block timestamp, so tests can check
what a mined transaction does at ``T - 1``, ``T`` and ``T + 1``.

Run as a script to get an anvil for manual work: ``python tests/support/chain.py``.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from web3.logs import DISCARD
from web3.types import TxReceipt

from registry.chain import artifacts
from registry.chain.connection import Chain, connect, dev_keys, embedded_chain
from registry.chain.deployment import Deployment, DeployParams, deploy
from registry.chain.reverts import as_revert
from registry.chain.tx import Wallet
from registry.clients import (
    Access,
    ChallengesClient,
    ContentRef,
    JobBoardClient,
    JobSpec,
    ModelRegistryClient,
    NodeRegistryClient,
)
from registry.clients.jobs import Output
from registry.clients.models import model_id, version_id
from registry.dev.anvil import Anvil
from registry.errors import ContractRevertError
from registry.jobs import JobKind

# --- deployment parameters and base state ---------------------------------------------------

ADMIN_DELAY = 86_400
MIN_STAKE = 10**17
UNSTAKE_DELAY = 3_600
SLASH = 5 * 10**16
REVEAL_WINDOW = 600
PARAMS = DeployParams(
    admin_transfer_delay=ADMIN_DELAY,
    min_stake_wei=MIN_STAKE,
    unstake_delay_s=UNSTAKE_DELAY,
    slash_amount_wei=SLASH,
    reveal_window_s=REVEAL_WINDOW,
)
#: Base nodes stake enough to survive many slashes.
NODE_STAKE = 20 * SLASH
REWARD = 10**16
PRICE = 10**15
PERIOD = 86_400
LEASE = 600

PUBLIC = "public-model"
GATED = "gated-model"
PAID = "paid-model"
V1 = "v1"
LICENSE = "Apache-2.0"

ZERO32 = "0x" + "00" * 32
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70

#: Names of the funded dev accounts, in anvil's order.
ACTORS = (
    "admin",
    "owner",
    "user",
    "buyer",
    "node1",
    "node2",
    "node3",
    "node4",
    "attacker",
    "newadmin",
)
NODES = ("node1", "node2", "node3", "node4")


def hx(value: bytes) -> str:
    """``bytes32`` as decoded revert arguments show it: ``0x`` + lowercase hex."""
    return "0x" + value.hex()


def sha(data: bytes | str) -> bytes:
    """sha256 of ``data`` (text is UTF-8 encoded)."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).digest()


def content(seed: str, codec: int = CODEC_RAW) -> ContentRef:
    """A content reference whose digest derives from ``seed``."""
    return ContentRef(codec, sha(f"content:{seed}"))


def output(seed: str, size: int = 1_000) -> Output:
    """A job output whose CID digest and sha256 derive from ``seed``."""
    return Output(content(seed), sha(f"output:{seed}"), size)


def role(name: str) -> str:
    """The id of an AccessControl role, as a decoded revert argument shows it."""
    from eth_utils import keccak

    return ZERO32 if name == "DEFAULT_ADMIN_ROLE" else hx(keccak(text=name))


# --- sending and asserting ----------------------------------------------------------------


@contextmanager
def reverts(error: type[ContractRevertError], **args: Any) -> Iterator[Any]:
    """Expect exactly ``error`` (not a subclass or the base) with exactly ``args``."""
    with pytest.raises(error) as info:
        yield info
    assert type(info.value) is error, f"expected {error.__name__}, got {info.value!r}"
    assert info.value.args_by_name == args


def simulate(
    fn: Any, sender: str, value: int = 0, block: str = "latest", gas: int | None = None
) -> Any:
    """``eth_call`` ``fn`` from ``sender`` at ``block``; raise the typed revert if it fails."""
    params: dict[str, Any] = {"from": sender, "value": value}
    if gas is not None:
        params["gas"] = gas
    try:
        return fn.call(params, block_identifier=block)
    except Exception as exc:
        revert = as_revert(exc)
        if revert is None:
            raise
        raise revert from None


def send_unchecked(wallet: Wallet, fn: Any, value: int = 0, gas: int = 3_000_000) -> TxReceipt:
    """Sign and mine ``fn`` without simulating it first (the receipt may have status 0)."""
    w3 = wallet.chain.w3
    base = int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
    tx = fn.build_transaction(
        {
            "from": wallet.address,
            "value": value,
            "gas": gas,
            "nonce": w3.eth.get_transaction_count(wallet.address, "pending"),
            "maxFeePerGas": 2 * base + 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
    )
    signed = wallet.account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)


def transact_at(wallet: Wallet, fn: Any, timestamp: int, value: int = 0) -> TxReceipt:
    """Mine ``fn`` in a block with exactly ``timestamp``.

    The call is simulated on the pending block (which carries ``timestamp`` on both backends),
    then sent without simulation so it is mined whatever the outcome.

    Raises:
        ContractRevertError: (typed) the mined transaction reverted; its receipt had status 0.
    """
    chain = wallet.chain
    chain.set_next_timestamp(timestamp)
    error: ContractRevertError | None = None
    try:
        simulate(fn, wallet.address, value, block="pending")
    except ContractRevertError as exc:
        error = exc
    receipt = send_unchecked(wallet, fn, value)
    mined_at = int(chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])
    assert mined_at == timestamp, f"mined at {mined_at}, wanted {timestamp}"
    if error is not None:
        assert receipt["status"] == 0, f"{error!r} simulated, but the mined tx succeeded"
        raise error
    assert receipt["status"] == 1, "the pending simulation passed but the mined tx reverted"
    return receipt


def gas_cost(receipt: TxReceipt) -> int:
    """Wei a mined transaction cost its sender."""
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def events(contract: Any, receipt: TxReceipt, name: str) -> list[dict[str, Any]]:
    """Arguments of every ``name`` event ``contract`` emitted in ``receipt``."""
    logs = getattr(contract.events, name)().process_receipt(receipt, errors=DISCARD)
    return [dict(log["args"]) for log in logs]


# --- the world --------------------------------------------------------------------------------


@dataclass
class Actor:
    """A funded dev account with a signing wallet and a client of each contract."""

    name: str
    wallet: Wallet
    models: ModelRegistryClient
    nodes: NodeRegistryClient
    jobs: JobBoardClient
    challenges: ChallengesClient

    @property
    def address(self) -> str:
        """The checksummed address."""
        return self.wallet.address


class World:
    """The system deployed on one backend, with base state and named actors.

    Base state: ``owner`` owns a public, an allowlisted and a paid model, each with version
    ``v1``; ``node1``..``node4`` are registered with :data:`NODE_STAKE`.
    """

    def __init__(self, backend: str, chain: Chain) -> None:
        self.backend = backend
        self.chain = chain
        self.w3 = chain.w3
        keys = dev_keys(len(ACTORS))
        admin_wallet = Wallet(chain, Account.from_key(keys[0]))
        self.deployment: Deployment = deploy(admin_wallet, PARAMS)
        d = self.deployment
        self.actors: dict[str, Actor] = {}
        for name, key in zip(ACTORS, keys, strict=True):
            wallet = admin_wallet if name == "admin" else Wallet(chain, Account.from_key(key))
            self.actors[name] = Actor(
                name,
                wallet,
                ModelRegistryClient(chain, d.model_registry, wallet),
                NodeRegistryClient(chain, d.node_registry, wallet),
                JobBoardClient(chain, d.job_board, wallet),
                ChallengesClient(chain, d.challenges, wallet),
            )
        self.registry = self.admin.models.contract
        self.node_registry = self.admin.nodes.contract
        self.board = self.admin.jobs.contract
        self.challenges = self.admin.challenges.contract
        self._base_state()

    def _base_state(self) -> None:
        owner = self.owner.models
        owner.create_model(PUBLIC)
        owner.create_model(GATED, Access.ALLOWLIST)
        owner.create_model(PAID, Access.PAID, PRICE, PERIOD)
        for name in (PUBLIC, GATED, PAID):
            owner.register_version(name, V1, content(name), sha(f"manifest:{name}"), None, LICENSE)
        for i, name in enumerate(NODES, start=1):
            self.actors[name].nodes.register(
                f"http://127.0.0.1:{9000 + i}", bytes([2]) * 33, NODE_STAKE
            )

    # --- actors by name -----------------------------------------------------------------------

    def __getattr__(self, name: str) -> Actor:
        actors = self.__dict__.get("actors", {})
        if name in actors:
            return actors[name]
        raise AttributeError(name)

    # --- isolation and time -------------------------------------------------------------------

    def snapshot(self) -> Any:
        """Snapshot the chain; :meth:`restore` returns to it."""
        return self.chain.snapshot()

    def restore(self, snapshot: Any) -> None:
        """Revert the chain to ``snapshot`` and make every wallet re-read its nonce."""
        self.chain.revert(snapshot)
        for actor in self.actors.values():
            actor.wallet.resync_nonce()

    @contextmanager
    def isolated(self) -> Iterator[World]:
        """Run a block against a snapshot of the chain, reverted afterwards."""
        snapshot = self.snapshot()
        try:
            yield self
        finally:
            self.restore(snapshot)

    def now(self) -> int:
        """Timestamp of the latest block."""
        return self.chain.timestamp()

    def warp(self, timestamp: int) -> None:
        """Mine an empty block at ``timestamp``."""
        self.chain.warp(timestamp)

    def balance(self, address: str) -> int:
        """ETH balance of ``address`` in wei."""
        return int(self.w3.eth.get_balance(self.w3.to_checksum_address(address)))

    def receipt(self, tx_hash: str) -> TxReceipt:
        """The receipt of a mined transaction."""
        return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]

    # --- contract views -------------------------------------------------------------------

    def job(self, job_id: int) -> dict[str, Any]:
        """The raw ``Job`` struct as a dict of its Solidity field names."""
        names = (
            "requester reward versionId inputHash deadline leaseSeconds kind status redundancy "
            "claims commits reveals revealDeadline"
        ).split()
        return dict(zip(names, self.board.functions.getJob(job_id).call(), strict=True))

    def claim_slot(self, job_id: int, slot: int) -> dict[str, Any]:
        """The raw ``Claim`` struct of one slot."""
        names = "node leaseExpiry state codec size commitment digest sha256".split()
        raw = self.board.functions.getClaim(job_id, slot).call()
        return dict(zip(names, raw, strict=True))

    def node(self, name: str) -> Any:
        """The node record of actor ``name``."""
        return self.admin.nodes.get_node(self.actors[name].address)

    def stake(self, name: str) -> int:
        """Stake of actor ``name``."""
        return int(self.node(name).stake_wei)

    def credit(self, contract: Any, address: str) -> int:
        """``withdrawable`` of ``address`` on ``contract``."""
        return int(contract.functions.withdrawable(address).call())

    # --- jobs -----------------------------------------------------------------------------------

    def spec(
        self,
        *,
        kind: JobKind = JobKind.INFER,
        model: str = PUBLIC,
        tag: str = V1,
        deadline_in: int = 3_600,
        lease: int = LEASE,
        k: int = 1,
        output_model: str | None = None,
        seed: str = "input",
    ) -> JobSpec:
        """A job request against version ``tag`` of ``model``, due ``deadline_in`` from now."""
        return JobSpec(
            kind=kind,
            version_id=version_id(model, tag),
            input=content(seed),
            params_hash=sha(f"params:{seed}"),
            deadline=self.now() + deadline_in,
            lease_seconds=lease,
            redundancy=k,
            output_model_id=model_id(output_model) if output_model else b"\x00" * 32,
        )

    def create_job(self, requester: str = "user", reward: int = REWARD, **spec: Any) -> int:
        """Create a job as actor ``requester``; returns its id."""
        return int(self.actors[requester].jobs.create_job(self.spec(**spec), reward).value)

    def claimed_job(self, *nodes: str, requester: str = "user", **spec: Any) -> int:
        """A job of redundancy ``len(nodes)`` claimed by every one of ``nodes``."""
        job_id = self.create_job(requester, k=len(nodes), **spec)
        for name in nodes:
            self.actors[name].jobs.claim(job_id)
        return job_id

    def request(self, spec: JobSpec) -> tuple[Any, ...]:
        """The ``JobRequest`` tuple of ``spec`` for raw contract calls."""
        return spec.request()

    def commit_all(self, job_id: int, outputs: dict[str, Output]) -> dict[str, bytes]:
        """Commit ``outputs[node]`` for each node; returns each node's salt."""
        return {
            name: bytes(self.actors[name].jobs.commit(job_id, out, sha(f"salt:{name}")).value)
            for name, out in outputs.items()
        }


def quick_gas_estimate(state: Any, transaction: Any) -> int:
    """A gas limit that suffices, found in one to three runs of the transaction.

    eth-tester's default estimator binary-searches the minimum down to 21k gas, running each
    transaction ~13 times (most of the embedded suite's time). The suites need a limit that is
    enough, not the least one: gas *used* (what receipts and the gas bench report) is the same.
    anvil still answers with exact estimates.
    """
    from eth.vm.spoof import SpoofTransaction

    for gas in (400_000, 2_000_000):
        computation_state = state.snapshot()
        try:
            computation = state.apply_transaction(SpoofTransaction(transaction, gas=gas))
            if not computation.is_error:
                return gas
        finally:
            state.revert(computation_state)
    # Fails even with 2M: let the exact search report (and raise) what the default would.
    from eth.estimators.gas import binary_gas_search_intrinsic_tolerance

    return int(binary_gas_search_intrinsic_tolerance(state, transaction))


def make_world(backend: str) -> tuple[World, Callable[[], None]]:
    """A :class:`World` on ``backend`` (``"eth-tester"`` or ``"anvil"``) and its teardown."""
    if backend == "eth-tester":
        chain = embedded_chain()
        chain.tester.backend.chain.gas_estimator = quick_gas_estimate
        return World(backend, chain), lambda: None
    anvil = Anvil()
    anvil.start()
    try:
        return World(backend, connect(anvil.url)), anvil.stop
    except BaseException:
        anvil.stop()
        raise


def load_test_artifact(name: str) -> artifacts.Artifact:
    """A test-only contract's artifact (``contracts/build/test/<name>.json``)."""
    return artifacts.load(f"test/{name}")


class RpcCalls(Counter[str]):
    """Requests by method name, and every (method, params) in order."""

    def __init__(self) -> None:
        super().__init__()
        self.params: list[tuple[str, Any]] = []

    def clear(self) -> None:
        super().clear()
        self.params.clear()


if __name__ == "__main__":
    with Anvil() as node:
        print(f"anvil at {node.url} (Ctrl-C to stop)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
