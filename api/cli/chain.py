"""`anchorml chain serve`: the embedded eth-tester chain over JSON-RPC."""

from __future__ import annotations

from pathlib import Path

import typer

from api.cli.common import err, out
from registry.chain import deployment as deployment_file
from registry.chain.connection import dev_keys, embedded_chain
from registry.chain.tx import Wallet
from registry.dev.devserver import make_server
from registry.errors import ConfigError

app = typer.Typer(help="Run a local chain.", no_args_is_help=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8545, help="Port to listen on."),
    deploy_to: Path = typer.Option(
        None, "--deploy", help="Also deploy the contracts and write this deployment file."
    ),
) -> None:
    """Serve a fresh in-process eth-tester chain over Ethereum JSON-RPC.

    The chain lives in this process's memory: stopping it discards every block.
    """
    from eth_account import Account

    chain = embedded_chain()
    try:
        server = make_server(chain, host, port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}): pick --port") from None
    if deploy_to is not None:
        dep = deployment_file.deploy(Wallet(chain, Account.from_key(dev_keys()[0])))
        deployment_file.save(dep, deploy_to, force=True)
        err.print(f"contracts deployed; deployment file {deploy_to}")
    out.print(f"embedded chain (eth-tester) on http://{host}:{port}  chain id {chain.chain_id}")
    out.print("state lives in this process only: it is gone when the process stops")
    out.print("funded dev accounts (10000 ETH each; well-known keys, never use for real funds):")
    for i, key in enumerate(dev_keys()):
        out.print(f"  ({i}) {Account.from_key(key).address}  {key}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
