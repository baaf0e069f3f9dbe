"""The gateway's worker pool finds its candidates from the index's events, not a log scan.

On the real contracts (eth-tester): a node that declared a version (``setServing``) and is
eligible is a candidate; an address the index lists but the chain does not confirm is dropped;
and neither lookup sends ``eth_getLogs`` (a scan from the deployment block grows with the chain).
"""

from __future__ import annotations

import asyncio

from api.gateway.index import LogMeta, RegistryIndex
from api.gateway.metrics import GatewayMetrics
from api.gateway.upstream import PoolSettings, WorkerPool
from node.serving import receipt_domain
from registry.clients.models import version_id
from support.chain import PUBLIC, V1, RpcCalls, World


def _declare(index: RegistryIndex, node: str, vid: bytes, serving: bool = True) -> None:
    index.apply("ServingChanged", {"node": node, "versionId": vid, "serving": serving},
                LogMeta(1, "0x", ""))  # fmt: skip


def _candidates(env: World, index: RegistryIndex, vid: bytes) -> list[str]:
    async def run() -> list[str]:
        pool = WorkerPool(
            env.user.nodes, GatewayMetrics(), index.serving, receipt_domain(env.deployment),
            PoolSettings(allow_private=True),  # the world's nodes declare loopback endpoints
        )  # fmt: skip
        try:
            return [u.address for u in await pool.candidates(vid)]
        finally:
            await pool.aclose()

    return asyncio.run(run())


def test_candidates_are_declared_nodes_the_chain_confirms(env: World, rpc_calls: RpcCalls) -> None:
    vid = version_id(PUBLIC, V1)
    env.node1.nodes.set_serving([vid])
    index = RegistryIndex()
    _declare(index, env.node1.address, vid)
    _declare(index, env.node2.address, vid)  # the index says so, the chain does not
    rpc_calls.clear()

    assert _candidates(env, index, vid) == [env.node1.address]
    assert rpc_calls["eth_getLogs"] == 0
    assert rpc_calls["eth_call"] > 0


def test_a_version_no_node_declared_costs_no_chain_call(env: World, rpc_calls: RpcCalls) -> None:
    vid = version_id(PUBLIC, V1)
    env.node1.nodes.set_serving([vid])
    index = RegistryIndex()
    _declare(index, env.node1.address, vid)
    _declare(index, env.node1.address, vid, serving=False)  # withdrawn since
    rpc_calls.clear()

    assert _candidates(env, index, vid) == []
    assert sum(rpc_calls.values()) == 0


def test_nodes_the_model_owner_does_not_allow_are_no_candidates(env: World) -> None:
    vid = version_id(PUBLIC, V1)
    env.node1.nodes.set_serving([vid])
    env.node2.nodes.set_serving([vid])
    index = RegistryIndex()
    _declare(index, env.node1.address, vid)
    _declare(index, env.node2.address, vid)
    asked: list[tuple[bytes, str]] = []

    def may_serve(version: bytes, node: str) -> bool:  # the owner allows node2 only
        asked.append((version, node))
        return node == env.node2.address

    async def run() -> list[str]:
        pool = WorkerPool(
            env.user.nodes, GatewayMetrics(), index.serving, receipt_domain(env.deployment),
            PoolSettings(allow_private=True), may_serve=may_serve,
        )  # fmt: skip
        try:
            return [u.address for u in await pool.candidates(vid)]
        finally:
            await pool.aclose()

    assert asyncio.run(run()) == [env.node2.address]
    assert sorted(asked) == sorted([(vid, env.node1.address), (vid, env.node2.address)])
