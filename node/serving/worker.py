"""Direct inference on a worker node: the runtime behind ``Node.runtime``.

The worker answers only for the versions it serves (declared on chain with ``setServing``);
anything else is ``model_not_served`` (404), so the gateway's routing and the chain agree. Gated
models need either a grant from a gateway this node trusts (``anchorml-grant``, bound to this
node, the version and the request's hash: :mod:`node.serving.grants`), which the gateway sends in
place of its caller's credentials, or the caller's own bearer token whose address has on-chain
access, exactly as at the gateway, so going around the gateway gains nothing.
"""

from __future__ import annotations

import json
import logging
from functools import cached_property
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request

from node.service import Service
from node.serving.catalog import Catalog, Target
from node.serving.errors import ModelNotServedError
from node.serving.grants import GrantChecker, receipt_domain
from node.serving.handlers import PATHS, OpenAIService
from node.serving.metrics import ServingMetrics
from node.serving.router import add_embeddings_fast_path, create_openai_router, run_here
from node.serving.runtime import InferenceRuntime, RuntimeConfig
from node.serving.schemas import ModelCard
from registry.receipts import GRANT_HEADER, GrantError, ReceiptError, canonical_request
from registry.receipts import request_hash as hash_request

if TYPE_CHECKING:
    from node.main import Node

log = logging.getLogger(__name__)

_ENDPOINTS = {path: endpoint for endpoint, path in PATHS.items()}


class WorkerServing(Service):
    """The worker's serving runtime: mounts the OpenAI routes, keeps the chain answers in use
    fresh, and unloads models on stop.

    Every ``refresh_every_s`` it reloads the resolutions and access answers that requests used
    (loaded for them, or read) and that expire within two ticks
    (:meth:`Catalog.refresh_expiring`), as the gateway does on its watcher's tick: otherwise the
    request that finds one stale starts the reload, and that web3.py work holds the GIL beside
    the request's own forward pass.
    """

    name = "serving"
    refresh_every_s = 2.0

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node
        self.catalog = Catalog(node.sdk.models)
        config = RuntimeConfig(
            batch_size=node.config.batch_size, batch_wait_ms=node.config.batch_wait_ms
        )
        self.runtime = InferenceRuntime(node.cache, config, ServingMetrics.for_node(node.metrics))
        self.service = OpenAIService(self.runtime)

    def mount(self, app: FastAPI) -> None:
        """Add the OpenAI-compatible routes for the served versions to the worker's app."""
        router = create_openai_router(
            self.service, self.authorize, run_here,
            list_models=self.list_models, describe_model=self.describe_model,
        )  # fmt: skip
        app.include_router(router)
        add_embeddings_fast_path(app, self.service, self.authorize, run_here)

    @cached_property
    def grants(self) -> GrantChecker:
        """The check of gateways' grants to this node (built on the first gated request)."""
        wallet = self.node.sdk.wallet
        return GrantChecker(
            receipt_domain(self.node.sdk.deployment),
            wallet.address if wallet is not None else "0x" + "00" * 20,
            self.node.config.trusted_gateways,
        )

    async def authorize(self, ref: str, request: Request) -> Target:
        """Resolve ``ref``; refuse versions this node does not serve and callers without access
        (a valid gateway grant for this request, or the caller's own token with access)."""
        grant = request.headers.get(GRANT_HEADER)
        caller = None if grant else self.catalog.caller(request.headers.get("authorization"))
        target = await self._served(ref)
        if target.gated and grant and await self._granted(grant, target, request):
            return target
        if grant:  # a grant that does not hold: the request stands on its own token, if any
            caller = self.catalog.caller(request.headers.get("authorization"))
        await self.catalog.authorize(target, caller)
        return target

    async def _granted(self, header: str, target: Target, request: Request) -> bool:
        """Whether ``header`` is a valid grant for this request (public models need none, so
        only gated ones pay for the check)."""
        endpoint = _ENDPOINTS.get(request.url.path)
        if endpoint is None:
            return False
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                return False
            version = target.version.version_id
            digest = hash_request(canonical_request(endpoint, body, version))
            self.grants.check(header, version, digest)
        except (GrantError, ReceiptError, ValueError) as exc:
            log.info("grant refused: %s", getattr(exc, "message", "the body is not JSON"))
            return False
        return True

    async def _served(self, ref: str) -> Target:
        target = await self.catalog.resolve(ref)
        if self.node.served.get(target.version.version_id) is None:
            raise ModelNotServedError(f"this worker does not serve {ref!r}", param="model")
        return target

    async def describe_model(self, ref: str, request: Request) -> ModelCard:
        """``ref`` resolved, when this node serves its version (404 ``model_not_served``)."""
        del request  # describing a model needs no access, as at the gateway
        target = await self._served(ref)
        return ModelCard(id=target.pinned_ref, owned_by=target.model.owner)

    async def list_models(self, request: Request) -> list[ModelCard]:
        """The configured references whose versions are still served."""
        del request  # the same list for every caller
        cards = []
        for ref in self.node.config.serves:
            try:
                target = await self.catalog.resolve(ref)
            except Exception:  # noqa: BLE001 - revoked or gone: not listed
                continue
            if self.node.served.get(target.version.version_id) is not None:
                cards.append(ModelCard(id=target.pinned_ref, owned_by=target.model.owner))
        return cards

    async def run(self) -> None:
        while not self.stopping.is_set():
            await self.sleep(self.refresh_every_s)
            if not self.stopping.is_set():
                self.catalog.refresh_expiring(2 * self.refresh_every_s)
        await self.runtime.stop()
