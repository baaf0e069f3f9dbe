"""Errors of the job protocol: a kind, params or input that the job's schema refuses.

They are the caller's fault, so each is also a ``ValueError``: the gateway answers 400 with the
stable ``code``, the CLI prints the message, a worker skips (or fails) the job without retrying.
Errors of running a job (a model that cannot load, a timeout) are not here: they belong to the
worker.
"""

from __future__ import annotations

from typing import Any

from registry.errors import AnchormlError


class JobError(AnchormlError, ValueError):
    """Root of the job protocol's errors."""

    code = "invalid_job"


class InvalidJobKindError(JobError):
    """A name or number that is not a job kind."""

    code = "invalid_job_kind"


class InvalidJobParamsError(JobError):
    """A job's params do not validate against its kind's schema.

    Attributes:
        errors: pydantic's structured error list (``loc``, ``msg``, ``type``), empty if none.
    """

    code = "invalid_job_params"

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors: list[dict[str, Any]] = list(errors or [])


class InvalidJobInputError(JobError):
    """A job's input is missing, too large, malformed, or does not fit the task or the model."""

    code = "invalid_job_input"
