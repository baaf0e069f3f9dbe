"""The tests' view of the one devnet (:class:`registry.dev.devnet.Devnet`): the tests' dev
account roles, worker nodes run by :class:`api.up.Supervisor` (as ``anchorml up`` runs them),
and the ``anchorml`` CLI run as a dev account."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from api.up import Supervisor
from registry.config import Settings
from registry.dev import devnet
from registry.sdk import Anchorml

ANCHORML = Path(sys.executable).with_name("anchorml")
KEYS = devnet.KEYS
ADMIN, OWNER, REQUESTER, USER = 0, 1, 2, 3
NODE_KEYS = (5, 6, 7, 8)


class Devnet(devnet.Devnet):
    """A chain + deployment + store in ``root``, worker nodes on it; a context manager.

    Clients use ``root/client`` as their data dir and nodes ``root/nodes-data``, so a test sees
    what each side caches.
    """

    def __init__(self, root: Path, backend: str = "embedded", store: str | None = None) -> None:
        super().__init__(root, backend, store)
        self.supervisor = Supervisor(self, data_dir=root / "nodes-data")

    def __exit__(self, *exc: object) -> None:
        self.stop_nodes()
        super().__exit__(None, None, None)

    @property
    def nodes(self) -> list[subprocess.Popen[bytes]]:
        """The node processes started so far."""
        return [proc for _name, proc in self.supervisor.children]

    def settings(self, key_index: int | None, data_dir: Path | None = None) -> Settings:
        """Settings of a dev account (or read-only with None); data dir ``root/client``."""
        return super().settings(key_index, data_dir or self.root / "client")

    def sdk(  # type: ignore[override]
        self, key_index: int | None = REQUESTER, rpc_url: str | None = None
    ) -> Anchorml:
        """An SDK handle signing as dev account ``key_index``."""
        settings = self.settings(key_index)
        if rpc_url is not None:
            settings.rpc_url = rpc_url
        return Anchorml.from_settings(settings)

    def env(  # type: ignore[override]
        self, key_index: int | None = REQUESTER, data_dir: Path | None = None, **extra: str
    ) -> dict[str, str]:
        """Environment for an ``anchorml`` subprocess acting as dev account ``key_index``."""
        return {**super().env(key_index, data_dir or self.root / "client"), **extra}

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
        return self.supervisor.start_worker(name, key_index, serves, **config)

    def forget_node(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop tracking a node that exited (its exit code is not reported by stop_nodes)."""
        self.supervisor.children = [(n, p) for n, p in self.supervisor.children if p is not proc]

    def node_log(self, name: str) -> str:
        """What node ``name`` logged so far."""
        return self.supervisor.log(name)

    def wait_log(self, name: str, text: str, timeout: float = 120.0) -> None:
        """Wait until node ``name`` logged ``text``."""
        try:
            self.supervisor.wait_log(name, text, timeout)
        except Exception as exc:
            raise AssertionError(f"{exc}:\n{self.node_log(name)[-3000:]}") from None

    def stop_nodes(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> list[int | None]:
        """Stop every node process; return their exit codes."""
        nodes = self.nodes
        self.supervisor.stop(sig, timeout)
        return [proc.returncode for proc in nodes]
