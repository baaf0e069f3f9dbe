"""Shared chain fixtures: one contract behaviour suite, run on every backend.

``backend`` is a session-scoped parametrization (``eth-tester`` in process, ``anvil`` as a real
process on a free port), so pytest runs every test that uses it once per backend, grouping the
tests by backend. ``world`` deploys the contracts and the base state once per backend; ``env``
hands each test that world inside a snapshot that is reverted afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from web3.middleware import Web3Middleware

pytest.register_assert_rewrite("support")

from support.chain import RpcCalls, World, make_world  # noqa: E402

if TYPE_CHECKING:
    from support.gateway import GatewayNet

# eth-tester runs in this process; anvil is a process of its own, so its tests are marked so
BACKENDS = ("eth-tester", pytest.param("anvil", marks=pytest.mark.integration))


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Name of the chain backend the test runs on."""
    return str(request.param)


@pytest.fixture(scope="session")
def world(backend: str) -> Iterator[World]:
    """The contracts deployed with base state on ``backend`` (anvil: started and stopped here)."""
    deployed, teardown = make_world(backend)
    try:
        yield deployed
    finally:
        teardown()


@pytest.fixture
def env(world: World) -> Iterator[World]:
    """The deployed world, reverted to its base state after the test."""
    with world.isolated():
        yield world


@pytest.fixture(scope="session")
def gateway_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayNet]:
    """One devnet with the gateway tests' models published, shared by the whole session."""
    from support.gateway import GatewayNet

    with GatewayNet(tmp_path_factory.mktemp("gateway-devnet")) as built:
        yield built


@pytest.fixture
def rpc_calls(env: World) -> Iterator[RpcCalls]:
    """JSON-RPC requests ``env``'s clients send while the test runs (a web3 middleware)."""
    calls = RpcCalls()

    class Counting(Web3Middleware):
        def wrap_make_request(self, make_request: Any) -> Any:
            def counted(method: str, params: Any) -> Any:
                calls[str(method)] += 1
                calls.params.append((str(method), params))
                return make_request(method, params)

            return counted

    env.w3.middleware_onion.add(Counting, name="rpc-counter")
    try:
        yield calls
    finally:
        env.w3.middleware_onion.remove("rpc-counter")
