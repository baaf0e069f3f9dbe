"""The embedded chain's JSON-RPC server (``registry.dev.devserver``) over real HTTP/1.1:
answers on a kept-alive connection, clear errors for bad bodies, and Nagle's algorithm off on
every accepted connection (with it on, each call waited for a delayed ACK: ~48 ms a call)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from registry.chain.connection import embedded_chain
from registry.dev.devserver import make_server


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Any, list[int]]]:
    server = make_server(embedded_chain(), "127.0.0.1", 0, block_time_s=None)
    nodelay: list[int] = []
    handler = server.RequestHandlerClass
    setup = handler.setup

    def recording_setup(self: Any) -> None:  # the real setup, then read the socket's option
        setup(self)
        nodelay.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    handler.setup = recording_setup  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, nodelay
    server.shutdown()
    server.server_close()


def _post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, Any]:
    conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def test_calls_share_one_connection_with_nagle_off(served: tuple[Any, list[int]]) -> None:
    server, nodelay = served
    before = len(nodelay)
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        for rid in range(3):
            request = {"jsonrpc": "2.0", "id": rid, "method": "eth_chainId", "params": []}
            status, body = _post(conn, json.dumps(request).encode())
            assert status == 200 and body["id"] == rid and int(body["result"], 16) > 0
    finally:
        conn.close()
    assert len(nodelay) == before + 1, "three calls should use one kept-alive connection"
    assert nodelay[-1] != 0, "TCP_NODELAY is off on the server's side of the connection"


def test_malformed_json_is_a_parse_error(served: tuple[Any, list[int]]) -> None:
    server, _ = served
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        status, body = _post(conn, b"{not json")
    finally:
        conn.close()
    assert status == 200 and body["error"]["code"] == -32700
