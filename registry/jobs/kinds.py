"""The job kinds: one enum, numbered as the JobBoard contract's ``Kind`` enum.

Everything that names a kind (the chain client, the worker's config and executors, the CLI's
``--kind``, the gateway's ``"kind"`` field, metrics labels) goes through :class:`JobKind`. Users
write kinds in lower case (``infer``); the chain stores the number; logs and metrics use the
upper-case name.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from registry.jobs.errors import InvalidJobKindError


class JobKind(enum.IntEnum):
    """Kinds of job (the contract's ``Kind`` enum, same order)."""

    INFER = 0
    TRAIN = 1
    FINETUNE = 2
    EVAL = 3
    COMPRESS = 4

    @property
    def produces_model(self) -> bool:
        """Whether the job's result is a new model version."""
        return self in (JobKind.TRAIN, JobKind.FINETUNE, JobKind.COMPRESS)

    @property
    def label(self) -> str:
        """The name users type (``infer``, ``train``, ...)."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | JobKind) -> JobKind:
        """The kind a user or a config names, by name (any case) or number.

        Raises:
            InvalidJobKindError: no such kind (the message lists the kinds).
        """
        if isinstance(value, JobKind):
            return value
        try:
            return cls(value) if isinstance(value, int) else cls[value.strip().upper()]
        except (KeyError, ValueError):
            raise InvalidJobKindError(
                f"unknown job kind {value!r}; expected one of {', '.join(LABELS)}"
            ) from None


LABELS: tuple[str, ...] = tuple(kind.label for kind in JobKind)


def _validate(value: Any) -> Any:
    # InvalidJobKindError is a ValueError, so pydantic reports it as a validation error
    return JobKind.parse(value) if isinstance(value, str | int) else value


KindName = Annotated[
    JobKind,
    BeforeValidator(_validate),
    PlainSerializer(lambda kind: kind.label, return_type=str),
    WithJsonSchema({"type": "string", "enum": list(LABELS)}),
]
"""A :class:`JobKind` in a pydantic model: accepts a name in any case (or the number), writes the
lower-case name, and documents the names in JSON Schema / OpenAPI."""
