"""Serve the embedded eth-tester chain over Ethereum JSON-RPC (HTTP), so separate processes —
workers, the gateway, web3, cast, a wallet — share one in-process chain.

Each request passes through the same formatters web3 applies in process (standard JSON-RPC ⇄
eth-tester), then results are encoded as JSON-RPC quantities (hex). Requests are serialized by
one lock: py-evm is not thread-safe. Reverts are answered as ``{"code": 3, "message":
"execution reverted", "data": "0x..."}``, which every client decodes as a custom error.
Dev methods also answered: ``evm_mine``, ``evm_snapshot``, ``evm_revert``,
``evm_setNextBlockTimestamp``, ``evm_increaseTime``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hexbytes import HexBytes
from web3.providers.eth_tester.middleware import request_formatters, result_formatters

from registry.chain.connection import Chain
from registry.chain.reverts import revert_data

log = logging.getLogger(__name__)

MAX_BODY = 8 * 1024 * 1024


def _to_json(value: Any) -> Any:
    """Encode eth-tester results as JSON-RPC: quantities in hex, bytes as 0x-hex."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray | HexBytes):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value


class JsonRpcChain:
    """Answers JSON-RPC requests against an embedded :class:`Chain`."""

    def __init__(self, chain: Chain) -> None:
        if not chain.embedded:
            raise ValueError("only the embedded chain can be served")
        self.chain = chain
        self.lock = threading.Lock()
        self._default_sender = chain.tester.get_accounts()[0]
        self._extra: dict[str, Callable[[list[Any]], Any]] = {
            "evm_setNextBlockTimestamp": self._set_next_timestamp,
            "evm_increaseTime": self._increase_time,
            "anvil_mine": lambda params: self.chain.mine(int(params[0], 0) if params else 1),
        }

    def handle(self, request: Any) -> Any:
        """Answer one request object or a batch (list)."""
        if isinstance(request, list):
            return [self._one(r) for r in request]
        return self._one(request)

    def _one(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error(None, -32600, "invalid request")
        rid = request.get("id")
        method: str = request["method"]
        params = request.get("params") or []
        try:
            with self.lock:
                result = self._call(method, params)
        except _RpcFailure as failure:
            return _error(rid, failure.code, failure.message, failure.data)
        except Exception as exc:  # a bad request must not kill the server
            data = revert_data(exc)
            if data is not None or "revert" in str(exc).lower():
                hex_data = "0x" + data.hex() if data is not None else None
                return _error(rid, 3, "execution reverted", hex_data)
            log.info("JSON-RPC %s failed: %s", method, exc)
            return _error(rid, -32000, f"{type(exc).__name__}: {exc}")
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    def _call(self, method: str, params: list[Any]) -> Any:
        if method in self._extra:
            return _to_json(self._extra[method](params))
        if method in ("eth_call", "eth_estimateGas") and params and isinstance(params[0], dict):
            # eth-tester insists on a sender; JSON-RPC makes it optional
            params = [{"from": self._default_sender, **params[0]}, *params[1:]]
        formatter = request_formatters.get(method)  # type: ignore[call-overload]
        if formatter is not None:
            params = formatter(params)
        response = self.chain.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if response.get("error"):
            error = response["error"]
            message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
            code = -32601 if "Unknown RPC Endpoint" in message else -32000
            raise _RpcFailure(code, message)
        result = response.get("result")
        out_formatter = (result_formatters or {}).get(method)  # type: ignore[call-overload]
        if out_formatter is not None and result is not None:
            result = out_formatter(result)
        if method == "net_version":
            return str(self.chain.chain_id)
        return _to_json(result)

    def _set_next_timestamp(self, params: list[Any]) -> None:
        ts = params[0]
        self.chain.tester.time_travel(int(ts, 0) if isinstance(ts, str) else int(ts))

    def _increase_time(self, params: list[Any]) -> int:
        delta = params[0]
        delta = int(delta, 0) if isinstance(delta, str) else int(delta)
        pending = self.chain.tester.get_block_by_number("pending")["timestamp"]
        self.chain.tester.time_travel(pending + delta)
        return delta


class _RpcFailure(Exception):
    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def _error(rid: Any, code: int, message: str, data: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": rid, "error": error}


def make_server(
    chain: Chain, host: str = "127.0.0.1", port: int = 8545, *, block_time_s: float | None = 1.0
) -> ThreadingHTTPServer:
    """An HTTP server answering JSON-RPC for ``chain`` (call ``serve_forever`` on it).

    Args:
        block_time_s: mine an empty block whenever the chain was idle this long (so time moves
            as on a real chain); None to mine only on transactions.

    Raises:
        OSError: the port is taken.
    """
    rpc = JsonRpcChain(chain)
    heartbeat = None
    if block_time_s is not None:
        from registry.dev.heartbeat import Heartbeat

        heartbeat = Heartbeat(chain, block_time_s, lock=rpc.lock).start()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one connection per client, not per call
        # The head and the body go out in two writes; with Nagle's algorithm on, the body waits
        # for the client's delayed ACK of the head (~40 ms on Linux) on every call.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True  # the unread body must not be parsed as a request
                self._reply(413, _error(None, -32600, "request too large"))
                return
            try:
                request = json.loads(self.rfile.read(length))
            except ValueError:
                self._reply(200, _error(None, -32700, "parse error"))
                return
            self._reply(200, rpc.handle(request))

        def do_OPTIONS(self) -> None:  # noqa: N802
            self._reply(204, None)

        def _reply(self, status: int, body: Any) -> None:
            payload = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Headers", "Content-Type")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("rpc %s", format % args)

    server = _Server((host, port), Handler)
    server.daemon_threads = True
    server.heartbeat = heartbeat
    return server


class _Server(ThreadingHTTPServer):
    """Stops the chain heartbeat with the server."""

    heartbeat: Any = None

    def server_close(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
        super().server_close()
