"""`anchorml up`: the whole devnet in one command.

Steps:
    1. check the ports and the data directory (one clear line and nothing started on a problem);
    2. start the chain — the embedded eth-tester served over JSON-RPC from this process (its
       state lives in this process only and is gone when it stops), or anvil with its state file
       in the data directory (kept across restarts);
    3. open the store (embedded in the data directory, or an IPFS daemon URL) and deploy the
       contracts (anvil: reused when already deployed);
    4. import the demo models with progress bars — MiniLM (public), SmolLM2-135M-Instruct chat
       (public, converted once from its GGUF and cached) and a gated copy of MiniLM (allowlist);
    5. start N staked workers and the gateway as child processes, print URLs and examples;
    6. on Ctrl-C (or SIGTERM) stop every child, then the chain, and check nothing is left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TransferSpeedColumn

from registry.chain import deployment as deployment_file
from registry.chain.connection import Chain, connect, dev_keys, embedded_chain
from registry.chain.devserver import make_server
from registry.chain.heartbeat import Heartbeat
from registry.chain.tx import Wallet
from registry.clients import Access
from registry.config import Settings
from registry.errors import AnchormlError, ConfigError
from registry.sdk import Anchorml

DATA_FORMAT = 1
ADMIN_KEY, OWNER_KEY, USER_KEY = 0, 1, 2
WORKER_KEYS = (5, 6, 7, 8, 9)
ANVIL = Path(__file__).resolve().parents[1] / "node_modules" / ".bin" / "anvil"
DEMO_MODELS = (
    # name, demo builder, access
    ("minilm", "minilm", Access.PUBLIC),
    ("smollm2-chat", "smollm2", Access.PUBLIC),
    ("minilm-gated", "minilm", Access.ALLOWLIST),
)


@dataclass
class UpOptions:
    """What `anchorml up` was asked for."""

    data_dir: Path
    chain: str = "embedded"
    store: str | None = None
    workers: int = 2
    host: str = "127.0.0.1"
    rpc_port: int = 8545
    gateway_port: int = 8000


@dataclass
class Devnet:
    """The running parts, for shutdown."""

    options: UpOptions
    console: Console
    chain: Chain | None = None
    server: Any = None
    anvil: subprocess.Popen[bytes] | None = None
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    rpc_url: str = ""
    heartbeat: Heartbeat | None = None

    # --- start ---------------------------------------------------------------------------------

    def preflight(self) -> None:
        """Refuse to start on taken ports, an incompatible data dir or a missing tool."""
        o = self.options
        for port, what in ((o.rpc_port, "--rpc-port"), (o.gateway_port, "--port")):
            if _port_taken(o.host, port):
                raise ConfigError(
                    f"port {port} on {o.host} is already in use: stop what uses it or pass {what}"
                )
        if o.chain == "anvil" and not ANVIL.exists():
            raise ConfigError("--chain anvil needs the npm tools: run `make npm` (or `npm ci`)")
        if o.chain not in ("embedded", "anvil"):
            raise ConfigError(f"--chain must be embedded or anvil, not {o.chain!r}")
        marker = o.data_dir / "devnet.json"
        if marker.exists():
            try:
                found = json.loads(marker.read_text()).get("format")
            except ValueError:
                found = None
            if found != DATA_FORMAT:
                raise ConfigError(
                    f"{o.data_dir} holds data from an incompatible anchorml version "
                    f"(format {found!r}, need {DATA_FORMAT}): move it away or pass --data-dir"
                )
        o.data_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"format": DATA_FORMAT}) + "\n")

    def start_chain(self) -> None:
        """Start the chain and serve it over JSON-RPC."""
        o = self.options
        self.rpc_url = f"http://{o.host}:{o.rpc_port}"
        if o.chain == "embedded":
            self.chain = embedded_chain()
            self.server = make_server(self.chain, o.host, o.rpc_port)
            threading.Thread(target=self.server.serve_forever, daemon=True, name="rpc").start()
        else:
            state = o.data_dir / "anvil-state.json"
            log = (o.data_dir / "anvil.log").open("ab")
            self.anvil = subprocess.Popen(
                [
                    str(ANVIL),
                    "--host",
                    o.host,
                    "--port",
                    str(o.rpc_port),
                    "--state",
                    str(state),
                    "--silent",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            _wait_rpc(self.rpc_url, self.anvil)
        self.chain = connect(self.rpc_url)
        if self.anvil is not None:
            self.heartbeat = Heartbeat(self.chain).start()

    def deploy(self) -> tuple[Path, bool]:
        """Deploy (or, on a kept anvil chain, reuse) the contracts; return the deployment file
        and whether it was reused."""
        assert self.chain is not None
        path = self.options.data_dir / "deployment.json"
        if path.exists() and self.options.chain == "anvil":
            try:
                dep = deployment_file.load(path)
                dep.check_chain(self.chain)
                if self.chain.has_code(dep.job_board):
                    return path, True
            except AnchormlError:
                pass
        dep = deployment_file.deploy(Wallet(self.chain, Account.from_key(dev_keys()[ADMIN_KEY])))
        deployment_file.save(dep, path, force=True)
        return path, False

    def settings(self, key_index: int | None) -> Settings:
        """Client settings for a dev account on this devnet."""
        o = self.options
        return Settings(
            rpc_url=self.rpc_url,
            private_key=dev_keys()[key_index] if key_index is not None else None,  # type: ignore[arg-type]
            store=o.store or str(o.data_dir / "store"),
            deployment=o.data_dir / "deployment.json",
            data_dir=o.data_dir,
        )

    def import_models(self) -> list[str]:
        """Register the demo models (building them once); return their refs."""
        from registry.model import demo
        from registry.model.package import push

        owner = Anchorml.from_settings(self.settings(OWNER_KEY))
        refs = []
        cache = self.options.data_dir / "demo-models"
        for name, builder, access in DEMO_MODELS:
            ref = f"{name}@v1"
            refs.append(ref)
            if owner.models.exists(name, "v1"):
                continue
            self.console.print(f"[bold]importing {name}[/] ({access.name.lower()})")
            source = demo.cached_model(builder, cache)  # type: ignore[arg-type]
            staging = self.options.data_dir / "staging" / name
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(source, staging)
            total = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file())
            with Progress(
                "  {task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=self.console,
                transient=True,
            ) as bar:
                task = bar.add_task("adding to store", total=total)

                def advance(n: int, t: TaskID = task) -> None:
                    bar.advance(t, n)

                result = push(
                    owner,
                    staging,
                    name,
                    "v1",
                    access=access,
                    license="Apache-2.0",
                    progress=advance,
                )
            owner.models.set_alias(name, "prod", "v1")
            shutil.rmtree(staging, ignore_errors=True)
            self.console.print(f"  {ref} -> {result.cid}")
        user = Account.from_key(dev_keys()[USER_KEY]).address
        if not owner.models.has_access("minilm-gated", user):
            owner.models.grant_access("minilm-gated", user)
        return refs

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start a child process (own process group, log file in the data dir)."""
        log = (self.options.data_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli.main", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children.append((name, proc))
        return proc

    def child_env(self, key_index: int | None) -> dict[str, str]:
        """Environment for a child acting as dev account ``key_index``."""
        s = self.settings(key_index)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANCHORML_")}
        env.update(
            ANCHORML_RPC_URL=s.rpc_url,
            ANCHORML_STORE=s.store_spec,
            ANCHORML_DEPLOYMENT=str(s.deployment_path),
            ANCHORML_DATA_DIR=str(s.data_dir),
            HF_HUB_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
        )
        if key_index is not None:
            env["ANCHORML_PRIVATE_KEY"] = dev_keys()[key_index]
        return env

    def start_workers(self, refs: list[str]) -> None:
        """Start the staked worker nodes: they serve the demo versions (declared on chain for
        direct routing) and take jobs on every model (``*``), so models pushed later work too."""
        for i in range(self.options.workers):
            key = WORKER_KEYS[i % len(WORKER_KEYS)]
            args = ["node", "run", "--name", f"worker-{i + 1}", "--serves", "*"]
            for ref in refs:
                args += ["--serves", ref]
            self.spawn(f"worker-{i + 1}", args, self.child_env(key))

    def start_gateway(self) -> str:
        """Start the gateway; return its URL once it answers /healthz."""
        o = self.options
        env = self.child_env(ADMIN_KEY)
        env.update(ANCHORML_GATEWAY_HOST=o.host, ANCHORML_GATEWAY_PORT=str(o.gateway_port))
        proc = self.spawn(
            "gateway", ["gateway", "--host", o.host, "--port", str(o.gateway_port)], env
        )
        url = f"http://{o.host}:{o.gateway_port}"
        _wait_http(f"{url}/healthz", proc, self.options.data_dir / "gateway.log")
        return url

    def wait_workers(self, timeout: float = 300.0) -> None:
        """Wait until every worker answers its health check."""
        deadline = time.monotonic() + timeout
        for name, proc in self.children:
            if not name.startswith("worker"):
                continue
            log = self.options.data_dir / f"{name}.log"
            while "processor ready" not in log.read_text(errors="replace"):
                if proc.poll() is not None:
                    raise ConfigError(f"{name} exited ({proc.returncode}); see {log}")
                if time.monotonic() > deadline:
                    raise ConfigError(f"{name} did not become ready; see {log}")
                time.sleep(0.3)

    # --- stop ----------------------------------------------------------------------------------

    def stop(self) -> list[str]:
        """Stop every part; return the names of children that had to be killed."""
        killed = []
        for _name, proc in self.children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.children:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                killed.append(name)
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self.anvil is not None and self.anvil.poll() is None:
            self.anvil.send_signal(signal.SIGTERM)  # anvil dumps its --state on SIGTERM
            try:
                self.anvil.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.anvil.pid, signal.SIGKILL)
                killed.append("anvil")
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        return killed


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _wait_rpc(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigError(f"anvil exited with code {proc.returncode}")
        try:
            if "result" in httpx.post(url, json=body, timeout=1.0).json():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise ConfigError(f"anvil did not answer on {url}")


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigError(f"{url} process exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise ConfigError(f"{url} did not answer in {timeout:.0f} s; see {log}")
