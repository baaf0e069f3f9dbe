"""A whole devnet for node, gateway and system tests: a chain reachable over JSON-RPC (the
embedded eth-tester served by ``registry.chain.devserver`` in a thread, or a real anvil), the
contracts deployed, an embedded store directory, SDK handles per dev account, and worker
nodes started as real ``anchorml node run`` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from eth_account import Account

from registry.chain import deployment as deployment_file
from registry.chain.connection import Chain, connect, dev_keys, embedded_chain
from registry.chain.devserver import make_server
from registry.chain.heartbeat import Heartbeat
from registry.chain.tx import Wallet
from registry.config import Settings
from registry.sdk import Anchorml
from support.chain import Anvil

REPO = Path(__file__).resolve().parents[2]
ANCHORML = Path(sys.executable).with_name("anchorml")
KEYS = dev_keys()
ADMIN, OWNER, REQUESTER, USER = 0, 1, 2, 3
NODE_KEYS = (5, 6, 7, 8)


class Devnet:
    """A chain + deployment + store in ``root``; use as a context manager."""

    def __init__(self, root: Path, backend: str = "embedded", store: str | None = None) -> None:
        self.root = root
        self.backend = backend
        self.deployment_path = root / "deployment.json"
        self.store_path: str | Path = store or root / "store"
        self.url = ""
        self._server: Any = None
        self._anvil: Anvil | None = None
        self._embedded: Chain | None = None
        self.nodes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Devnet:
        if self.backend == "embedded":
            self._embedded = embedded_chain()
            self._server = make_server(self._embedded, "127.0.0.1", 0)
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
            self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        else:
            self._anvil = Anvil()
            self.url = self._anvil.start()
        chain = connect(self.url)
        if self._anvil is not None:
            self._heartbeat = Heartbeat(chain).start()
        dep = deployment_file.deploy(Wallet(chain, Account.from_key(KEYS[ADMIN])))
        deployment_file.save(dep, self.deployment_path)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_nodes()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._anvil is not None:
            self._heartbeat.stop()
            self._anvil.stop()

    # --- clients -------------------------------------------------------------------------------

    def settings(self, key_index: int | None) -> Settings:
        """Settings of a dev account (or read-only with None)."""
        return Settings(
            rpc_url=self.url,
            private_key=KEYS[key_index] if key_index is not None else None,  # type: ignore[arg-type]
            store=str(self.store_path),
            deployment=self.deployment_path,
            data_dir=self.root / "client",
        )

    def sdk(self, key_index: int | None = REQUESTER, rpc_url: str | None = None) -> Anchorml:
        """An SDK handle signing as dev account ``key_index``."""
        settings = self.settings(key_index)
        if rpc_url is not None:
            settings.rpc_url = rpc_url
        return Anchorml.from_settings(settings)

    def address(self, key_index: int) -> str:
        """Address of dev account ``key_index``."""
        return str(Account.from_key(KEYS[key_index]).address)

    def env(self, key_index: int | None = REQUESTER, **extra: str) -> dict[str, str]:
        """Environment for an ``anchorml`` subprocess acting as dev account ``key_index``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANCHORML_")}
        env.update(
            ANCHORML_RPC_URL=self.url,
            ANCHORML_STORE=str(self.store_path),
            ANCHORML_DEPLOYMENT=str(self.deployment_path),
            ANCHORML_DATA_DIR=str(self.root / "client"),
            HF_HUB_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
        )
        if key_index is not None:
            env["ANCHORML_PRIVATE_KEY"] = KEYS[key_index]
        env.update(extra)
        return env

    def cli(self, *args: str, key_index: int | None = REQUESTER, check: bool = True) -> str:
        """Run ``anchorml ARGS`` and return stdout."""
        proc = subprocess.run(
            [str(ANCHORML), *args],
            env=self.env(key_index),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"anchorml {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout

    # --- worker nodes --------------------------------------------------------------------------

    def start_node(
        self, name: str, key_index: int, serves: list[str], **config: str
    ) -> subprocess.Popen[bytes]:
        """Start ``anchorml node run`` as dev account ``key_index`` serving ``serves``.

        ``config`` items become ``ANCHORML_<NAME>`` variables (e.g. ``rpc_url=...``).
        """
        return self._spawn_node(name, key_index, serves, config)

    def _spawn_node(
        self, name: str, key_index: int, serves: list[str], config: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        args = [str(ANCHORML), "node", "run", "--name", name]
        for ref in serves:
            args += ["--serves", ref]
        extra = {f"ANCHORML_{k.upper()}": v for k, v in config.items()}
        extra.setdefault("ANCHORML_DATA_DIR", str(self.root / "nodes-data"))
        log = (self.root / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            args,
            env=self.env(key_index, **extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.nodes.append(proc)
        return proc

    def node_log(self, name: str) -> str:
        """What node ``name`` logged so far."""
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_log(self, name: str, text: str, timeout: float = 120.0) -> None:
        """Wait until node ``name`` logged ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.node_log(name):
                return
            time.sleep(0.2)
        raise AssertionError(f"node {name} never logged {text!r}:\n{self.node_log(name)[-3000:]}")

    def stop_nodes(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> list[int | None]:
        """Stop every node process; return their exit codes."""
        codes = []
        for proc in self.nodes:
            if proc.poll() is None:
                proc.send_signal(sig)
        for proc in self.nodes:
            try:
                codes.append(proc.wait(timeout=timeout))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                codes.append(proc.wait())
        self.nodes = []
        return codes
