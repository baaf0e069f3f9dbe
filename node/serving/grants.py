"""The worker's check of a gateway's per-request grant (``anchorml-grant``).

A gateway never forwards its caller's credentials: it authorizes the caller itself and sends the
worker a grant, signed with its own key, for *this* worker, *this* version and *this* request
(the hash of the canonical request), valid a few seconds. The worker accepts a grant only from a
gateway it trusts (``trusted_gateways`` in its config), and each grant once: a grant seen before
is refused until it expires, so a captured one cannot be replayed.

:func:`receipt_domain` is the EIP-712 domain of a deployment's receipts and grants, which the
gateway and the worker must agree on.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from eth_utils import to_checksum_address

from registry.chain.deployment import Deployment
from registry.receipts import Domain, GrantError, SignedGrant

#: Longest grant lifetime accepted: a grant valid for longer is refused (it would be replayable
#: for longer than the seen-set is meant to hold, and no gateway needs it).
MAX_GRANT_TTL_S = 300


def receipt_domain(deployment: Deployment) -> Domain:
    """The domain of ``deployment``'s receipts and grants: its chain and its Challenges contract
    (its NodeRegistry while a deployment has no Challenges contract)."""
    contract = getattr(deployment, "challenges", None) or deployment.node_registry
    return Domain(deployment.chain_id, to_checksum_address(contract))


def same_domain(a: Domain, b: Domain) -> bool:
    """Whether two domains are one (addresses compared whatever their letter case)."""
    return a.chain_id == b.chain_id and a.verifying_contract.lower() == b.verifying_contract.lower()


class GrantChecker:
    """Checks grants addressed to ``worker`` from the ``gateways`` it trusts.

    Args:
        domain: the deployment's receipt domain.
        worker: this node's address.
        gateways: the gateway signing addresses this node trusts.
    """

    def __init__(self, domain: Domain, worker: str, gateways: Iterable[str]) -> None:
        self.domain = domain
        self.worker = to_checksum_address(worker)
        self.gateways = frozenset(to_checksum_address(g) for g in gateways)
        self._seen: dict[bytes, int] = {}  # grant digest -> expires_at
        self._next_prune = 0.0

    def check(
        self, header: str, version_id: bytes, request_hash: bytes, now: float | None = None
    ) -> SignedGrant:
        """Accept the grant in ``header`` for a request with this version and hash.

        Raises:
            GrantError: naming what is wrong (malformed, another domain, an untrusted signer,
                another worker, version or request, expired, too long-lived, or replayed).
        """
        if not self.gateways:
            raise GrantError("this worker trusts no gateway")
        signed = SignedGrant.from_header(header)
        grant = signed.grant
        if not same_domain(signed.domain, self.domain):
            raise GrantError("the grant is for another chain or contract")
        signer = signed.recover()
        if signer != grant.gateway or signer not in self.gateways:
            raise GrantError(f"the grant is signed by {signer}, not a trusted gateway")
        if grant.worker != self.worker:
            raise GrantError("the grant is for another worker")
        if grant.version_id != version_id:
            raise GrantError("the grant is for another model version")
        if grant.request_hash != request_hash:
            raise GrantError("the grant is for another request")
        clock = time.time() if now is None else now
        if grant.expires_at <= clock:
            raise GrantError("the grant has expired")
        if grant.expires_at > clock + MAX_GRANT_TTL_S:
            raise GrantError("the grant is valid for too long")
        self._forget(clock)
        digest = grant.digest(self.domain)
        if digest in self._seen:
            raise GrantError("the grant was used before")
        self._seen[digest] = grant.expires_at
        return signed

    def _forget(self, now: float) -> None:
        """Drop the grants that expired (refused as expired from then on), once a second."""
        if now >= self._next_prune:
            self._seen = {d: t for d, t in self._seen.items() if t > now}
            self._next_prune = now + 1.0
