"""What every contract client shares: binding to a deployed contract, reads, and sends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3.logs import DISCARD

from registry.chain import artifacts
from registry.chain.connection import Chain
from registry.chain.events import EventScanner
from registry.chain.failures import translated
from registry.chain.tx import Sent, Wallet, cache_chain_id
from registry.errors import ConfigError, RpcUnavailableError

CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70


@dataclass(frozen=True)
class ContentRef:
    """A CIDv1 with a sha2-256 multihash, as the contracts store it: codec + 32-byte digest."""

    codec: int
    digest: bytes

    @classmethod
    def from_cid(cls, cid: str) -> ContentRef:
        """Parse a CID string.

        Raises:
            InvalidCIDError: it does not parse, or is not a sha2-256 CID the contracts can hold.
        """
        from registry.errors import InvalidCIDError
        from registry.store.cid import CID

        parsed = CID.parse(cid).to_v1()
        if parsed.hash_code != 0x12 or parsed.codec not in (CODEC_RAW, CODEC_DAG_PB):
            raise InvalidCIDError(f"CID {cid} is not a raw or dag-pb sha2-256 CID")
        return cls(codec=parsed.codec, digest=parsed.digest)

    def to_cid(self) -> str:
        """The base32 CIDv1 text form."""
        from registry.store.cid import CID

        return str(CID.from_digest(self.codec, self.digest))


@dataclass(frozen=True)
class TxResult:
    """Outcome of a state-changing call."""

    tx_hash: str
    gas_used: int
    block_number: int
    value: Any = None


class ContractClient:
    """Base of the typed clients.

    Args:
        chain: the connected chain.
        address: the deployed contract's address.
        wallet: signer for state-changing calls (None for a read-only client).
        from_block: first block event scans look at (the deployment's block).
    """

    contract_name = ""

    def __init__(
        self, chain: Chain, address: str, wallet: Wallet | None = None, *, from_block: int = 0
    ) -> None:
        self.chain = chain
        self.wallet = wallet
        self.from_block = from_block  # event scans start here (the deploy block)
        cache_chain_id(chain)  # every view call would otherwise cost an eth_chainId round trip
        self.contract = chain.w3.eth.contract(
            address=chain.w3.to_checksum_address(address),
            abi=artifacts.load(self.contract_name).abi,
        )
        self._scanners: dict[str, EventScanner] = {}

    @property
    def address(self) -> str:
        """The contract address."""
        return str(self.contract.address)

    def _from(self, from_block: int | None) -> int:
        return self.from_block if from_block is None else from_block

    def _read(self, fn: Any) -> Any:
        with translated(f"call to {self.chain.url}"):
            return fn.call()

    def _events(self, name: str) -> EventScanner:
        """The scanner of this contract's ``name`` events (built once: it hashes the ABI)."""
        scanner = self._scanners.get(name)
        if scanner is None:
            scanner = self._scanners[name] = EventScanner(self.chain, [self], [name])
        return scanner

    def _send(self, fn: Any, value: int = 0) -> Sent:
        if self.wallet is None:
            raise ConfigError("this operation signs a transaction: set ANCHORML_PRIVATE_KEY")
        return self.wallet.transact(fn, value)

    def _result(self, sent: Sent, value: Any = None) -> TxResult:
        return TxResult(
            tx_hash=sent.tx_hash,
            gas_used=sent.gas_used,
            block_number=int(sent.receipt["blockNumber"]),
            value=value,
        )

    def _event_args(self, sent: Sent, event: str) -> dict[str, Any]:
        """Arguments of the first ``event`` the transaction emitted from this contract."""
        logs = getattr(self.contract.events, event)().process_receipt(sent.receipt, errors=DISCARD)
        if not logs:
            raise RpcUnavailableError(f"transaction {sent.tx_hash} emitted no {event}")
        return dict(logs[0]["args"])

    def withdrawable(self, account: str) -> int:
        """Wei ``account`` can withdraw from this contract."""
        return int(self._read(self.contract.functions.withdrawable(account)))

    def withdraw(self) -> TxResult:
        """Withdraw everything credited to the wallet's account."""
        return self._result(self._send(self.contract.functions.withdraw()))

    def pause(self) -> TxResult:
        """Pause the contract (pauser role)."""
        return self._result(self._send(self.contract.functions.pause()))

    def unpause(self) -> TxResult:
        """Unpause the contract (pauser role)."""
        return self._result(self._send(self.contract.functions.unpause()))

    def paused(self) -> bool:
        """Whether the contract is paused."""
        return bool(self._read(self.contract.functions.paused()))
