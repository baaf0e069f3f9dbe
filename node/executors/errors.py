"""Typed errors of the executors (proposed for ``registry/errors.py`` under a "jobs" subtree).

They join the one anchorml error family: each derives from :class:`registry.errors.AnchormlError`
and carries a stable ``code``; both are also ``ValueError`` (the caller sent something wrong —
the gateway answers 4xx, the worker reports the job as failed-by-input, not retried).
"""

from __future__ import annotations

from typing import Any

from registry.errors import AnchormlError


class InvalidJobParamsError(AnchormlError, ValueError):
    """A job's params do not validate against the executor's schema (or the kind is unknown).

    Attributes:
        errors: pydantic's structured error list (``loc``, ``msg``, ``type``), empty if none.
    """

    code = "invalid_job_params"

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors: list[dict[str, Any]] = list(errors or [])


class InvalidJobInputError(AnchormlError, ValueError):
    """A job's input file is missing, too large, malformed, or does not fit the model."""

    code = "invalid_job_input"
