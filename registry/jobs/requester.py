"""The requester's side of a job: check it, post it, follow it until it settles.

Posting (:func:`submit`):
    1. read the input and check params and input against the kind's schema (an INFER job without
       a ``task`` gets the one its model's manifest allows) — nothing is uploaded or escrowed
       for a job no worker would take;
    2. upload the input and the params block;
    3. create the job on chain, escrowing the reward.

Following (:func:`wait_settled`) polls the job's status, reports each change, and — when asked —
expires the job once its deadline passed on chain (anyone may; it refunds the requester), so a
job nobody delivered ends instead of leaving the caller waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import AnchormlError, ConfigError
from registry.jobs.errors import InvalidJobParamsError
from registry.jobs.io import check_input, infer_document, publish_params, read_input
from registry.jobs.kinds import JobKind
from registry.jobs.params import JobParams, default_task, parse_params

if TYPE_CHECKING:
    from registry.clients import JobRecord, JobStatus
    from registry.sdk import Anchorml


class JobWaitTimeoutError(AnchormlError, TimeoutError):
    """A job did not settle within the time the caller waits."""

    code = "job_wait_timeout"


class JobNotFinalizedError(AnchormlError):
    """A job ended without an accepted result (expired or cancelled; its reward refunded)."""

    code = "job_not_finalized"


@dataclass(frozen=True)
class CheckedJob:
    """A job's params as they will be published, and as parsed."""

    kind: JobKind
    params: dict[str, Any]
    parsed: JobParams


def check_job(
    kind: JobKind,
    params: Mapping[str, Any] | None,
    data: bytes,
    model_task: Callable[[], str] | None = None,
    model: str = "the model",
) -> CheckedJob:
    """Check ``params`` and the input ``data`` against ``kind``'s schema.

    Args:
        kind: the job kind.
        params: the params as the caller gave them (None: none).
        data: the input file's bytes.
        model_task: reads the model version's manifest ``task``; called only when an INFER job
            names no task (None: the task cannot be derived).
        model: how to name the model in errors.

    Returns:
        The params to publish (the caller's, plus a derived ``task``) and their parsed form.

    Raises:
        InvalidJobParamsError, InvalidJobInputError: the message names the field.
    """
    published = dict(params or {})
    if kind is JobKind.INFER and "task" not in published:
        doc = infer_document(data)
        if model_task is None:
            raise InvalidJobParamsError("INFER params need a 'task'")
        published["task"] = default_task(model_task(), doc, model)
    parsed = parse_params(kind, published)
    check_input(kind, parsed, data)
    return CheckedJob(kind, published, parsed)


@dataclass(frozen=True)
class Submitted:
    """A job posted on chain."""

    job_id: int
    tx_hash: str
    input_cid: str
    params_hash: bytes
    deadline: int
    params: dict[str, Any]


def submit(
    sdk: Anchorml,
    kind: JobKind,
    model_ref: str,
    input_path: Path | None = None,
    *,
    input_bytes: bytes | None = None,
    params: Mapping[str, Any] | None = None,
    reward_wei: int,
    redundancy: int = 1,
    deadline_s: int = 3600,
    lease_s: int = 600,
    output_model: str | None = None,
) -> Submitted:
    """Check the job, upload input and params, then create it (escrowing ``reward_wei``).

    Raises:
        ConfigError: neither or both of ``input_path`` / ``input_bytes``; a model-producing kind
            without ``output_model``.
        InvalidJobParamsError, InvalidJobInputError: the job does not fit its kind's schema
            (nothing was uploaded or sent).
        ContractRevertError: the chain refused (e.g. ``NoAccess`` for a gated model).
    """
    from registry.clients import ContentRef, JobSpec
    from registry.clients.models import model_id
    from registry.model.package import read_manifest

    if (input_path is None) == (input_bytes is None):
        raise ConfigError("give exactly one of an input file or input bytes")
    if kind.produces_model and not output_model:
        raise ConfigError(
            f"{kind.name} jobs produce a model: name the output model (--output-model)"
        )
    data = read_input(Path(input_path)) if input_path is not None else input_bytes
    assert data is not None
    version = sdk.models.resolve(model_ref)
    checked = check_job(
        kind, params, data, lambda: read_manifest(sdk.store, version).task, model_ref
    )
    root = sdk.store.add_path(Path(input_path)) if input_path else sdk.store.add_bytes(data)
    params_hash = publish_params(sdk.store, checked.params)
    now = sdk.chain.timestamp()
    spec = JobSpec(
        kind=kind,
        version_id=version.version_id,
        input=ContentRef.from_cid(str(root)),
        params_hash=params_hash,
        deadline=now + deadline_s,
        lease_seconds=min(lease_s, deadline_s),
        redundancy=redundancy,
        output_model_id=model_id(output_model) if output_model else b"\x00" * 32,
    )
    result = sdk.jobs.create_job(spec, reward_wei)
    return Submitted(
        int(result.value), result.tx_hash, str(root), params_hash, spec.deadline, checked.params
    )


def wait_settled(
    sdk: Anchorml,
    job_id: int,
    timeout: float = 600.0,
    poll: float = 0.5,
    *,
    on_status: Callable[[JobStatus], None] | None = None,
    expire_at: int | None = None,
) -> JobRecord:
    """Poll until the job is finalized, expired or cancelled; return its record.

    Args:
        sdk: a connected client (signing, if ``expire_at`` is given).
        job_id: the job.
        timeout: seconds of wall-clock time to wait at most.
        poll: seconds between status reads.
        on_status: called with the first status read and with every change.
        expire_at: the job's deadline: once the chain's time reaches it, expire the job
            (refunding the requester) instead of waiting for someone else to.

    Raises:
        JobWaitTimeoutError: not settled within ``timeout`` seconds.
    """
    from registry.chain import revert_errors as rv

    deadline = time.monotonic() + timeout
    last: JobStatus | None = None
    while True:
        status = sdk.jobs.status(job_id)
        if status != last:
            last = status
            if on_status is not None:
                on_status(status)
        if status.settled:
            return sdk.jobs.get_job(job_id)
        if expire_at is not None and sdk.chain.timestamp() >= expire_at:
            try:
                sdk.jobs.expire(job_id)
                continue  # read the new status at once
            except (rv.InvalidJobStatus, rv.DeadlineNotReached):
                pass  # settled meanwhile, or the next block is not past the deadline yet
        if time.monotonic() >= deadline:
            raise JobWaitTimeoutError(
                f"job {job_id} still {status.name.lower()} after {timeout:.0f} s"
            )
        time.sleep(poll)
