"""Browse the model registry: models, versions, aliases and the lineage graph.

Answers come from the gateway's event index, caught up with the chain before each answer.
Version and job identifiers are 0x-hex; CIDs are CIDv1 base32.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.gateway.deps import FreshGatewayDep, Gateway
from api.gateway.index import ModelEntry, VersionEntry
from node.serving import ERROR_RESPONSES
from registry.errors import ModelNotFoundError

router = APIRouter(prefix="/v1/registry", tags=["registry"], responses=ERROR_RESPONSES)


class VersionOut(BaseModel):
    """A model version."""

    id: str
    model: str
    tag: str
    ref: str
    cid: str
    manifest_sha256: str
    parent: str | None
    parent_ref: str | None
    job_id: int
    license: str
    revoked: bool
    block: int


class ModelOut(BaseModel):
    """A model with its versions and aliases."""

    id: str
    name: str
    owner: str
    access: str
    price_wei: int
    period_s: int
    aliases: dict[str, str]
    latest: str | None
    versions: list[VersionOut]


class ModelListOut(BaseModel):
    """Every model."""

    object: str = "list"
    data: list[ModelOut]


class LineageNode(BaseModel):
    """A version in the lineage graph."""

    id: str
    ref: str
    cid: str
    job_id: int
    revoked: bool


class LineageEdge(BaseModel):
    """Parent → child (``job_id`` 0 when pushed by hand)."""

    parent: str
    child: str
    job_id: int


class LineageOut(BaseModel):
    """The lineage graph."""

    nodes: list[LineageNode]
    edges: list[LineageEdge]


def _version(gateway: Gateway, version: VersionEntry) -> VersionOut:
    model = gateway.index.models.get(version.model_id)
    return VersionOut(
        id="0x" + version.version_id.hex(),
        model=model.name if model else "",
        tag=version.tag,
        ref=gateway.index.ref_of(version.version_id),
        cid=version.cid,
        manifest_sha256="0x" + version.manifest_sha256.hex(),
        parent="0x" + version.parent.hex() if version.parent else None,
        parent_ref=gateway.index.ref_of(version.parent) if version.parent else None,
        job_id=version.job_id,
        license=version.license,
        revoked=version.revoked,
        block=version.block,
    )


def _model(gateway: Gateway, model: ModelEntry) -> ModelOut:
    versions = [_version(gateway, gateway.index.versions[v]) for v in model.versions]
    live = [v for v in versions if not v.revoked]
    aliases = {name: gateway.index.ref_of(vid) for name, vid in sorted(model.aliases.items())}
    latest = aliases.get("latest") or (live[-1].ref if live else None)
    return ModelOut(
        id="0x" + model.model_id.hex(),
        name=model.name,
        owner=model.owner,
        access=model.access.name.lower(),
        price_wei=model.price_wei,
        period_s=model.period_s,
        aliases=aliases,
        latest=latest,
        versions=versions,
    )


def _find(gateway: Gateway, name: str) -> ModelEntry:
    model = gateway.index.model(name)
    if model is None:
        raise ModelNotFoundError(f"model {name!r} is not registered")
    return model


@router.get("/models", response_model=ModelListOut)
async def list_models(gateway: FreshGatewayDep) -> ModelListOut:
    """Every model with its versions and aliases, in creation order."""
    return ModelListOut(data=[_model(gateway, m) for m in gateway.index.models.values()])


@router.get("/models/{name}", response_model=ModelOut)
async def get_model(name: str, gateway: FreshGatewayDep) -> ModelOut:
    """One model (404 ``model_not_found``)."""
    return _model(gateway, _find(gateway, name))


@router.get("/models/{name}/versions", response_model=list[VersionOut])
async def list_versions(name: str, gateway: FreshGatewayDep) -> list[VersionOut]:
    """A model's versions in registration order."""
    return _model(gateway, _find(gateway, name)).versions


@router.get("/models/{name}/versions/{tag}", response_model=VersionOut)
async def get_version(name: str, tag: str, gateway: FreshGatewayDep) -> VersionOut:
    """One version by tag."""
    for version in _model(gateway, _find(gateway, name)).versions:
        if version.tag == tag:
            return version
    raise ModelNotFoundError(f"{name!r} has no version {tag!r}")


@router.get("/models/{name}/aliases", response_model=dict[str, str])
async def list_aliases(name: str, gateway: FreshGatewayDep) -> dict[str, str]:
    """Alias → ``name@tag`` it points at."""
    return _model(gateway, _find(gateway, name)).aliases


@router.get("/lineage", response_model=LineageOut)
async def lineage(
    gateway: FreshGatewayDep,
    model: str | None = Query(default=None, max_length=256, description="only this model's family"),
) -> dict[str, Any]:
    """Versions and their parent → child edges (all, or one model's ancestry and descendants)."""
    if model is not None:
        _find(gateway, model)
    return gateway.index.lineage(model)
