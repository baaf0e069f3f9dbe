"""Child processes that die with the process that started them, and the ports they listen on.

A dev tool that starts processes (anvil, workers, a gateway) must not leave them behind when it
is killed in a way it cannot clean up after (SIGKILL, an OOM kill): the orphans would keep their
ports and the next start would fail. So every child is started

1. in a process group of its own, which the parent signals on every exit path it does see
   (:func:`stop`), so a child's own children go too and a terminal's Ctrl-C reaches only the
   parent, which then stops the children in order; and
2. on Linux with ``PR_SET_PDEATHSIG``: the kernel signals the child when its parent dies,
   whatever killed the parent. (The signal follows the *thread* that forked the child: start
   children from a thread that lives as long as they should, e.g. the main thread.)
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _death_signal_setter(sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks the kernel to send ``sig`` to the child when this process
    dies, or None where the kernel has no such request (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    # Bound here, in the parent: between fork and exec the child should do as little as it can.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request was in place
            os.kill(os.getpid(), sig)

    return set_death_signal


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    death_signal: int = signal.SIGKILL,
    stdin: int | IO[bytes] | None = subprocess.DEVNULL,
    stdout: int | IO[bytes] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a child that dies with this process (see the module docstring).

    Args:
        env: the child's environment (default: this process's).
        log: append the child's stdout and stderr to this file (default: inherit, or
            ``stdout``).
        death_signal: what the kernel sends the child when this process dies: SIGKILL for
            processes with nothing to save; SIGTERM for one that saves state on it (anvil).
        stdin, stdout: as for :class:`subprocess.Popen`.
        cwd: the child's working directory.
    """
    out: int | IO[bytes] | None = stdout
    if log is not None:
        out = log.open("ab")
    try:
        return subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            stdin=stdin,
            stdout=out,
            stderr=subprocess.STDOUT if log is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_death_signal_setter(death_signal),  # noqa: PLW1509 - see the docstring
        )
    finally:
        if log is not None and not isinstance(out, int) and out is not None:
            out.close()  # the child holds its own descriptor


def signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to ``proc``'s process group (nothing if it is gone)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(
    procs: Sequence[subprocess.Popen[bytes]], sig: int = signal.SIGTERM, timeout: float = 30.0
) -> list[subprocess.Popen[bytes]]:
    """Send ``sig`` to every child, wait up to ``timeout`` seconds in all until each child and
    whatever it started in its process group has exited, then SIGKILL the groups still there.
    Returns the children whose groups had to be killed.

    The signal goes to the child alone, not its group: a launcher forwards it (npm's anvil
    script to the anvil binary, which then writes its state file) and may exit first, so the
    group is waited for before anything is killed.
    """
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(sig)
    deadline = time.monotonic() + timeout
    killed = []
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            killed.append(proc)
        while group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_members(proc.pid):  # (an empty group's id may belong to another one by now)
            if proc not in killed:
                killed.append(proc)
            signal_group(proc, signal.SIGKILL)
        elif proc in killed:
            proc.kill()
    for proc in killed:
        proc.wait()
    return killed


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid`` (Linux ``/proc``; elsewhere, the
    group's leader if it is alive)."""
    if not os.path.isdir("/proc/self"):
        try:
            os.killpg(pgid, 0)
        except OSError:
            return []
        return [pgid]
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_taken(host: str, port: int) -> bool:
    """Whether something already holds ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


class ChildFailed(RuntimeError):
    """A child process exited, or did not answer in time."""


def wait_http(
    url: str, proc: subprocess.Popen[bytes], log: Path | None = None, timeout: float = 180.0
) -> None:
    """Wait until ``url`` answers 200; fail early if ``proc`` exits.

    Raises:
        ChildFailed: ``proc`` exited or ``url`` did not answer within ``timeout`` seconds; the
            message ends with the tail of ``log``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ChildFailed(f"{url}: the process exited ({proc.returncode}){_tail(log)}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise ChildFailed(f"{url} did not answer in {timeout:.0f} s{_tail(log)}")


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    return f"; see {log}:\n{log.read_text(errors='replace')[-3000:]}"
