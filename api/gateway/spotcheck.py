"""Spot checks: re-send a fraction of deterministic requests to a second node and compare.

A worker's answer reaches the caller only with a receipt that holds (:mod:`api.gateway.answers`),
so a worker that signs wrong answers with its real key is accountable but not yet caught. For a
configurable fraction (``spot_check_fraction``) of the deterministic, non-streamed requests a
worker answered, :meth:`SpotChecker.consider` starts a background check (the caller's answer is
not delayed):

1. the same request goes to a second eligible node (never the first signer);
2. the two answers are compared with the receipt core's ``outputs_match``; equal: done;
3. otherwise a referee decides which one is wrong: a third node, else this gateway's in-process
   runtime when it runs models (``inprocess``); no referee, or one that agrees with neither:
   counted as undecided, nothing else happens;
4. the losing answer's receipt is challenged on chain (:func:`registry.receipts.challenge.
   file_challenge`: the re-execution input is pinned, the fee escrowed, other nodes re-execute)
   and the pool stops routing to its signer (:meth:`WorkerPool.exclude`, shown in ``/v1/nodes``);
   checks already running when a signer is caught do not challenge it again.

Every outcome is counted in ``anchorml_gateway_spot_checks_total{outcome}``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
from typing import TYPE_CHECKING, Any

from fastapi import Response

from node.serving import Call
from registry.errors import AnchormlError
from registry.receipts import (
    ReceiptError,
    SignedReceipt,
    canonical_request,
    is_deterministic,
    outputs_match,
)
from registry.receipts.challenge import file_challenge

if TYPE_CHECKING:
    from api.gateway.deps import Gateway

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Answer:
    """One signed answer: the body (with ``anchorml``), its receipt and who signed it."""

    body: dict[str, Any]
    signed: SignedReceipt

    @property
    def signer(self) -> str:
        return self.signed.receipt.signer

    @classmethod
    def of(cls, response: Response) -> _Answer | None:
        """The answer in a 200 JSON response with a receipt (None otherwise)."""
        if response.status_code != 200:
            return None
        try:
            body = json.loads(bytes(response.body))
            return cls(body, SignedReceipt.from_json(body["anchorml"]["receipt"]))
        except (ValueError, KeyError, TypeError, ReceiptError):
            return None


class SpotChecker:
    """Runs the spot checks of one gateway (see the module doc).

    Args:
        gateway: the gateway's components (pool, in-process service, SDK, metrics, config).
        fraction: share of eligible answers checked (0: none, 1: all).
        rng: the random source (seeded in tests).
    """

    def __init__(self, gateway: Gateway, fraction: float, rng: random.Random | None = None) -> None:
        self.gateway = gateway
        self.fraction = fraction
        self.rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()

    def consider(self, call: Call, payload: dict[str, Any], answer: Response) -> None:
        """Maybe check ``answer`` (a worker's to ``payload``, just relayed) in the background."""
        if self.fraction <= 0 or payload.get("stream") or self.rng.random() >= self.fraction:
            return
        canonical = canonical_request(call.endpoint, payload, call.target.version.version_id)
        if not is_deterministic(call.endpoint, canonical):
            return
        first = _Answer.of(answer)
        if first is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._check(call, payload, first), name="spot-check"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Cancel the checks still running (the gateway is stopping)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait for the checks started so far (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _count(self, outcome: str) -> None:
        self.gateway.metrics.spot_checks.labels(outcome=outcome).inc()

    async def _check(self, call: Call, payload: dict[str, Any], first: _Answer) -> None:
        try:
            await self._compare(call, payload, first)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a background check must never take the gateway down
            log.exception("spot check of an answer of %s failed", first.signer)
            self._count("failed")

    async def _compare(self, call: Call, payload: dict[str, Any], first: _Answer) -> None:
        second = await self._ask(call, payload, {first.signer})
        if second is None:
            self._count("no_peer")
            return
        endpoint = call.endpoint
        if outputs_match(endpoint, first.body, second.body):
            self._count("agreed")
            return
        self._count("disagreed")
        referee = await self._ask(call, payload, {first.signer, second.signer})
        reference = referee.body if referee is not None else await self._run_here(call)
        if reference is None:
            self._count("undecided")
            log.warning(
                "spot check: %s and %s disagree and nothing can referee", first.signer,
                second.signer,
            )  # fmt: skip
            return
        first_ok = outputs_match(endpoint, reference, first.body)
        second_ok = outputs_match(endpoint, reference, second.body)
        if first_ok == second_ok:
            self._count("undecided")
            return
        loser = second if first_ok else first
        await self._convict(loser)

    async def _ask(self, call: Call, payload: dict[str, Any], avoid: set[str]) -> _Answer | None:
        """The answer of an eligible node other than ``avoid`` (checked by the pool as every
        relayed answer is), or None when there is none."""
        version_id = call.target.version.version_id
        response = await self.gateway.pool.resend(
            call.endpoint, version_id, call.path, payload, avoid=frozenset(avoid)
        )
        return None if response is None else _Answer.of(response)

    async def _run_here(self, call: Call) -> dict[str, Any] | None:
        """The in-process runtime's answer, when this gateway runs models."""
        gateway = self.gateway
        if not gateway.config.inprocess:
            return None
        pinned = dataclasses.replace(call.target, ref=call.target.pinned_ref)
        response = await gateway.service.run(dataclasses.replace(call, target=pinned))
        try:
            body: dict[str, Any] = json.loads(bytes(response.body))
        except ValueError:
            return None
        return body if response.status_code == 200 else None

    async def _convict(self, loser: _Answer) -> None:
        """Challenge the losing receipt on chain and stop routing to its signer."""
        gateway = self.gateway
        if loser.signer in gateway.pool.excluded():
            self._count("repeat")  # caught and challenged already (checks run concurrently)
            return
        gateway.pool.exclude(loser.signer, "a spot check found a wrong answer")
        anchorml = loser.body.get("anchorml", {})
        request = anchorml.get("request") if isinstance(anchorml, dict) else None
        if gateway.sdk.wallet is None:
            log.warning("spot check: cannot challenge %s: the gateway has no key", loser.signer)
            self._count("unchallenged")
            return
        try:
            filed = await asyncio.to_thread(
                file_challenge, gateway.sdk, loser.signed, request, loser.body
            )
        except AnchormlError as exc:
            log.warning("spot check: challenging %s failed: %s", loser.signer, exc.message)
            self._count("unchallenged")
            return
        log.warning(
            "spot check: %s signed a wrong answer: challenge %s (job %s) filed",
            loser.signer, filed.challenge_id, filed.job_id,
        )  # fmt: skip
        self._count("challenged")
