"""Connect to a chain: the embedded eth-tester (py-evm, in process) or any EVM JSON-RPC URL.

The embedded chain and anvil share the same funded dev accounts (anvil's well-known
``test test ... junk`` mnemonic), so keys printed by one work on the other. Dev-only controls
(time travel, mining, snapshots) go through JSON-RPC methods both backends answer, so one test
suite drives either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from registry.chain.failures import translated
from registry.errors import ConfigError, RpcUnavailableError

#: anvil's (and hardhat's) default dev mnemonic: well known, never for real funds.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNTS = 10
DEV_BALANCE_WEI = 10_000 * 10**18
EMBEDDED = "embedded"

Account.enable_unaudited_hdwallet_features()


def dev_keys(count: int = DEV_ACCOUNTS) -> list[str]:
    """Private keys (0x-hex) of the funded dev accounts, in anvil's order."""
    return [
        Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key.to_0x_hex()
        for i in range(count)
    ]


@dataclass
class Chain:
    """A connected chain.

    Attributes:
        w3: the web3 instance.
        url: the JSON-RPC URL, or ``"embedded"`` for the in-process eth-tester.
        tester: the eth-tester instance when embedded (for dev-only controls), else None.
    """

    w3: Web3
    url: str
    tester: Any = None
    _chain_id: int | None = field(default=None, repr=False)

    @property
    def embedded(self) -> bool:
        """True for the in-process eth-tester chain."""
        return self.tester is not None

    @property
    def chain_id(self) -> int:
        """The chain id (cached: it never changes for a connection)."""
        if self._chain_id is None:
            with translated(f"eth_chainId at {self.url}"):
                self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """Call a raw JSON-RPC method (e.g. dev controls) and return its result."""
        with translated(f"{method} at {self.url}"):
            response = self.w3.provider.make_request(method, params or [])  # type: ignore[arg-type]
        if "error" in response and response["error"]:
            raise RpcUnavailableError(f"{method} failed: {response['error']}")
        return response.get("result")

    # --- reads (every failure a typed registry error) ------------------------------------------

    def head(self) -> int:
        """Number of the latest block."""
        with translated(f"eth_blockNumber at {self.url}"):
            return int(self.w3.eth.block_number)

    def block_hash(self, number: int) -> str | None:
        """0x-hex hash of block ``number``, or None when the chain has no such block (yet, or
        any more: it got shorter)."""
        from web3.exceptions import BlockNotFound

        with translated(f"eth_getBlockByNumber({number}) at {self.url}"):
            try:
                block = self.w3.eth.get_block(number)
            except BlockNotFound:
                return None
            return str(block["hash"].to_0x_hex())

    def tx_sender(self, tx_hash: str) -> str:
        """Checksummed address that sent transaction ``tx_hash``."""
        with translated(f"eth_getTransactionByHash at {self.url}"):
            return str(self.w3.eth.get_transaction(tx_hash)["from"])  # type: ignore[arg-type]

    def has_code(self, address: str) -> bool:
        """Whether a contract is deployed at ``address``."""
        with translated(f"eth_getCode at {self.url}"):
            return bool(self.w3.eth.get_code(self.w3.to_checksum_address(address)))

    # --- dev-chain controls (eth-tester and anvil) -------------------------------------------

    def timestamp(self) -> int:
        """Timestamp of the latest block."""
        with translated(f"eth_getBlockByNumber(latest) at {self.url}"):
            return int(self.w3.eth.get_block("latest")["timestamp"])

    def set_next_timestamp(self, ts: int) -> None:
        """Make the next mined block carry timestamp ``ts``."""
        if self.embedded:
            self.tester.time_travel(ts)
        else:
            self.rpc("evm_setNextBlockTimestamp", [ts])

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` empty blocks."""
        if self.embedded:
            self.tester.mine_blocks(blocks)
        else:
            for _ in range(blocks):
                self.rpc("evm_mine", [])

    def warp(self, ts: int) -> None:
        """Mine a block at timestamp ``ts`` (so calls and the next tx see that time)."""
        self.set_next_timestamp(ts)
        self.mine()

    def snapshot(self) -> Any:
        """Take a snapshot of the chain state; returns an id for :meth:`revert`."""
        return self.tester.take_snapshot() if self.embedded else self.rpc("evm_snapshot", [])

    def revert(self, snapshot_id: Any) -> None:
        """Return the chain to a snapshot taken with :meth:`snapshot`."""
        if self.embedded:
            self.tester.revert_to_snapshot(snapshot_id)
        else:
            self.rpc("evm_revert", [snapshot_id])


def embedded_chain() -> Chain:
    """Start an in-process eth-tester (py-evm) chain funded like anvil's dev accounts."""
    from eth_tester import EthereumTester, PyEVMBackend

    backend = PyEVMBackend.from_mnemonic(
        DEV_MNEMONIC,
        num_accounts=DEV_ACCOUNTS,
        hd_path="m/44'/60'/0'/0",
        genesis_state_overrides={"balance": DEV_BALANCE_WEI},
        genesis_parameters=PyEVMBackend.generate_genesis_params({"gas_limit": 30_000_000}),
    )
    tester = EthereumTester(backend=backend, auto_mine_transactions=True)
    w3 = Web3(EthereumTesterProvider(tester))
    # A call without "from" makes web3's eth-tester middleware list every account (three
    # eth_accounts round trips, most of a view call's time) to pick the first; pin that one.
    w3.eth.default_account = tester.get_accounts()[0]
    return Chain(w3=w3, url=EMBEDDED, tester=tester)


def connect(url: str, *, timeout: float = 30.0) -> Chain:
    """Connect to ``url``: ``"embedded"`` for a fresh in-process chain, else an HTTP JSON-RPC URL.

    Raises:
        ConfigError: the URL is not http(s) (setting ``ANCHORML_RPC_URL``).
        RpcUnavailableError: nothing answers at the URL.
    """
    if url == EMBEDDED:
        return embedded_chain()
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"RPC URL {url!r} is not an http(s) URL: set ANCHORML_RPC_URL or --rpc "
            "(e.g. http://127.0.0.1:8545)"
        )
    w3 = Web3(
        Web3.HTTPProvider(
            url,
            request_kwargs={"timeout": timeout},
            exception_retry_configuration=_retry_configuration(),
        )
    )
    chain = Chain(w3=w3, url=url)
    try:
        chain.chain_id  # noqa: B018 - probe the endpoint once
    except Exception as exc:  # any transport failure means "unreachable" to the user
        raise RpcUnavailableError(
            f"cannot reach the chain at {url} ({type(exc).__name__}): "
            "start it (`anchorml up`, anvil) or fix ANCHORML_RPC_URL / --rpc"
        ) from None
    return chain


def _retry_configuration() -> Any:
    """Retry transport failures (refused, timeouts, HTTP 429/5xx) with backoff, for reads and for
    ``eth_sendRawTransaction`` (re-sending the same signed tx is harmless: "already known")."""
    import requests
    from web3.providers.rpc.utils import REQUEST_RETRY_ALLOWLIST, ExceptionRetryConfiguration

    return ExceptionRetryConfiguration(
        errors=(requests.ConnectionError, requests.Timeout, requests.HTTPError),
        retries=6,
        backoff_factor=0.05,
        method_allowlist=[
            *REQUEST_RETRY_ALLOWLIST,
            "eth_getLogs",
            "eth_sendRawTransaction",
            "eth_feeHistory",
            "eth_maxPriorityFeePerGas",
        ],
    )


def load_account(private_key: str | None = None, key_file: str | None = None) -> LocalAccount:
    """Load the signing key from a hex string (``ANCHORML_PRIVATE_KEY``) or a key file.

    The key file holds the 0x-hex private key on its first line. The key is never logged.

    Raises:
        ConfigError: no key given, or it is malformed.
    """
    source = "ANCHORML_PRIVATE_KEY"
    if key_file:
        source = f"--key-file {key_file}"
        try:
            with open(key_file) as fh:
                private_key = fh.readline().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read key file {key_file}: {exc.strerror}") from None
    if not private_key:
        raise ConfigError("no signing key: set ANCHORML_PRIVATE_KEY or pass --key-file")
    try:
        account: LocalAccount = Account.from_key(private_key)
    except Exception:  # eth-account raises several types for bad keys; never echo the key
        raise ConfigError(
            f"the private key from {source} is malformed (expected 32 bytes as 0x-hex)"
        ) from None
    return account
