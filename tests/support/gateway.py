"""A devnet with the demo models for the gateway tests, shared by every test module of a session.

On top of :class:`devnet.Devnet` (embedded chain served over JSON-RPC in a thread, contracts,
embedded store): MiniLM (public, alias ``prod``), SmolLM2-135M chat (public) and a gated
(allowlist) MiniLM copy that ``USER`` may use and ``REQUESTER`` may not. The gateway signs with
its own dev account (``GATEWAY``). Models are pushed from hard-linked copies of the cached demo
exports (``push`` writes ``anchorml.json`` into the directory it publishes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from eth_account import Account

from api.gateway.app import create_app
from api.gateway.config import GatewayConfig
from registry.auth import mint_token
from registry.clients import Access
from registry.dev import demo
from registry.dev.procs import free_port, wait_http
from registry.model.package import push
from registry.sdk import Anchorml
from support.devnet import KEYS, OWNER, REQUESTER, USER, Devnet

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

GATEWAY = 4
#: Devnet ether is free: gateways under test pay for as many jobs as the tests post (the
#: defaults are small on purpose; tests of the budget set their own).
DEVNET_BUDGETS = {"sponsor_daily_wei_per_caller": 10**19, "sponsor_daily_wei_total": 10**20}
MINILM = "minilm"
CHAT = "smollm2-chat"
GATED = "minilm-gated"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def linked_copy(name: demo.DemoName, dest: Path) -> Path:
    """A copy of a cached demo model whose files are hard links (cheap, source untouched)."""
    return Path(shutil.copytree(demo.cached_model(name), dest, copy_function=os.link))


class GatewayNet:
    """The devnet plus the published models and helpers to build gateways on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.devnet = Devnet(root)
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> GatewayNet:
        self.devnet.__enter__()
        owner = self.devnet.sdk(OWNER)
        push(
            owner, linked_copy("minilm", self.root / "m-minilm"), MINILM, "v1", license="Apache-2.0"
        )
        owner.models.set_alias(MINILM, "prod", "v1")
        push(owner, linked_copy("smollm2", self.root / "m-chat"), CHAT, "v1", license="Apache-2.0")
        gated = linked_copy("minilm", self.root / "m-gated")
        (gated / "README.md").unlink()  # a hard link: replace it, never write through it
        (gated / "README.md").write_text(
            "# minilm-gated\n\nAllowlisted copy of all-MiniLM-L6-v2.\n"
        )
        push(owner, gated, GATED, "v1", access=Access.ALLOWLIST, license="Apache-2.0")
        owner.models.grant_access(GATED, self.address(USER))
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_gateways()
        self.devnet.__exit__(*exc)

    def stop_gateways(self) -> None:
        """Stop the gateway processes started by :meth:`serve_gateway`."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.procs = []

    # --- accounts --------------------------------------------------------------------------------

    def address(self, key_index: int) -> str:
        """Address of a dev account."""
        return self.devnet.address(key_index)

    def token(self, key_index: int, ttl_s: int = 3600, now: float | None = None) -> str:
        """A bearer token for a dev account."""
        return mint_token(Account.from_key(KEYS[key_index]), ttl_s, now=now)

    def sdk(self, key_index: int | None = REQUESTER) -> Anchorml:
        """An SDK handle signing as a dev account."""
        return self.devnet.sdk(key_index)

    # --- gateways --------------------------------------------------------------------------------

    def app(self, **config: Any) -> Any:
        """An in-process gateway app (signing as ``GATEWAY``; devnet sponsorship budgets)."""
        settings = self.devnet.settings(GATEWAY)
        settings.data_dir = self.root / "gateway-data"
        config.setdefault("spot_check_fraction", 0.0)  # tests that want spot checks say so
        config = {**DEVNET_BUDGETS, **config}
        return create_app(GatewayConfig(**config), Anchorml.from_settings(settings))

    def serve_gateway(self, name: str = "gateway", **config: str) -> str:
        """Start ``anchorml gateway`` as a process; return its URL once it answers."""
        port = free_port()
        env = self.devnet.env(GATEWAY, ANCHORML_DATA_DIR=str(self.root / f"{name}-data"))
        config.setdefault("spot_check_fraction", "0")  # tests that want spot checks say so
        config = {**{k: str(v) for k, v in DEVNET_BUDGETS.items()}, **config}
        env.update({f"ANCHORML_GATEWAY_{k.upper()}": v for k, v in config.items()})
        log = (self.root / f"{name}.log").open("ab")
        anchorml = Path(sys.executable).with_name("anchorml")
        proc = subprocess.Popen(
            [str(anchorml), "gateway", "--port", str(port), "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", proc, self.root / f"{name}.log")
        return url


class ThreadServer:
    """A uvicorn server for an app in a background thread (a real socket, in this process)."""

    def __init__(self, app: Any) -> None:
        import threading

        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.app = app

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
