"""Start a worker node: connect, register and stake, then run listener, processor and HTTP
server under one lifecycle until SIGTERM/SIGINT (clean stop, exit 0) or a crash (exit 1)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

from node.config import NodeConfig
from node.listener import Listener
from node.metrics import NodeMetrics
from node.policy import JobPolicy
from node.processor import Processor, Served
from node.server import HttpServer, create_app
from node.service import Service, run_services
from node.state import NodeState
from registry.chain.events import ChainEvent
from registry.chain.tx import Wallet
from registry.clients.nodes import ensure_registered
from registry.errors import ModelRevokedError
from registry.model.package import ModelCache
from registry.sdk import Anchorml

log = logging.getLogger(__name__)


class Node:
    """A configured worker node (built by :meth:`create`, run by :meth:`run`)."""

    def __init__(self, config: NodeConfig, sdk: Anchorml) -> None:
        self.config = config
        self.sdk = sdk
        self.metrics = NodeMetrics()
        self.state = NodeState(config.state_dir / "state.sqlite")
        self.cache = ModelCache(
            config.settings.cache_dir, sdk.store, max_bytes=config.cache_max_bytes
        )
        self.served = Served()
        self.health: dict[str, Any] = {"name": config.name}
        self.events: asyncio.Queue[ChainEvent] = asyncio.Queue(maxsize=10_000)
        self.stop_event = asyncio.Event()
        self.runtime: Any = None

    @classmethod
    def create(cls, config: NodeConfig) -> Node:
        """Connect to the chain and store the config names."""
        sdk = Anchorml.from_settings(config.settings)
        assert sdk.wallet is not None  # the config validator requires a key
        sdk.wallet = Wallet(
            sdk.chain,
            sdk.wallet.account,
            timeout=config.tx_timeout_s,
            max_retries=config.max_tx_retries,
            confirmations=config.confirmations,
        )
        return cls(config, sdk)

    def resolve_served(self) -> None:
        """Resolve and fetch (verified) every served version.

        ``serves`` entries: ``name@version`` or ``name@alias`` (that version), ``name@*`` (every
        version of the model, present and future) or ``*`` (every model — devnets).
        """
        from registry.clients.models import model_id

        for ref in self.config.serves:
            if ref == "*":
                self.served.everything = True
                continue
            name, _, tag = ref.partition("@")
            if tag == "*":
                self.sdk.models.get_model(name)  # must exist
                self.served.models.add(model_id(name))
                versions = [v for v in self.sdk.models.list_versions(name) if not v.revoked]
            else:
                version = self.sdk.models.resolve(ref)
                if version.revoked:
                    raise ModelRevokedError(f"{ref} is revoked: remove it from `serves`")
                versions = [version]
            for version in versions:
                self.cache.ensure(version)
                self.served.versions[version.version_id] = version
                log.info("serving %s@%s (%s)", name, version.tag, version.cid)

    def register(self, endpoint: str) -> None:
        """Stake and register on first start; declare the served versions."""
        assert self.sdk.wallet is not None
        account = self.sdk.wallet.account
        public_key = bytes(account._key_obj.public_key.to_compressed_bytes())
        ensure_registered(self.sdk.nodes, endpoint, public_key)
        missing = [
            vid for vid in self.served.versions if not self.sdk.nodes.serves(account.address, vid)
        ]
        if missing:
            self.sdk.nodes.set_serving(missing, True)

    async def run(self) -> None:
        """Run until stopped; raises the failure of any service."""
        await asyncio.to_thread(self.resolve_served)
        mount = self.runtime.mount if self.runtime is not None else None
        http = HttpServer(
            create_app(self.metrics, self.health, mount),
            self.config.http_host,
            self.config.http_port,
        )
        endpoint = self.config.endpoint or http.url
        await asyncio.to_thread(self.register, endpoint)
        listener = Listener(
            self.sdk,
            self.state,
            self.events,
            confirmations=self.config.confirmations,
            poll_interval_s=self.config.poll_interval_s,
            scan_window=self.config.scan_window,
            outage_s=self.config.rpc_outage_s,
            health=self.health,
        )
        processor = Processor(
            self.sdk,
            self.state,
            self.events,
            self.cache,
            self.served,
            self.metrics,
            kinds=self.config.kinds,
            work_dir=self.config.state_dir / "work",
            policy=JobPolicy(
                min_reward_wei=self.config.min_reward_wei,
                margin=self.config.lease_margin,
                min_lease_s=self.config.min_lease_s,
                release_margin_s=self.config.release_margin_s,
                path=self.config.state_dir / "runtimes.json",
            ),
            job_timeout_s=self.config.job_timeout_s,
            outage_s=self.config.rpc_outage_s,
        )
        assert self.sdk.wallet is not None
        self.health.update(
            address=self.sdk.wallet.address,
            endpoint=endpoint,
            serves=[v.cid for v in self.served.versions.values()],
        )
        log.info("node %s up: %s, endpoint %s", self.config.name, self.sdk.wallet.address, endpoint)
        services: list[Service] = [listener, processor, http]
        if isinstance(self.runtime, Service):
            services.append(self.runtime)  # unloads models and stops batchers on shutdown
        await run_services(services, self.stop_event)

    def request_stop(self) -> None:
        """Ask every service to finish (SIGTERM/SIGINT)."""
        self.stop_event.set()


def main(config: NodeConfig) -> NoReturn:
    """Run a node in this process and exit with its status (0 on a requested stop, 1 on error).

    The process exits with ``os._exit`` after cleanup: a job thread that was released on stop
    (torch cannot be interrupted) must not keep the process alive.
    """
    code = 0
    node: Node | None = None
    loop = _event_loop()
    try:
        from node.serving import freeze_gc_after_loads, retain_freed_memory

        retain_freed_memory()
        node = Node.create(config)
        node.runtime = _serving(node)  # direct inference for the served versions
        freeze_gc_after_loads()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, node.request_stop)
        loop.run_until_complete(node.run())
    except Exception as exc:
        log.error("node %s stopped on error: %s", config.name, exc)
        code = 1
    finally:
        if node is not None:
            node.state.close()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where installed (as uvicorn picks for the gateway), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # e.g. Windows: uvloop does not support it
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _serving(node: Node) -> Any:
    """The worker's inference runtime (``node.serving``), mounted on its HTTP endpoint; its
    answers are signed with the node's own key (the one whose public key :meth:`Node.register`
    puts on chain) in the deployment's receipt domain."""
    from node.serving import Notary, WorkerServing
    from registry.receipts import Signer, receipt_domain

    assert node.sdk.wallet is not None  # the config validator requires a key
    signer = Signer(bytes(node.sdk.wallet.account.key))
    return WorkerServing(node, Notary(signer, receipt_domain(node.sdk.deployment)))


def configure_logging(level: str = "INFO", path: Path | None = None) -> None:
    """Structured-ish logs: one line per event with time, level, logger."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if path is not None:
        handlers.append(logging.FileHandler(path))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        handlers=handlers,
        force=True,
    )
    for noisy in ("web3", "urllib3", "httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
