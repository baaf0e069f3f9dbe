"""Start and stop a throw-away js-ipfs daemon (``node_modules/.bin/jsipfs``) for tests and benches.

1. ``jsipfs init --empty-repo`` in a temporary ``IPFS_PATH``;
2. rewrite the repo config: API, gateway and gRPC on free 127.0.0.1 ports, no swarm listeners,
   no bootstrap peers, delegates, MDNS or webRTCStar (nothing leaves the machine);
3. ``jsipfs daemon --enable-preload=false`` in its own process group, with the
   ``Promise.withResolvers`` polyfill (``tools/ipfs-polyfill.cjs``) that js-ipfs 0.66 needs on
   Node < 22;
4. wait until ``POST /api/v0/id`` answers; on stop, SIGTERM the group, then SIGKILL.

Run as a script to get a daemon for manual work: ``python tests/support/ipfs.py``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parents[2]
JSIPFS = ROOT / "node_modules" / ".bin" / "jsipfs"
POLYFILL = ROOT / "tools" / "ipfs-polyfill.cjs"


class DaemonError(RuntimeError):
    """The daemon could not be started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def available() -> bool:
    """Whether the npm-installed js-ipfs and the polyfill are present."""
    return JSIPFS.exists() and POLYFILL.exists()


class JsIpfsDaemon:
    """A js-ipfs daemon in a temporary repo, listening on 127.0.0.1 only.

    Args:
        repo: repo directory (``IPFS_PATH``); a fresh temporary one when ``None``.
        start_timeout: seconds to wait for the API to answer.
    """

    def __init__(self, repo: Path | None = None, *, start_timeout: float = 120.0) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if repo is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="anchorml-jsipfs-")
            repo = Path(self._tmp.name) / "repo"
        self.repo = repo
        self.start_timeout = start_timeout
        self.api_port = free_port()
        self.gateway_port = free_port()
        self.grpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.log_path = self.repo.parent / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["IPFS_PATH"] = str(self.repo)
        env["NODE_OPTIONS"] = f"{env.get('NODE_OPTIONS', '')} --require={POLYFILL}".strip()
        return env

    def _configure(self) -> None:
        path = self.repo / "config"
        config = json.loads(path.read_text())
        config["Addresses"].update(
            Swarm=[],
            Announce=[],
            API=f"/ip4/127.0.0.1/tcp/{self.api_port}",
            Gateway=f"/ip4/127.0.0.1/tcp/{self.gateway_port}",
            RPC=f"/ip4/127.0.0.1/tcp/{self.grpc_port}",
            Delegates=[],
        )
        config["Bootstrap"] = []
        discovery = config.setdefault("Discovery", {})
        discovery.setdefault("MDNS", {})["Enabled"] = False
        discovery.setdefault("webRTCStar", {})["Enabled"] = False
        path.write_text(json.dumps(config, indent=2))

    def start(self) -> str:
        """Initialise the repo and start the daemon; returns the API URL."""
        if not available():
            raise DaemonError(f"js-ipfs not installed at {JSIPFS} (run `make npm`)")
        self.repo.parent.mkdir(parents=True, exist_ok=True)
        init = subprocess.run(
            [str(JSIPFS), "init", "--empty-repo"],
            env=self._env(),
            capture_output=True,
            timeout=self.start_timeout,
            check=False,
        )
        if init.returncode != 0:
            raise DaemonError(f"jsipfs init failed: {init.stderr.decode(errors='replace')[-2000:]}")
        self._configure()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(JSIPFS), "daemon", "--enable-preload=false"],
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.post(f"{self.url}/api/v0/id", timeout=2.0).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        log_tail = self.log_path.read_text(errors="replace")[-2000:]
        self.stop()
        raise DaemonError(f"js-ipfs daemon did not answer on {self.url}:\n{log_tail}")

    def stop(self) -> None:
        """Stop the daemon (its whole process group) and remove a temporary repo."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
            except ProcessLookupError:
                pass
        self.process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> JsIpfsDaemon:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    with JsIpfsDaemon() as daemon:
        print(f"js-ipfs API at {daemon.url} (repo {daemon.repo}); Ctrl-C to stop", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
