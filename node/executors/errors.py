"""Typed errors of running work on this node (the job protocol's own errors — params and input
the caller got wrong — are :mod:`registry.jobs`'s).

They join the one anchorml error family: each derives from :class:`registry.errors.AnchormlError`
and carries a stable ``code``.
"""

from __future__ import annotations

from registry.errors import AnchormlError


class BatcherOverloadedError(AnchormlError):
    """The dynamic batcher's queue is full; the caller should back off (HTTP 503)."""

    code = "overloaded"


class BatcherClosedError(AnchormlError):
    """The dynamic batcher is not running (not started, or stopped)."""

    code = "batcher_closed"
