"""``GET /ipfs/{cid}``: verified reads from the content store.

Files stream block by block, each block re-hashed against its CID before it is sent; a
directory answers a JSON listing. Bad CIDs are 400 ``invalid_cid``, absent content 404
``content_not_found``, files above ``ipfs_max_bytes`` 413 ``content_too_large``. The files of
gated models are served only to callers with on-chain access to (one of) their models.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from api.gateway.auth import Caller
from api.gateway.deps import FreshGatewayDep, Gateway, LimitedCallerDep
from api.gateway.errors import ContentTooLargeError
from node.serving import ERROR_RESPONSES, NoAccessError, json_response
from registry.auth import MissingTokenError
from registry.clients import Access, ModelRecord
from registry.errors import ContentNotFoundError
from registry.store.cid import CID

router = APIRouter(tags=["ipfs"], responses=ERROR_RESPONSES)


async def _check_gated(gateway: Gateway, cid: str, caller: Caller) -> None:
    gated = await gateway.gated_cids()
    if cid not in gated:
        return
    if caller.claims is None:
        raise MissingTokenError("this content belongs to a gated model: send a bearer token")
    for version in list(gateway.index.versions.values()):
        model = gateway.index.models.get(version.model_id)
        if model is None or model.access == Access.PUBLIC:
            continue
        record = ModelRecord(model.model_id, model.name, model.owner, model.access, 0, 0)
        if await gateway.catalog.has_access(record, caller.claims.address):
            return
    raise NoAccessError("this content belongs to a gated model you have no access to")


@router.get(
    "/ipfs/{cid}",
    responses={200: {"content": {"application/octet-stream": {}, "application/json": {}}}},
)
async def ipfs(cid: str, gateway: FreshGatewayDep, caller: LimitedCallerDep) -> Response:
    """The file (bytes) or directory (JSON listing) ``cid`` names, verified."""
    parsed = CID.parse(cid)
    text = str(parsed.to_v1())
    await _check_gated(gateway, text, caller)
    store = gateway.store
    try:
        stat = await asyncio.to_thread(store.stat, parsed)
    except ContentNotFoundError:
        raise ContentNotFoundError(f"content {text} is not in this gateway's store") from None
    if stat.kind == "directory":
        entries = await asyncio.to_thread(store.ls, parsed)
        listing = [{"name": e.name, "cid": str(e.cid), "size": e.tsize} for e in entries]
        return json_response({"cid": text, "kind": "directory", "entries": listing})
    if stat.kind != "file":
        raise ContentNotFoundError(f"{text} is not a file or directory")
    if stat.size > gateway.config.ipfs_max_bytes:
        raise ContentTooLargeError(
            f"{text} is {stat.size} bytes; the limit is {gateway.config.ipfs_max_bytes}"
        )
    if stat.size <= 1 << 20:  # small: read whole, so any error is a proper status, not a cut body
        data = await asyncio.to_thread(store.read, parsed)
        return Response(data, media_type="application/octet-stream", headers=_headers(text))
    blocks: Iterator[bytes] = store.cat(parsed)
    return StreamingResponse(
        _iterate(blocks), media_type="application/octet-stream",
        headers={**_headers(text), "Content-Length": str(stat.size)},
    )  # fmt: skip


def _headers(cid: str) -> dict[str, str]:
    return {"ETag": f'"{cid}"', "Cache-Control": "public, max-age=31536000, immutable"}


async def _iterate(blocks: Iterator[bytes]) -> AsyncIterator[bytes]:
    sentinel = object()
    while True:
        block = await asyncio.to_thread(next, blocks, sentinel)
        if block is sentinel:
            return
        assert isinstance(block, bytes)
        yield block
