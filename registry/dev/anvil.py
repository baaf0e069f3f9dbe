"""An anvil process (npm ``@foundry-rs/anvil``, which ships its binary) for dev chains.

It starts in a process group of its own and dies with the process that started it
(:mod:`registry.dev.procs`); it gets SIGTERM then, on which anvil writes its ``--state`` file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from registry.dev import procs
from registry.errors import ConfigError

ANVIL = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "anvil"


class AnvilError(ConfigError):
    """anvil could not be started."""


class Anvil:
    """One anvil on ``host:port`` (a free port when ``port`` is 0); a context manager.

    Args:
        binary: the anvil executable.
        host, port: where it answers JSON-RPC.
        state: a file anvil loads on start and writes on SIGTERM (the chain is kept), or None.
        log: a file for its output (default: a temporary file, quoted when it fails to start).
        start_timeout: seconds to wait until ``eth_chainId`` answers.
    """

    def __init__(
        self,
        binary: Path = ANVIL,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        state: Path | None = None,
        log: Path | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.binary = binary
        self.host = host
        self.port = port
        self.state = state
        self.log = log
        self.start_timeout = start_timeout
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._temp_log: Path | None = None

    def start(self) -> str:
        """Start anvil and return its URL once it answers JSON-RPC.

        Raises:
            AnvilError: the binary is missing, or anvil exited or did not answer in time.
        """
        if not self.binary.exists():
            raise AnvilError(f"anvil not found at {self.binary}: run `make npm` (or `npm ci`)")
        if self.log is None and self._temp_log is None:
            fd, name = tempfile.mkstemp(prefix="anvil-", suffix=".log")
            os.close(fd)
            self._temp_log = Path(name)
        log = self.log or self._temp_log
        assert log is not None
        tries = 3 if self.port == 0 else 1  # another process may take a free port before anvil
        for _ in range(tries):
            port = self.port or procs.free_port(self.host)
            argv = [str(self.binary), "--host", self.host, "--port", str(port), "--silent"]
            if self.state is not None:
                argv += ["--state", str(self.state)]
            self.proc = procs.spawn(argv, log=log, death_signal=signal.SIGTERM)
            self.url = f"http://{self.host}:{port}"
            if self._wait_ready():
                return self.url
            procs.stop([self.proc], signal.SIGTERM, 5.0)
            self.proc = None
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.stop()  # (the temporary log)
        raise AnvilError(f"anvil did not answer eth_chainId on {self.url}: {detail or 'no output'}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if "result" in httpx.post(self.url, json=body, timeout=1.0).json():
                    return True
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM anvil (it writes its state file), SIGKILL it if it lingers; return whether
        it had to be killed."""
        proc, self.proc = self.proc, None
        killed = proc is not None and bool(procs.stop([proc], signal.SIGTERM, timeout))
        if self._temp_log is not None:
            self._temp_log.unlink(missing_ok=True)
            self._temp_log = None
        return killed

    def __enter__(self) -> Anvil:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
