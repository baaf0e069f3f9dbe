"""The job board over HTTP: create (gateway-sponsored), list, read, and follow a job's status.

Creation is sponsored: the gateway signs ``createJob`` with its own key and escrows the reward,
on behalf of a caller who must present a valid bearer token and hold access to the model
(checked before anything is uploaded or sent), within the gateway's daily budgets per caller and
in total (429 ``sponsor_budget_exceeded``, :mod:`api.gateway.budget`). Params and input are
checked against the kind's schema before anything is uploaded or escrowed (400
``invalid_job_params`` / ``invalid_job_input``); an INFER job without a ``task`` gets the one its
model's manifest allows.
The reward is capped by ``max_reward_wei``, and the usual rate limit applies.
``GET /v1/jobs/{id}/events`` streams status changes as Server-Sent Events (``event: status``)
until the job settles.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.gateway.deps import FreshGatewayDep, Gateway, GatewayDep, LimitedCallerDep
from api.gateway.errors import JobNotFoundError
from api.gateway.index import JobEntry
from node.serving import (
    ERROR_RESPONSES,
    SSE_HEADERS,
    STREAMING,
    InvalidRequestError,
    dumps,
    json_response,
)
from registry.jobs import KindName

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)

JobId = Annotated[int, Path(ge=1, le=2**64 - 1)]
EVENTS_MAX_S = 900.0
HEARTBEAT_S = 15.0


class CreateJob(BaseModel):
    """A job to post: the input is a JSON document (``input``) or raw bytes (``input_base64``)."""

    model_config = ConfigDict(extra="forbid")

    kind: KindName
    model: str = Field(min_length=1, max_length=256, description="name[@version|@alias]")
    input: dict[str, Any] | list[Any] | None = None
    input_base64: str | None = None
    params: dict[str, Any] = Field(
        default_factory=dict, description="INFER: task from the model's manifest when left out"
    )
    reward_wei: int = Field(ge=1, le=10**30)
    redundancy: int = Field(default=1, ge=1, le=16)
    deadline_s: int = Field(default=3600, ge=60, le=30 * 86_400)
    lease_s: int = Field(default=600, ge=10, le=86_400)
    output_model: str | None = Field(default=None, min_length=1, max_length=256)


class CreatedJob(BaseModel):
    """A posted job."""

    job_id: int
    tx_hash: str
    requester: str
    on_behalf_of: str
    input_cid: str
    params_hash: str
    status_url: str
    events_url: str


class JobOut(BaseModel):
    """A job as the event index knows it."""

    job_id: int
    kind: str
    model: str
    version_id: str
    requester: str
    reward_wei: int
    deadline: int
    redundancy: int
    status: str
    claims: int
    input_cid: str
    params_hash: str
    result_cid: str | None
    block: int
    tx_hash: str


class JobListOut(BaseModel):
    """Jobs, newest first."""

    object: str = "list"
    data: list[JobOut]


def job_out(gateway: Gateway, job: JobEntry) -> dict[str, Any]:
    """The public view of an indexed job."""
    return {
        "job_id": job.job_id,
        "kind": job.kind.label,
        "model": gateway.index.ref_of(job.version_id),
        "version_id": "0x" + job.version_id.hex(),
        "requester": job.requester,
        "reward_wei": job.reward_wei,
        "deadline": job.deadline,
        "redundancy": job.redundancy,
        "status": job.status.name.lower(),
        "claims": job.claims,
        "input_cid": job.input_cid,
        "params_hash": "0x" + job.params_hash.hex(),
        "result_cid": job.result_cid,
        "block": job.block,
        "tx_hash": job.tx_hash,
    }


def _input_bytes(body: CreateJob) -> bytes:
    if (body.input is None) == (body.input_base64 is None):
        raise InvalidRequestError("give exactly one of input (JSON) and input_base64", "input")
    if body.input is not None:
        return json.dumps(
            body.input, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    try:
        return base64.b64decode(body.input_base64 or "", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError("input_base64 is not valid base64", "input_base64") from None


@router.post("", status_code=201, response_model=CreatedJob)
async def create_job(body: CreateJob, gateway: GatewayDep, caller: LimitedCallerDep) -> CreatedJob:
    """Post a job with the gateway's key for the authenticated caller (access checked first)."""
    address = caller.require_address()
    target = await gateway.authorize(body.model, caller)
    if body.reward_wei > gateway.config.max_reward_wei:
        raise InvalidRequestError(
            f"reward_wei is above the gateway's limit of {gateway.config.max_reward_wei}",
            "reward_wei",
        )
    kind = body.kind
    data = _input_bytes(body)
    posted = await gateway.onchain.sponsor(  # budget, then params and input, then upload
        address,
        kind,
        target.pinned_ref,
        input_bytes=data,
        params=body.params,
        reward_wei=body.reward_wei,
        redundancy=body.redundancy,
        deadline_s=body.deadline_s,
        lease_s=min(body.lease_s, body.deadline_s),
        output_model=body.output_model,
    )
    now = await asyncio.to_thread(gateway.sdk.chain.timestamp)
    gateway.tracker.track(posted.job_id, now + body.deadline_s)
    return CreatedJob(
        job_id=posted.job_id,
        tx_hash=posted.tx_hash,
        requester=gateway.sdk.wallet.address if gateway.sdk.wallet else "",
        on_behalf_of=address,
        input_cid=posted.input_cid,
        params_hash="0x" + posted.params_hash.hex(),
        status_url=f"/v1/jobs/{posted.job_id}",
        events_url=f"/v1/jobs/{posted.job_id}/events",
    )


@router.get("", response_model=JobListOut)
async def list_jobs(
    gateway: FreshGatewayDep,
    limit: int = Query(default=50, ge=1, le=500),
    status: str | None = Query(default=None, max_length=16, description="e.g. open, finalized"),
) -> Any:
    """Recent jobs, newest first."""
    jobs = sorted(gateway.index.jobs.values(), key=lambda j: j.job_id, reverse=True)
    if status is not None:
        jobs = [j for j in jobs if j.status.name.lower() == status.lower()]
    return json_response({"object": "list", "data": [job_out(gateway, j) for j in jobs[:limit]]})


def _indexed(gateway: Gateway, job_id: int) -> JobEntry:
    job = gateway.index.jobs.get(job_id)
    if job is None:
        raise JobNotFoundError(f"job {job_id} does not exist")
    return job


@router.get("/{job_id}", response_model=JobOut)
async def get_job(job_id: JobId, gateway: FreshGatewayDep) -> Any:
    """One job (404 ``job_not_found``)."""
    return json_response(job_out(gateway, _indexed(gateway, job_id)))


@router.get("/{job_id}/events", responses={200: STREAMING})
async def job_events(job_id: JobId, gateway: FreshGatewayDep) -> StreamingResponse:
    """Server-Sent Events: one ``status`` event per change, the last when the job settles."""
    _indexed(gateway, job_id)

    async def events() -> AsyncIterator[bytes]:
        started = last_beat = time.monotonic()
        last: tuple[str, int] | None = None
        while time.monotonic() - started < EVENTS_MAX_S:
            await gateway.watcher.catch_up()
            job = gateway.index.jobs[job_id]
            state = (job.status.name, job.claims)
            if state != last:
                last = state
                yield b"event: status\ndata: " + dumps(job_out(gateway, job)) + b"\n\n"
                if job.settled:
                    return
            elif time.monotonic() - last_beat > HEARTBEAT_S:
                last_beat = time.monotonic()
                yield b": keep-alive\n\n"
            await asyncio.sleep(0.5)

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)
