"""What the gateway may spend from its own wallet for callers: daily budgets, enforced first.

When the gateway sponsors a job (``POST /v1/jobs``, or an inference request with
``"anchorml": {"mode": "onchain"}``) it escrows the reward and pays the gas from its own wallet.
Without a bound, any caller who mints itself a token — a fresh address costs nothing — could make
the gateway escrow rewards that a colluding node then collects. :class:`SponsorBudget` bounds
that spending per caller and in total over a UTC day:

- :meth:`reserve` runs **before anything is uploaded or sent**: it charges the reward plus a gas
  allowance (creating the job and one follow-up transaction — a cancel or an expiry — at the
  allowance's gas price) against both budgets, or refuses with 429 ``sponsor_budget_exceeded``;
- a sponsorship that fails with an error raised before any transaction (a check, an upload) is
  released; any other stays charged (the escrow and gas may have left the wallet; a refund comes
  back later, if at all).

So the wallet moves by at most the total budget per day, whatever the number of callers. The
ledger lives in this process: a restart starts the day's ledger anew, which is why the default
total is small (see :class:`api.gateway.config.GatewayConfig`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from node.serving import ServingError
from registry.errors import ConfigError, StoreError
from registry.jobs import InvalidJobInputError, InvalidJobParamsError

DAY_S = 86_400
#: Errors raised before a job's transaction is sent (checks, uploads): nothing left the wallet.
#: Anything else keeps the reservation — the wallet may have paid.
BEFORE_SENDING: tuple[type[Exception], ...] = (
    InvalidJobParamsError,
    InvalidJobInputError,
    ConfigError,
    StoreError,
    ServingError,
)


class SponsorBudgetExceededError(ServingError):
    """The gateway's daily sponsorship budget (the caller's, or the total) is spent (429)."""

    code = "sponsor_budget_exceeded"


@dataclass
class _Day:
    day: int
    total: int = 0
    by_caller: dict[str, int] = field(default_factory=dict)


class SponsorBudget:
    """Per-caller and total wei the gateway spends on jobs per UTC day.

    Args:
        per_caller_wei: most one caller (address, else client IP) may have sponsored per day.
        total_wei: most all callers together may have sponsored per day.
        clock: seconds since the epoch (tests pass their own).
    """

    def __init__(
        self, per_caller_wei: int, total_wei: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.per_caller_wei = per_caller_wei
        self.total_wei = total_wei
        self.clock = clock
        self._lock = threading.Lock()  # reserve runs on the loop, release in worker threads
        self._day = _Day(self._today())

    def _today(self) -> int:
        return int(self.clock() // DAY_S)

    def _current(self) -> _Day:
        today = self._today()
        if self._day.day != today:
            self._day = _Day(today)
        return self._day

    def spent(self, caller: str | None = None) -> int:
        """Wei charged today, by ``caller`` or in total."""
        with self._lock:
            day = self._current()
            return day.total if caller is None else day.by_caller.get(caller, 0)

    def reserve(self, caller: str, amount: int) -> int:
        """Charge ``amount`` wei to ``caller`` and the total; returns the day it was charged to.

        Raises:
            SponsorBudgetExceededError: either budget would be exceeded (nothing charged).
        """
        with self._lock:
            day = self._current()
            mine = day.by_caller.get(caller, 0)
            if mine + amount > self.per_caller_wei:
                raise SponsorBudgetExceededError(
                    f"this caller's daily budget of {self.per_caller_wei} wei for gateway-paid "
                    "jobs is spent: pay for jobs from your own wallet (`anchorml job submit`) or "
                    "retry tomorrow (UTC)"
                )
            if day.total + amount > self.total_wei:
                raise SponsorBudgetExceededError(
                    "the gateway's daily budget for paid jobs is spent: pay for jobs from your own "
                    "wallet (`anchorml job submit`) or retry tomorrow (UTC)"
                )
            day.by_caller[caller] = mine + amount
            day.total += amount
            return day.day

    def release(self, caller: str, amount: int, day: int) -> None:
        """Give back a reservation whose transaction was never sent."""
        with self._lock:
            current = self._current()
            if current.day != day:
                return  # charged to a day that is over
            current.by_caller[caller] = max(0, current.by_caller.get(caller, 0) - amount)
            current.total = max(0, current.total - amount)

    @contextlib.contextmanager
    def sponsoring(self, caller: str, amount: int) -> Iterator[None]:
        """Reserve ``amount`` for the block; released only when the block fails with an error
        that is raised before any transaction is sent (:data:`BEFORE_SENDING`)."""
        day = self.reserve(caller, amount)
        try:
            yield
        except BEFORE_SENDING:
            self.release(caller, amount, day)
            raise
