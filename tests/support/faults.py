"""A JSON-RPC proxy that fails a chosen fraction of requests (HTTP 429, 503, or a dropped
connection), for testing how clients ride out a flaky or dead RPC endpoint."""

from __future__ import annotations

import random
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FaultProxy:
    """Forwards POSTs to ``upstream``; fails ``fault_rate`` of them (settable at run time)."""

    def __init__(self, upstream: str, fault_rate: float = 0.0, seed: int = 7) -> None:
        self.upstream = upstream
        self.fault_rate = fault_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.forwarded = 0
        self.failed = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # head and body are two writes: see devserver.py

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    fault = proxy.rng.random() < proxy.fault_rate
                    kind = proxy.rng.choice(("429", "503", "drop")) if fault else ""
                    proxy.failed += fault
                if kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if kind:
                    self.send_response(int(kind))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                request = urllib.request.Request(
                    proxy.upstream, data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    payload = response.read()
                with proxy.lock:
                    proxy.forwarded += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop the proxy."""
        self.server.shutdown()
        self.server.server_close()
