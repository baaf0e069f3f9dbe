"""`anchorml contracts build|deploy`."""

from __future__ import annotations

from pathlib import Path

import typer

from api.cli.common import KeyFileOption, err, out, settings
from registry.chain import compiler
from registry.chain import deployment as deployment_file
from registry.chain.connection import connect, load_account
from registry.chain.tx import Wallet

app = typer.Typer(help="Compile and deploy the contracts.", no_args_is_help=True)


@app.command()
def build() -> None:
    """Compile contracts/ with py-solc-x (via solc-js) and rewrite contracts/build/."""
    artifacts = compiler.build()
    for rel in sorted(artifacts):
        out.print(f"wrote {compiler.BUILD_DIR / rel}")
    out.print(f"wrote {compiler.REVERT_ERRORS_MODULE}")


@app.command()
def deploy(
    rpc: str = typer.Option(None, "--rpc", help="JSON-RPC URL (default: $ANCHORML_RPC_URL)."),
    key_file: Path = KeyFileOption,
    out_path: Path = typer.Option(
        None, "--out", help="Deployment file to write (default: $ANCHORML_DEPLOYMENT)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing deployment file."),
) -> None:
    """Deploy ModelRegistry, NodeRegistry, JobBoard and Challenges; write the deployment file."""
    s = settings(rpc, key_file, out_path)
    target = s.deployment_path
    if target.exists() and not force:
        deployment_file.save(deployment_file.load(target), target)  # raises the --force error
    chain = connect(s.rpc_url)
    key = s.private_key.get_secret_value() if s.private_key else None
    wallet = Wallet(chain, load_account(key, str(s.key_file) if s.key_file else None))
    err.print(f"deploying to chain {chain.chain_id} at {s.rpc_url} from {wallet.address} …")
    dep = deployment_file.deploy(wallet)
    deployment_file.save(dep, target, force=force)
    out.print(f"ModelRegistry  {dep.model_registry}")
    out.print(f"NodeRegistry   {dep.node_registry}")
    out.print(f"JobBoard       {dep.job_board}")
    out.print(f"Challenges     {dep.challenges}")
    out.print(f"deployment file {target}")
