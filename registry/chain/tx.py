"""Send transactions safely: simulate, sign under a per-account nonce lock, await the receipt.

Steps of :meth:`Wallet.transact` (the call data is ABI-encoded once for all of them):
    1. simulate the call (``eth_call``) — a revert raises its typed exception and costs no gas;
    2. under the account's lock, take the next nonce, estimate gas, sign locally and broadcast
       (fee data is reused for ``fee_ttl_s``: its 2x base-fee headroom outlasts several blocks,
       and a node that still finds the fee too low gets a fresh quote on the retry);
    3. poll for the receipt until ``timeout``; if none appears, rebroadcast the same nonce with a
       higher fee (replacing the dropped or underpriced tx), at most ``max_retries`` times;
    4. a mined tx that ran out of gas because the state changed between the estimate and its
       block (say a reveal that turned out to be the last one, which settles the job) is
       simulated, estimated and sent once more; any other mined-but-failed tx is replayed as a
       call at its block to recover the revert reason;
    5. optionally wait for ``confirmations`` blocks on top.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import PrivateKey
from eth_typing import ChecksumAddress
from web3.exceptions import TransactionNotFound
from web3.types import TxParams, TxReceipt

from registry.chain.connection import Chain
from registry.chain.failures import chain_error, translated
from registry.chain.reverts import as_revert
from registry.errors import ContractRevertError, TransactionError

log = logging.getLogger(__name__)

_LOCKS: dict[tuple[int, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


#: Phrases of a node refusing a transaction whose fee is too low (geth, anvil, erigon, nethermind).
_FEE_TOO_LOW = ("underpriced", "less than block base fee", "fee cap too low", "feecaptoolow")


def _account_lock(chain_id: int, address: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault((chain_id, address), threading.Lock())


def cache_chain_id(chain: Chain) -> None:
    """Let web3 answer ``eth_chainId`` from its own request cache.

    web3's validation middleware asks the node for the chain id before every ``eth_call`` and
    ``eth_estimateGas``: one more round trip per simulation, view call and gas estimate (more
    than half the client-side cost of an ``eth_call`` on a local node). A connection's chain
    id never changes (:attr:`Chain.chain_id` caches it too), so only that answer is cached.
    """
    provider: Any = chain.w3.provider
    if not hasattr(provider, "cacheable_requests"):
        return
    if provider.cache_allowed_requests:  # someone chose what to cache: add ours to it
        provider.cacheable_requests = {*provider.cacheable_requests, "eth_chainId"}
    else:
        provider.cacheable_requests = {"eth_chainId"}
        provider.cache_allowed_requests = True


@dataclass(frozen=True)
class Sent:
    """A mined, successful transaction."""

    tx_hash: str
    receipt: TxReceipt

    @property
    def gas_used(self) -> int:
        """Gas the transaction used."""
        return int(self.receipt["gasUsed"])


class Wallet:
    """Signs and sends transactions for one account.

    Args:
        chain: the connected chain.
        account: the signing account (its key never leaves this object).
        timeout: seconds to wait for a receipt before rebroadcasting.
        max_retries: rebroadcasts with a bumped fee before giving up.
        confirmations: blocks to wait on top of the mined block.
        on_send: optional hook called with each raw tx before broadcast (fault injection in
            tests, metrics in the node).
        fee_ttl_s: seconds a base-fee reading is reused for (0: read it for every tx).
    """

    def __init__(
        self,
        chain: Chain,
        account: LocalAccount,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        confirmations: int = 0,
        on_send: Callable[[TxParams], None] | None = None,
        fee_ttl_s: float = 1.0,
    ) -> None:
        cache_chain_id(chain)
        self.chain = chain
        self.account = account
        self.address: ChecksumAddress = account.address
        # parsed once: signing with raw key bytes derives the public key again for every tx
        self._signing_key = PrivateKey(account.key)
        self.timeout = timeout
        self.max_retries = max_retries
        self.confirmations = confirmations
        self.on_send = on_send
        self._lock = _account_lock(chain.chain_id, self.address)
        self._next_nonce: int | None = None
        self.fee_ttl_s = fee_ttl_s
        self._base_fee: tuple[float, int] | None = None  # (monotonic time read, base fee)
        self.retries = 0  # rebroadcasts done, for metrics

    def call(self, fn: Any, value: int = 0) -> Any:
        """Simulate ``fn`` from this account; raise the typed revert if it would fail."""
        with translated(f"eth_call at {self.chain.url}"):
            return fn.call({"from": self.address, "value": value})

    def transact(self, fn: Any, value: int = 0, gas: int | None = None) -> Sent:
        """Simulate, then send ``fn`` (a bound contract function) with ``value`` wei.

        Raises:
            ContractRevertError: (a typed subclass) the call reverts.
            TransactionError: no receipt after the retry budget.
        """
        request: dict[str, Any] = {
            "from": self.address,
            "to": fn.address,
            "value": value,
            "data": fn._encode_transaction_data(),  # what call/estimate/build would each redo
        }
        for again in (False, True):
            self._simulate(request)
            sent, limit = self._send(request, gas)
            if sent.receipt["status"] == 1 or gas is not None or again:
                break
            if int(sent.receipt["gasUsed"]) < limit:
                break  # a revert, not exhaustion: _check_status names it
            log.info(
                "transaction %s ran out of gas (the state changed after the estimate); "
                "simulating and sending it again",
                sent.tx_hash,
            )
        self._check_status(fn, value, sent)
        self._await_confirmations(sent)
        return sent

    def _send(self, request: dict[str, Any], gas: int | None) -> tuple[Sent, int]:
        """Under the account's lock: nonce, gas, fees, sign, broadcast until mined; returns the
        mined transaction and its gas limit."""
        with self._lock:
            for resync in (False, True):
                nonce = self._take_nonce()
                try:
                    tx = {**request, "nonce": nonce, "chainId": self.chain.chain_id}
                    tx["gas"] = gas or self._estimate(request)
                    tx.update(self._fees())
                    return self._broadcast_until_mined(tx), int(tx["gas"])
                except _NonceMismatch:
                    # our local nonce ran ahead of the chain (a reorg dropped our txs): resync once
                    self._next_nonce = None
                    if resync:
                        raise TransactionError(
                            f"nonce {nonce} rejected twice by the chain"
                        ) from None
                except BaseException:
                    self._next_nonce = None  # resync from the chain next time
                    raise
        raise AssertionError("unreachable")

    def deploy(self, contract: Any, *args: Any) -> Sent:
        """Deploy ``contract`` (a web3 contract factory) with constructor ``args``."""
        ctor = contract.constructor(*args)
        with self._lock:
            nonce = self._take_nonce()
            try:
                with translated(f"deployment estimate at {self.chain.url}"):
                    gas = int(ctor.estimate_gas({"from": self.address}) * 1.2)
                    tx = ctor.build_transaction(
                        {
                            "from": self.address,
                            "nonce": nonce,
                            "gas": gas,
                            "chainId": self.chain.chain_id,
                            **self._fees(),
                        }
                    )
            except BaseException:
                self._next_nonce = None
                raise
            sent = self._broadcast_until_mined(tx)
        if sent.receipt["status"] != 1:
            raise TransactionError(f"deployment tx {sent.tx_hash} failed")
        self._await_confirmations(sent)
        return sent

    def resync_nonce(self) -> None:
        """Forget the locally tracked nonce; the next send reads it from the chain again.

        Call it after the chain's history changed under the wallet (a reorg, or a dev chain
        reverted to a snapshot): the tracked nonce only grows, so it would otherwise stay ahead
        of the chain and every later transaction would wait forever in the mempool.
        """
        with self._lock:
            self._next_nonce = None

    # --- internals ---------------------------------------------------------------------------

    def _take_nonce(self) -> int:
        with translated(f"eth_getTransactionCount at {self.chain.url}"):
            chain_nonce = int(self.chain.w3.eth.get_transaction_count(self.address, "pending"))
        nonce = max(chain_nonce, self._next_nonce or 0)
        self._next_nonce = nonce + 1
        return nonce

    def _simulate(self, request: dict[str, Any]) -> None:
        """``eth_call`` of an encoded request; raise the typed revert if it would fail."""
        with translated(f"eth_call at {self.chain.url}"):
            self.chain.w3.eth.call(request)  # type: ignore[arg-type]

    def _estimate(self, request: dict[str, Any]) -> int:
        with translated(f"eth_estimateGas at {self.chain.url}"):
            estimate = int(self.chain.w3.eth.estimate_gas(request))  # type: ignore[arg-type]
        return estimate + estimate // 5 + 10_000

    def max_fee_per_gas(self) -> int:
        """The most a transaction sent now pays per gas (before any fee bump): what a caller
        budgeting gas must reserve."""
        return self._fees()["maxFeePerGas"]

    def _fees(self, bump: int = 0) -> dict[str, int]:
        """EIP-1559 fees: twice the base fee plus the tip, doubled per ``bump``.

        The base fee is read afresh for a rebroadcast (``bump``) and otherwise at most every
        ``fee_ttl_s`` seconds: it moves by at most 12.5 % a block, so the 2x headroom covers
        several blocks, and a node that still refuses the fee makes the sender re-quote.
        """
        now = time.monotonic()
        cached = self._base_fee
        if bump or cached is None or now - cached[0] >= self.fee_ttl_s:
            with translated(f"eth_getBlockByNumber(latest) at {self.chain.url}"):
                block = self.chain.w3.eth.get_block("latest")
            cached = self._base_fee = (now, int(block.get("baseFeePerGas", 0) or 0))
        base = cached[1]
        tip = 10**9 * (2**bump)
        return {"maxFeePerGas": 2 * base * (2**bump) + tip, "maxPriorityFeePerGas": tip}

    def _broadcast_until_mined(self, tx: dict[str, Any]) -> Sent:
        w3 = self.chain.w3
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.retries += 1
                tx = {**tx, **self._fees(bump=attempt)}
                log.info(
                    "rebroadcasting nonce %s with a higher fee (attempt %s)", tx["nonce"], attempt
                )
            signed = Account.sign_transaction(tx, self._signing_key)
            if self.on_send is not None:
                self.on_send(tx)  # type: ignore[arg-type]
            try:
                tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
            except Exception as exc:
                message = str(exc).lower()
                if "already known" in message or "nonce too low" in message:
                    tx_hash = signed.hash  # an earlier broadcast of this nonce is in flight
                elif any(phrase in message for phrase in _FEE_TOO_LOW):
                    self._base_fee = None  # the next attempt quotes afresh, with a bump
                    continue
                elif "nonce" in message:
                    raise _NonceMismatch(message) from None
                else:
                    raise chain_error(exc, f"eth_sendRawTransaction at {self.chain.url}") from exc
            receipt = self._poll_receipt(
                tx_hash.to_0x_hex() if hasattr(tx_hash, "to_0x_hex") else str(tx_hash)
            )
            if receipt is not None:
                return Sent(tx_hash=receipt["transactionHash"].to_0x_hex(), receipt=receipt)
        self._next_nonce = None
        raise TransactionError(
            f"transaction with nonce {tx['nonce']} not mined after {self.max_retries} rebroadcasts"
        )

    def _poll_receipt(self, tx_hash: str) -> TxReceipt | None:
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                return self.chain.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                pass
            except Exception as exc:  # a flaky endpoint must not lose track of a sent tx
                log.info("receipt poll for %s failed (%s); polling on", tx_hash, type(exc).__name__)
            if time.monotonic() >= deadline:
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _check_status(self, fn: Any, value: int, sent: Sent) -> None:
        if sent.receipt["status"] == 1:
            return
        block = sent.receipt["blockNumber"]
        try:
            fn.call({"from": self.address, "value": value}, block_identifier=block - 1)
        except Exception as exc:
            revert = as_revert(exc)
            if revert is not None:
                raise revert from None
        raise ContractRevertError(f"transaction {sent.tx_hash} reverted on chain")

    def _await_confirmations(self, sent: Sent) -> None:
        if self.confirmations <= 0:
            return
        target = int(sent.receipt["blockNumber"]) + self.confirmations
        deadline = time.monotonic() + self.timeout
        while self.chain.head() < target:
            if time.monotonic() >= deadline:
                raise TransactionError(
                    f"{sent.tx_hash}: no {self.confirmations} confirmations in time"
                )
            time.sleep(0.1)


class _NonceMismatch(Exception):
    """The chain refused the nonce as too high / unexpected."""
