"""Dependency injection in one place: the gateway's components and the per-request dependencies.

:class:`Gateway` holds every long-lived component (built once by :func:`build`, stored on
``app.state.gateway``); routes receive it and the caller through the ``Depends`` helpers below,
so tests can build the app around any SDK handle.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from api.gateway.auth import Caller, RateLimiter, identify
from api.gateway.config import GatewayConfig
from api.gateway.index import RegistryIndex
from api.gateway.metrics import GatewayMetrics
from api.gateway.onchain import JobTracker, OnchainRunner
from api.gateway.spotcheck import SpotChecker
from api.gateway.store import CountingStore, normalize, tree_cids
from api.gateway.upstream import PoolSettings, WorkerPool
from api.gateway.watcher import ChainWatcher
from node.serving import (
    Catalog,
    InferenceRuntime,
    Limits,
    Notary,
    OpenAIService,
    RuntimeConfig,
    Target,
)
from registry.chain.connection import load_account
from registry.clients import Access
from registry.model.package import ModelCache
from registry.receipts import Domain, Signer, receipt_domain
from registry.sdk import Anchorml

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    """The gateway's long-lived components.

    ``signer`` is the gateway's own key (:func:`gateway_signer`): it signs the receipts of
    in-process answers (through ``service``'s notary) and the grants the gateway gives workers;
    ``domain`` is the EIP-712 domain both are signed and checked in
    (:func:`registry.receipts.receipt_domain`). Without a key ``signer`` is None and in-process
    answers carry no receipt.
    """

    config: GatewayConfig
    sdk: Anchorml
    metrics: GatewayMetrics
    store: CountingStore
    catalog: Catalog
    limiter: RateLimiter
    runtime: InferenceRuntime
    service: OpenAIService
    pool: WorkerPool
    index: RegistryIndex
    watcher: ChainWatcher
    tracker: JobTracker
    onchain: OnchainRunner
    signer: Signer | None
    domain: Domain
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    spotcheck: SpotChecker = field(init=False)
    _gated_cids: set[str] | None = None
    _generation: int = 0

    def on_change(self, views: set[str]) -> None:
        """Invalidate what the chain's events made stale (called by the watcher)."""
        if "models" in views or "access" in views:
            self.catalog.invalidate(models="models" in views, access="access" in views)
            self._gated_cids = None
            self._generation += 1
        if "nodes" in views:
            self.pool.invalidate()

    def refresh_caches(self) -> None:
        """Reload the chain answers requests use just before they expire (each watcher tick), so
        a refresh is not started by — and run beside — the request that finds an answer stale
        (see :class:`node.serving.AsyncCache`)."""
        ahead = 2 * self.config.watch_interval_s
        self.catalog.refresh_expiring(ahead)
        self.pool.refresh_expiring(ahead)

    async def authorize(self, ref: str, caller: Caller) -> Target:
        """Resolve ``ref`` and check the caller may use it (no inference, no fetch before)."""
        target = await self.catalog.resolve(ref)
        await self.catalog.authorize(target, caller.claims)
        return target

    async def gated_cids(self) -> set[str]:
        """CIDs found only under gated models' versions (rebuilt after model events).

        Content addressing means a gated file that is byte-identical to a public one has the
        same CID; such content is public anyway and stays readable.
        """
        if self._gated_cids is None:
            generation = self._generation
            trees: list[tuple[str, bool]] = []  # (root CID, gated), snapshot taken on the loop
            for version in self.index.versions.values():
                model = self.index.models.get(version.model_id)
                if model is not None and (model.access != Access.PUBLIC or not version.revoked):
                    trees.append((version.cid, model.access != Access.PUBLIC))
            found = await asyncio.to_thread(_gated_only, self.store, trees)
            if generation == self._generation:
                self._gated_cids = found
            return found
        return self._gated_cids


def _gated_only(store: CountingStore, trees: list[tuple[str, bool]]) -> set[str]:
    gated: set[str] = set()
    public: set[str] = set()
    for root, is_gated in trees:
        (gated if is_gated else public).update(tree_cids(store, root))
    return normalize(gated) - normalize(public)


def gateway_signer(config: GatewayConfig, sdk: Anchorml) -> Signer | None:
    """The gateway's signing key: ``key`` or ``key_file`` from its config, else its wallet's
    key, else None.

    Raises:
        ConfigError: an unreadable key file or a malformed key.
    """
    if config.key is not None or config.key_file is not None:
        secret = config.key.get_secret_value() if config.key is not None else None
        account = load_account(secret, str(config.key_file) if config.key_file else None)
        return Signer(bytes(account.key))
    if sdk.wallet is not None:
        return Signer(bytes(sdk.wallet.account.key))
    return None


def build(config: GatewayConfig, sdk: Anchorml, metrics: GatewayMetrics | None = None) -> Gateway:
    """Wire the components around a connected SDK handle."""
    metrics = metrics or GatewayMetrics()
    store = CountingStore(sdk.store, on_read=metrics.store_reads.inc)
    cache = ModelCache(sdk.settings.cache_dir, store)
    runtime = InferenceRuntime(
        cache,
        RuntimeConfig(
            max_loaded=config.max_loaded_models,
            batch_size=config.batch_size,
            batch_wait_ms=config.batch_wait_ms,
            generation_slots=config.generation_slots,
        ),
        metrics.serving,
    )
    limits = Limits(
        max_tokens_cap=config.max_tokens_cap, default_max_tokens=config.default_max_tokens
    )
    catalog = Catalog(
        sdk.models,
        ttl_s=config.cache_ttl_s,
        access_ttl_s=config.access_cache_ttl_s,
        max_token_ttl_s=config.max_token_ttl_s,
    )
    index = RegistryIndex()
    signer, domain = gateway_signer(config, sdk), receipt_domain(sdk.deployment)
    pool = WorkerPool(
        sdk.nodes, metrics, index.serving, domain,
        PoolSettings(
            ttl_s=config.cache_ttl_s,
            timeout_s=config.worker_timeout_s,
            backoff_s=config.worker_backoff_s,
            allow_private=config.allow_private_workers,
            max_requests=config.worker_max_requests,
            max_streams=config.worker_max_streams,
            max_stream_s=config.worker_max_stream_s,
            grant_ttl_s=config.grant_ttl_s,
            receipt_skew_s=config.receipt_skew_s,
        ),
        signer=signer, may_serve=sdk.models.may_serve,
    )  # fmt: skip
    tracker = JobTracker(sdk)
    notary = Notary(signer, domain) if signer is not None and config.receipts else None
    if notary is None and config.inprocess:
        why = "receipts are off" if signer is not None else "no key (ANCHORML_GATEWAY_KEY)"
        log.warning("in-process answers carry no receipt: %s", why)
    gateway = Gateway(
        config=config,
        sdk=sdk,
        metrics=metrics,
        store=store,
        catalog=catalog,
        limiter=RateLimiter(config.rate_limit_per_s, config.rate_limit_burst),
        runtime=runtime,
        service=OpenAIService(runtime, limits, notary),
        pool=pool,
        index=index,
        watcher=ChainWatcher(sdk, index, lambda _views: None, interval_s=config.watch_interval_s),
        tracker=tracker,
        onchain=OnchainRunner(sdk, store, tracker, config, metrics),
        signer=signer,
        domain=domain,
    )
    gateway.spotcheck = SpotChecker(gateway, config.spot_check_fraction)
    gateway.watcher.on_change = gateway.on_change
    gateway.watcher.on_tick = gateway.refresh_caches
    return gateway


# --- request dependencies ----------------------------------------------------------------------


# Dependencies are ``async`` so that FastAPI runs them on the event loop: a sync dependency
# costs a round trip through the thread pool on every request.


async def get_gateway(request: Request) -> Gateway:
    """The app's gateway components."""
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def get_caller(request: Request, gateway: GatewayDep) -> Caller:
    """The caller (401 for a malformed, forged or expired anchorml token)."""
    return identify(gateway.catalog, request)


async def get_limited_caller(
    caller: Annotated[Caller, Depends(get_caller)], gateway: GatewayDep
) -> Caller:
    """The caller, after spending one request of its rate limit (429 when exhausted)."""
    gateway.limiter.take(caller.key)
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]
LimitedCallerDep = Annotated[Caller, Depends(get_limited_caller)]


async def fresh_index(gateway: GatewayDep) -> Gateway:
    """The gateway, with its event index caught up with the chain (for browsing endpoints)."""
    await gateway.watcher.catch_up()
    return gateway


FreshGatewayDep = Annotated[Gateway, Depends(fresh_index)]
