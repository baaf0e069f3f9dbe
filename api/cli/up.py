"""`anchorml up`: start the embedded devnet (chain, store, contracts, demo models, workers,
gateway) and stop every part on Ctrl-C."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import typer
from eth_account import Account
from rich.console import Console

from api.up import ADMIN_KEY, OWNER_KEY, USER_KEY, Devnet, UpOptions
from registry.chain.connection import dev_keys
from registry.config import Settings

console = Console(highlight=False, soft_wrap=True)


def up(
    chain: str = typer.Option("embedded", "--chain", help="embedded (eth-tester) | anvil"),
    store: str = typer.Option(None, "--store", help="IPFS RPC URL (default: embedded store)."),
    workers: int = typer.Option(2, "--workers", min=1, max=5, help="Worker nodes to start."),
    port: int = typer.Option(8000, "--port", help="Gateway port."),
    rpc_port: int = typer.Option(8545, "--rpc-port", help="JSON-RPC port of the chain."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Default: $ANCHORML_DATA_DIR/devnet."),
) -> None:
    """Run the whole devnet in the foreground until Ctrl-C."""
    options = UpOptions(
        data_dir=(data_dir or Settings().data_dir / "devnet").expanduser().resolve(),
        chain=chain,
        store=store,
        workers=workers,
        gateway_port=port,
        rpc_port=rpc_port,
    )
    net = Devnet(options, console)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.monotonic()
    try:
        net.preflight()
        net.start_chain()
        assert net.chain is not None
        if chain == "embedded":
            console.print(
                f"chain: embedded eth-tester on {net.rpc_url} (chain id {net.chain.chain_id})"
            )
            console.print(
                "  [yellow]its state lives in this process: stopping `anchorml up` discards it[/]"
            )
        else:
            console.print(
                f"chain: anvil on {net.rpc_url} (chain id {net.chain.chain_id}), "
                f"state kept in {options.data_dir / 'anvil-state.json'}"
            )
        deployment, reused = net.deploy()
        console.print(f"contracts {'reused (kept chain)' if reused else 'deployed'}: {deployment}")
        refs = net.import_models()
        net.start_workers(refs)
        gateway = net.start_gateway()
        net.wait_workers()
        _print_welcome(net, gateway, refs, time.monotonic() - started)
        while not stop.is_set():
            for name, proc in net.children:
                if proc.poll() is not None:
                    console.print(
                        f"[red]{name} exited ({proc.returncode}); see "
                        f"{options.data_dir / (name + '.log')}[/]"
                    )
                    stop.set()
            stop.wait(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup
        console.print("stopping …")
        killed = net.stop()
        if killed:
            console.print(f"[yellow]had to kill: {', '.join(killed)}[/]")
        console.print("stopped.")


def _print_welcome(net: Devnet, gateway: str, refs: list[str], took: float) -> None:
    user_key = dev_keys()[USER_KEY]
    user = Account.from_key(user_key).address
    s = net.settings(None)
    console.print(f"\n[bold green]anchorml devnet is up[/] (ready in {took:.0f} s)\n")
    console.print(f"  gateway    {gateway}   (dashboard: {gateway}/, OpenAPI: {gateway}/docs)")
    console.print(f"  JSON-RPC   {net.rpc_url}")
    console.print(f"  models     {', '.join(refs)}   (minilm-gated: allowlist, granted to {user})")
    console.print(f"  data       {net.options.data_dir}")
    console.print("\ndev accounts (well-known keys — never use for real funds):")
    roles = {ADMIN_KEY: "admin", OWNER_KEY: "owns the models", USER_KEY: "granted minilm-gated"}
    for i, key in enumerate(dev_keys()[:3]):
        console.print(f"  ({i}) {Account.from_key(key).address}  {key}  {roles.get(i, '')}")
    console.print("\n[bold]try it[/] (in another shell):\n")
    if sys.prefix != sys.base_prefix:  # the openai client and this CLI live in the venv
        console.print(f"  source {Path(sys.prefix) / 'bin' / 'activate'}\n")
    console.print(f"""  curl -s {gateway}/v1/embeddings -H 'Content-Type: application/json' \\
       -d '{{"model": "minilm", "input": ["hello world"]}}' | head -c 300

  python - <<'PY'
  from openai import OpenAI
  client = OpenAI(base_url="{gateway}/v1", api_key="unused")
  reply = client.chat.completions.create(model="smollm2-chat",
      messages=[{{"role": "user", "content": "Say hi in five words."}}], max_tokens=20)
  print(reply.choices[0].message.content)
  PY

  export ANCHORML_RPC_URL={net.rpc_url} ANCHORML_STORE={s.store_spec} \\
         ANCHORML_DEPLOYMENT={s.deployment_path} ANCHORML_PRIVATE_KEY={user_key} \\
         ANCHORML_DATA_DIR={net.options.data_dir}
  anchorml model list
  anchorml auth token --ttl 1d      # bearer token for minilm-gated
  anchorml demo                     # the whole story, tx by tx
""")
    console.print("Ctrl-C stops every part.")
