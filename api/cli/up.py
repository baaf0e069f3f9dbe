"""`anchorml up`: start the devnet (chain, store, contracts, demo models), its workers and
gateway, and stop every part on Ctrl-C, SIGTERM, SIGHUP (a closed terminal) or a broken stdout
pipe (``anchorml up | tee log`` stopped with Ctrl-C). If it is killed outright (SIGKILL, an OOM
kill), the kernel stops the children (see :mod:`api.up`)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TransferSpeedColumn

from api.up import Supervisor, UpOptions, preflight
from registry.config import DEFAULT_RPC_URL, Settings
from registry.dev.devnet import ADMIN, DEMO_MODELS, KEYS, OWNER, USER, Devnet

console = Console(highlight=False, soft_wrap=True)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class _Stopped(Exception):
    """A stop signal arrived: unwind to the cleanup at once (even mid-start-up)."""


def _raise_stopped(signum: int, _frame: Any) -> None:
    raise _Stopped(signal.Signals(signum).name)


def up(
    chain: str = typer.Option("embedded", "--chain", help="embedded (eth-tester) | anvil"),
    store: str = typer.Option(None, "--store", help="IPFS RPC URL (default: embedded store)."),
    workers: int = typer.Option(2, "--workers", min=1, max=5, help="Worker nodes to start."),
    port: int = typer.Option(8000, "--port", help="Gateway port."),
    rpc_port: int = typer.Option(8545, "--rpc-port", help="JSON-RPC port of the chain."),
    data_dir: Path = typer.Option(
        None, "--data-dir", help="The devnet's folder. Default: $ANCHORML_DATA_DIR (~/.anchorml)."
    ),
) -> None:
    """Run the whole devnet in the foreground until Ctrl-C."""
    options = UpOptions(
        data_dir=(data_dir or Settings().data_dir).expanduser().resolve(),
        chain=chain,
        store=store,
        workers=workers,
        gateway_port=port,
        rpc_port=rpc_port,
    )
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_stopped)
    net: Devnet | None = None
    supervisor: Supervisor | None = None
    started = time.monotonic()
    try:
        preflight(options)
        net = Devnet(
            options.data_dir,
            chain,
            store,
            host=options.host,
            rpc_port=rpc_port,
            keep=chain == "anvil",
            demo_cache=options.data_dir / "demo-models",
        )
        net.start()
        assert net.chain is not None
        if chain == "embedded":
            _say(f"chain: embedded eth-tester on {net.url} (chain id {net.chain.chain_id})")
            _say("  [yellow]its state lives in this process: stopping `anchorml up` discards it[/]")
        else:
            _say(
                f"chain: anvil on {net.url} (chain id {net.chain.chain_id}), "
                f"state kept in {options.data_dir / 'anvil-state.json'}"
            )
        _say(
            f"contracts {'reused (kept chain)' if net.reused else 'deployed'}: "
            f"{net.deployment_path}"
        )
        refs = _publish_demo_models(net)
        supervisor = Supervisor(net)
        supervisor.start_workers(workers, refs, gateway=ADMIN)
        # the devnet's workers listen on loopback over plain http: allowed here only
        gateway = supervisor.start_gateway(
            ADMIN, options.host, port, allow_private_workers="true", **DEVNET_BUDGETS
        )
        supervisor.wait_workers()
        _print_welcome(net, gateway, refs, time.monotonic() - started)
        while not (exited := supervisor.exited()):
            time.sleep(1.0)
        for name, code in exited:
            _say(f"[red]{name} exited ({code}); see {supervisor.log_path(name)}[/]")
    except (KeyboardInterrupt, _Stopped):
        pass
    except BrokenPipeError:  # whoever read our output is gone (see _say): stop everything
        _silence_stdout()
    finally:
        for sig in (signal.SIGINT, *STOP_SIGNALS):  # a second Ctrl-C must not cut the cleanup
            signal.signal(sig, signal.SIG_IGN)
        killed = supervisor.stop() if supervisor is not None else []
        killed += net.stop() if net is not None else []
        _say("stopping …", stopping=True)
        if killed:
            _say(f"[yellow]had to kill: {', '.join(killed)}[/]", stopping=True)
        _say("stopped.", stopping=True)


def _say(text: str, *, stopping: bool = False) -> None:
    """Print a line. A closed stdout (a stopped pipe, a closed terminal) means whoever watched
    is gone: raise BrokenPipeError to stop everything, or, once ``stopping``, carry on quietly.
    """
    try:
        console.print(text)
    except OSError:  # BrokenPipeError, or EIO from a hung-up terminal
        _silence_stdout()
        if not stopping:
            raise BrokenPipeError(f"stdout is closed: {text[:40]!r}") from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the buffered rest (flushed at exit) fails nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


#: What the devnet gateway may spend on jobs it pays for, per caller and in total per day: devnet
#: ether is free, so more than the (small) defaults a public gateway runs with.
DEVNET_BUDGETS = {
    "sponsor_daily_wei_per_caller": str(10**18),
    "sponsor_daily_wei_total": str(10**19),
}


def _publish_demo_models(net: Devnet) -> list[str]:
    """Publish the demo models with progress bars (built once, then cached); grant the gated
    one to the dev user; return their refs."""
    refs = []
    for model in DEMO_MODELS:
        refs.append(f"{model.name}@v1")
        if net.sdk(OWNER).models.exists(model.name, "v1"):
            continue
        _say(f"[bold]importing {model.name}[/] ({model.access.name.lower()})")
        with Progress(
            "  {task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("adding to store", total=None)

            def advance(n: int, t: TaskID = task) -> None:
                bar.advance(t, n)

            def total(n: int, t: TaskID = task) -> None:
                bar.update(t, total=n)

            result = net.publish_demo(model, progress=advance, total=total)
        if result is not None:
            _say(f"  {model.name}@v1 -> {result.cid}")
    net.grant("minilm-gated", USER)
    return refs


def _print_welcome(net: Devnet, gateway: str, refs: list[str], took: float) -> None:
    user_key = KEYS[USER]
    user = net.address(USER)
    _say(f"\n[bold green]anchorml devnet is up[/] (ready in {took:.0f} s)\n")
    _say(f"  gateway    {gateway}   (dashboard: {gateway}/, OpenAPI: {gateway}/docs)")
    _say(f"  JSON-RPC   {net.url}")
    _say(f"  models     {', '.join(refs)}   (minilm-gated: allowlist, granted to {user})")
    _say(f"  data       {net.root}")
    _say("\ndev accounts (well-known keys — never use for real funds):")
    roles = {ADMIN: "admin", OWNER: "owns the models", USER: "granted minilm-gated"}
    for i, key in enumerate(KEYS[:3]):
        _say(f"  ({i}) {net.address(i)}  {key}  {roles.get(i, '')}")
    _say("\n[bold]try it[/] (in another shell):\n")
    if sys.prefix != sys.base_prefix:  # the openai client and this CLI live in the venv
        _say(f"  source {Path(sys.prefix) / 'bin' / 'activate'}\n")
    # The devnet folder is what every command reads as $ANCHORML_DATA_DIR (deployment.json,
    # store/): export it, and only what differs from the defaults.
    exports = [f"ANCHORML_DATA_DIR={net.root}", f"ANCHORML_PRIVATE_KEY={user_key}"]
    if net.url != DEFAULT_RPC_URL:
        exports.append(f"ANCHORML_RPC_URL={net.url}")
    if net.store_spec != str(net.root / "store"):
        exports.append(f"ANCHORML_STORE={net.store_spec}")
    _say(f"""  curl -s {gateway}/v1/embeddings -H 'Content-Type: application/json' \\
       -d '{{"model": "minilm", "input": ["hello world"]}}' | head -c 300

  python - <<'PY'
  from openai import OpenAI
  client = OpenAI(base_url="{gateway}/v1", api_key="unused")
  reply = client.chat.completions.create(model="smollm2-chat",
      messages=[{{"role": "user", "content": "Say hi in five words."}}], max_tokens=20)
  print(reply.choices[0].message.content)
  PY

  export {" ".join(exports)}
  anchorml model list
  anchorml auth token --ttl 1d      # bearer token for minilm-gated
  anchorml demo                     # the whole story, tx by tx
""")
    _say("Ctrl-C stops every part.")
