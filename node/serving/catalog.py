"""Which model version a request names, and whether its caller may use it — cached.

Resolution (``name``, ``name@tag``, ``name@alias``) and access answers (``hasAccess`` on
ModelRegistry) come from the chain and are cached for a short time; :meth:`Catalog.invalidate`
drops them at once (the gateway calls it when it sees ``VersionRegistered``, ``AliasSet``,
``VersionRevoked``, ``AccessChanged`` or ``AccessPolicySet``). The time limits bound staleness
where no event is emitted: an allowlist grant with an expiry simply runs out. Concurrent misses
share one lookup, and an entry whose time ran out is refreshed in the background while it keeps
answering (see :mod:`node.serving.cache`), so a request never waits on the chain because a
timer expired — only after an invalidating event.

Bearer tokens: a value that is not an anchorml token (``amlt1.…``) is ignored, so OpenAI
clients that insist on some API key work on public models; an anchorml token that is
malformed, forged or expired is refused (401).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from node.serving.cache import AsyncCache, TtlCache
from node.serving.errors import NoAccessError
from registry.auth import (
    PREFIX,
    MissingTokenError,
    TokenClaims,
    TokenExpiredError,
    bearer,
    verify_token,
)
from registry.clients import Access, ModelRecord, ModelRegistryClient, VersionRecord
from registry.errors import AnchormlError, ModelNotFoundError, ModelRevokedError


@dataclass(frozen=True)
class Target:
    """A request's model: the reference as given, the model and the resolved version."""

    ref: str
    model: ModelRecord
    version: VersionRecord

    @property
    def gated(self) -> bool:
        """Whether using it needs on-chain access."""
        return self.model.access != Access.PUBLIC

    @property
    def pinned_ref(self) -> str:
        """``name@tag`` of the resolved version (the reference as given if the tag is unknown)."""
        return f"{self.model.name}@{self.version.tag}" if self.version.tag else self.ref


class Catalog:
    """Cached model resolution and access checks against ModelRegistry.

    Args:
        models: the registry client (read-only is enough).
        ttl_s: how long a resolution stays cached.
        access_ttl_s: how long an access answer stays cached.
        max_token_ttl_s: refuse tokens that live longer than this.
    """

    def __init__(
        self,
        models: ModelRegistryClient,
        *,
        ttl_s: float = 30.0,
        access_ttl_s: float = 10.0,
        max_token_ttl_s: int | None = None,
    ) -> None:
        self.models = models
        self.max_token_ttl_s = max_token_ttl_s
        self._targets: AsyncCache[str, Target | AnchormlError] = AsyncCache(ttl_s)
        self._access: AsyncCache[tuple[bytes, str], bool] = AsyncCache(access_ttl_s)
        self._tokens: TtlCache[str, TokenClaims] = TtlCache(300.0)  # ecrecover once per token
        self.access_checks = 0
        self.denials = 0

    @property
    def resolution_loads(self) -> int:
        """References looked up on the chain so far (misses and refreshes)."""
        return self._targets.loads

    def refresh_expiring(self, within_s: float) -> int:
        """Reload resolutions and access answers in use that expire within ``within_s``, in the
        background (see :mod:`node.serving.cache`); returns how many reloads started."""
        return self._targets.refresh_expiring(within_s) + self._access.refresh_expiring(within_s)

    def invalidate(self, *, models: bool = True, access: bool = True) -> None:
        """Drop cached resolutions and/or access answers."""
        if models:
            self._targets.clear()
        if access:
            self._access.clear()

    # --- resolution ----------------------------------------------------------------------------

    async def resolve(self, ref: str) -> Target:
        """The model and version ``ref`` names.

        Raises:
            ModelNotFoundError: unknown model, version or alias (cached briefly too).
            ModelRevokedError: the version was revoked.
        """
        negative_ttl = min(5.0, self._targets.ttl_s)

        async def load() -> Target | AnchormlError:
            try:
                return await asyncio.to_thread(self._resolve, ref)
            except (ModelNotFoundError, ModelRevokedError) as exc:
                return exc  # cached briefly too: unknown names must not cost a chain call each

        hit = await self._targets.get(
            ref,
            load,
            lambda v: negative_ttl if isinstance(v, AnchormlError) else self._targets.ttl_s,
        )
        if isinstance(hit, AnchormlError):
            raise type(hit)(hit.message)
        return hit

    def _resolve(self, ref: str) -> Target:
        if not ref or ref.count("@") > 1:
            raise ModelNotFoundError(f"model {ref!r} is not a registry name[@version|@alias]")
        name = ref.partition("@")[0]
        model = self.models.get_model(name)
        version = self.models.resolve(ref)
        if version.revoked:
            raise ModelRevokedError(f"{model.name}@{version.tag or version.cid} is revoked")
        return Target(ref, model, version)

    # --- callers and access ---------------------------------------------------------------------

    def caller(self, authorization: str | None) -> TokenClaims | None:
        """The verified caller of a request (None: anonymous).

        Raises:
            AuthError: an anchorml token that is malformed or forged.
            TokenExpiredError: an expired anchorml token.
        """
        try:
            token = bearer(authorization)
        except AnchormlError:
            return None  # not a bearer credential at all: anonymous
        if token is None or not token.startswith(PREFIX + "."):
            return None
        claims = self._tokens.get(token)
        if claims is None:
            claims = verify_token(token, max_ttl_s=self.max_token_ttl_s)
            self._tokens.set(token, claims)
        elif claims.expires_at <= time.time():
            raise TokenExpiredError(
                "bearer token has expired: mint a new one (`anchorml auth token`)"
            )
        return claims

    async def authorize(self, target: Target, caller: TokenClaims | None) -> None:
        """Allow public models to anyone and gated ones to callers with on-chain access.

        Raises:
            MissingTokenError: gated model, no token (401).
            NoAccessError: the caller's address has no access (403).
        """
        if not target.gated:
            return
        if caller is None:
            raise MissingTokenError(
                f"model {target.model.name!r} is gated: send 'Authorization: Bearer <token>' "
                "(mint one with `anchorml auth token`)"
            )
        if not await self.has_access(target.model, caller.address):
            self.denials += 1
            raise NoAccessError(
                f"{caller.address} has no on-chain access to model {target.model.name!r}"
            )

    async def has_access(self, model: ModelRecord, address: str) -> bool:
        """``ModelRegistry.hasAccess`` for ``address``, cached."""
        key = (model.model_id, address)

        async def load() -> bool:
            self.access_checks += 1
            return await asyncio.to_thread(self.models.has_access, model.model_id, address)

        return await self._access.get(key, load)
