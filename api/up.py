"""`anchorml up`'s supervisor: the worker and gateway processes on a devnet, started and stopped.

The devnet itself (chain, contracts, store, demo models) is :class:`registry.dev.devnet.Devnet`;
this module checks what `anchorml up` was asked for (:func:`preflight`) and runs ``anchorml
node run`` and ``anchorml gateway`` processes on the devnet (:class:`Supervisor`), which the
tests and ``bench/`` use too. Every child dies with the supervisor, however it ends: each is
started in a process group that :meth:`Supervisor.stop` signals, and with the kernel's
parent-death signal for the exits nothing can clean up after (SIGKILL, an OOM kill); see
:mod:`registry.dev.procs`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from registry.dev import procs
from registry.dev.anvil import ANVIL
from registry.dev.devnet import CHAINS, WORKER_KEYS, Devnet
from registry.errors import ConfigError

DATA_FORMAT = 1


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


def preflight(o: UpOptions) -> None:
    """Refuse to start on taken ports, an incompatible data dir or a missing tool; then mark
    the data dir with this version's data format.

    Raises:
        ConfigError: one line saying what is wrong and what to do.
    """
    for port, what in ((o.rpc_port, "--rpc-port"), (o.gateway_port, "--port")):
        if procs.port_taken(o.host, port):
            raise ConfigError(
                f"port {port} on {o.host} is already in use: stop what uses it or pass {what}"
            )
    if o.chain not in CHAINS:
        raise ConfigError(f"--chain must be embedded or anvil, not {o.chain!r}")
    if o.chain == "anvil" and not ANVIL.exists():
        raise ConfigError("--chain anvil needs the npm tools: run `make npm` (or `npm ci`)")
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


class Supervisor:
    """Worker and gateway processes on ``devnet``, logging to ``<logs>/<name>.log``.

    Args:
        devnet: the running devnet.
        logs: folder for the logs (default: the devnet folder).
        data_dir: the children's ``ANCHORML_DATA_DIR`` (default: the devnet folder).
    """

    def __init__(self, devnet: Devnet, logs: Path | None = None, data_dir: Path | None = None):
        self.devnet = devnet
        self.logs = logs or devnet.root
        self.data_dir = data_dir
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(
        self, name: str, args: list[str], key_index: int | None, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        """Start ``anchorml ARGS`` as dev account ``key_index``; ``env`` adds variables."""
        full = {**self.devnet.env(key_index, self.data_dir), **env}
        proc = procs.spawn(
            [sys.executable, "-m", "api.cli.main", *args], env=full, log=self.log_path(name)
        )
        self.children.append((name, proc))
        return proc

    def start_worker(
        self, name: str, key_index: int, serves: list[str], **config: str
    ) -> subprocess.Popen[bytes]:
        """Start ``anchorml node run`` as dev account ``key_index`` serving ``serves``;
        ``config`` items become ``ANCHORML_<NAME>`` variables (e.g. ``kinds='["INFER"]'``)."""
        args = ["node", "run", "--name", name]
        for ref in serves:
            args += ["--serves", ref]
        return self.spawn(name, args, key_index, _variables("ANCHORML_", config))

    def start_workers(self, count: int, refs: list[str], gateway: int | None = None) -> None:
        """Start ``count`` staked workers: they serve ``refs`` (declared on chain for direct
        routing) and take jobs on every model (``*``), so models pushed later work too; they
        accept the grants of the gateway signing as dev account ``gateway``."""
        trusted = {} if gateway is None else {"trusted_gateways": self.devnet.address(gateway)}
        for i in range(count):
            key = WORKER_KEYS[i % len(WORKER_KEYS)]
            self.start_worker(f"worker-{i + 1}", key, ["*", *refs], **trusted)

    def start_gateway(
        self,
        key_index: int,
        host: str,
        port: int,
        name: str = "gateway",
        log_level: str | None = None,
        **config: str,
    ) -> str:
        """Start ``anchorml gateway`` signing as ``key_index``; ``config`` items become
        ``ANCHORML_GATEWAY_<NAME>`` variables. Returns its URL once it answers /healthz.

        Raises:
            ConfigError: it exited or did not answer in time.
        """
        env = {"ANCHORML_GATEWAY_HOST": host, "ANCHORML_GATEWAY_PORT": str(port)}
        env.update(_variables("ANCHORML_GATEWAY_", config))
        args = ["gateway", "--host", host, "--port", str(port)]
        if log_level is not None:
            args += ["--log-level", log_level]
        proc = self.spawn(name, args, key_index, env)
        url = f"http://{host}:{port}"
        try:
            procs.wait_http(f"{url}/healthz", proc, self.log_path(name))
        except procs.ChildFailed as exc:
            raise ConfigError(str(exc).split("\n", 1)[0]) from None
        return url

    def log_path(self, name: str) -> Path:
        """The log file of child ``name``."""
        return self.logs / f"{name}.log"

    def log(self, name: str) -> str:
        """What child ``name`` logged so far."""
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_log(self, name: str, text: str, timeout: float = 300.0) -> None:
        """Wait until child ``name`` logged ``text``.

        Raises:
            ConfigError: it exited first, or did not log ``text`` within ``timeout`` seconds.
        """
        proc = dict(self.children)[name]
        deadline = time.monotonic() + timeout
        while text not in self.log(name):
            if proc.poll() is not None:
                raise ConfigError(f"{name} exited ({proc.returncode}); see {self.log_path(name)}")
            if time.monotonic() > deadline:
                raise ConfigError(f"{name} never logged {text!r}; see {self.log_path(name)}")
            time.sleep(0.3)

    def wait_workers(self, timeout: float = 300.0) -> None:
        """Wait until every worker's processor is ready."""
        for name, _proc in self.children:
            if name.startswith("worker"):
                self.wait_log(name, "processor ready", timeout)

    def exited(self) -> list[tuple[str, int]]:
        """Children that exited, with their exit codes."""
        return [(n, p.returncode) for n, p in self.children if p.poll() is not None]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> list[str]:
        """Stop every child (``sig`` to its process group, SIGKILL after ``timeout`` seconds);
        return the names of those that had to be killed."""
        killed = procs.stop([p for _n, p in self.children], sig, timeout)
        names = [n for n, p in self.children if p in killed]
        self.children = []
        return names


def _variables(prefix: str, config: dict[str, str]) -> dict[str, str]:
    return {f"{prefix}{k.upper()}": v for k, v in config.items()}
