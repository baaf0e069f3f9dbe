"""Keep time moving on an idle dev chain.

eth-tester and anvil (in automine mode) only make a block when a transaction arrives, and
``eth_call`` sees the latest block's timestamp — so on an idle dev chain a lease or deadline never
"passes" for a simulation. Real chains make blocks continuously; this thread mimics that by mining
an empty block whenever none appeared for ``block_time_s``. Dev chains only.
"""

from __future__ import annotations

import logging
import threading
import time

from registry.chain.connection import Chain

log = logging.getLogger(__name__)


class Heartbeat:
    """Mines an empty block when the chain has been idle for ``block_time_s``."""

    def __init__(
        self, chain: Chain, block_time_s: float = 1.0, lock: threading.Lock | None = None
    ) -> None:
        self.chain = chain
        self.block_time_s = block_time_s
        self.lock = lock  # the devserver's lock, so mining never races a request (eth-tester)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chain-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        """Start the thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.block_time_s / 2):
            try:
                if self.lock is not None:
                    with self.lock:
                        self._beat()
                else:
                    self._beat()
            except Exception as exc:  # a dev helper must never take the process down
                log.debug("heartbeat failed: %s", exc)

    def _beat(self) -> None:
        latest = int(self.chain.w3.eth.get_block("latest")["timestamp"])
        if time.time() - latest >= self.block_time_s:
            self.chain.mine()
