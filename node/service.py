"""One lifecycle for every long-lived part of the node (listener, processor, HTTP server, …).

Each :class:`Service` has ``setup`` / ``run`` / ``stop``. :func:`run_services` sets all up, runs
them concurrently and waits with FIRST_EXCEPTION: when one crashes (or a stop is requested) the
others are stopped and awaited, and the crash is re-raised so the process exits non-zero.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod

log = logging.getLogger(__name__)


class Service(ABC):
    """A long-lived component of the node."""

    name = "service"

    def __init__(self) -> None:
        self.stopping = asyncio.Event()

    async def setup(self) -> None:  # noqa: B027 - optional hook
        """Prepare before any service runs (may raise to abort start-up)."""

    @abstractmethod
    async def run(self) -> None:
        """Run until :attr:`stopping` is set (return) or a fatal error (raise)."""

    async def stop(self) -> None:
        """Ask the service to finish; ``run`` should return soon after."""
        self.stopping.set()

    async def sleep(self, seconds: float) -> None:
        """Sleep, waking early when stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass


async def run_services(services: list[Service], stop: asyncio.Event, grace_s: float = 60.0) -> None:
    """Run ``services`` until ``stop`` is set or one of them fails.

    Raises:
        The first service's exception, after every service was stopped.
    """
    for service in services:
        await service.setup()
        log.info("%s ready", service.name)
    tasks = {asyncio.create_task(s.run(), name=s.name): s for s in services}
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    failure: BaseException | None = None
    for task in done:
        if task is not stopper and task.exception() is not None:
            failure = task.exception()
            log.error("%s crashed: %s", task.get_name(), failure)
        elif task is not stopper:
            log.warning("%s returned early", task.get_name())
    for service in services:
        await service.stop()
    pending = [t for t in tasks if not t.done()]
    if pending:
        _, still = await asyncio.wait(pending, timeout=grace_s)
        for task in still:
            task.cancel()
        await asyncio.gather(*still, return_exceptions=True)
    stopper.cancel()
    for task in tasks:
        if (
            task.done()
            and not task.cancelled()
            and task.exception() is not None
            and failure is None
        ):
            failure = task.exception()
    if failure is not None:
        raise failure
