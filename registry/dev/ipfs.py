"""Start and stop a throw-away js-ipfs daemon (``node_modules/.bin/jsipfs``) for tests and benches.

1. ``jsipfs init --empty-repo`` in a temporary ``IPFS_PATH``;
2. rewrite the repo config: API, gateway and gRPC on free 127.0.0.1 ports, no swarm listeners,
   no bootstrap peers, delegates, MDNS or webRTCStar (nothing leaves the machine);
3. ``jsipfs daemon --enable-preload=false`` as a child that dies with this process
   (:mod:`registry.dev.procs`), with the ``Promise.withResolvers`` polyfill
   (``tools/ipfs-polyfill.cjs``) that js-ipfs 0.66 needs on Node < 22;
4. wait until ``POST /api/v0/id`` answers; on stop, SIGTERM it, then SIGKILL its group.

Run as a module to get a daemon for manual work: ``python -m registry.dev.ipfs``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from registry.dev import procs
from registry.dev.procs import free_port

ROOT = Path(__file__).resolve().parents[2]
JSIPFS = ROOT / "node_modules" / ".bin" / "jsipfs"
POLYFILL = ROOT / "tools" / "ipfs-polyfill.cjs"


class DaemonError(RuntimeError):
    """The daemon could not be started."""


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
        self.log_path.unlink(missing_ok=True)
        self.process = procs.spawn(
            [str(JSIPFS), "daemon", "--enable-preload=false"], env=self._env(), log=self.log_path
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
        if self.process is not None:
            procs.stop([self.process], signal.SIGTERM, timeout=15)
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
        sys.stdout.write(f"js-ipfs API at {daemon.url} (repo {daemon.repo}); Ctrl-C to stop\n")
        sys.stdout.flush()
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
