"""`anchorml access grant|revoke|buy|check`."""

from __future__ import annotations

from pathlib import Path

import typer

from api.cli.common import DeploymentOption, KeyFileOption, RpcOption, connect, out

app = typer.Typer(help="Manage who may use a model.", no_args_is_help=True)


@app.command()
def grant(
    name: str = typer.Argument(..., help="Model name."),
    account: str = typer.Argument(..., help="Address to allow."),
    expiry: int = typer.Option(0, "--expiry", help="Unix time the grant ends (0 = never)."),
    rpc: str = RpcOption,
    key_file: Path = KeyFileOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Allow ACCOUNT to use an allowlisted model."""
    result = connect(rpc, key_file, deployment).models.grant_access(name, account, expiry)
    out.print(f"granted {account} on {name}  tx {result.tx_hash}")


@app.command()
def revoke(
    name: str = typer.Argument(..., help="Model name."),
    account: str = typer.Argument(..., help="Address to remove."),
    rpc: str = RpcOption,
    key_file: Path = KeyFileOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Withdraw ACCOUNT's access to a model."""
    result = connect(rpc, key_file, deployment).models.revoke_access(name, account)
    out.print(f"revoked {account} on {name}  tx {result.tx_hash}")


@app.command()
def buy(
    name: str = typer.Argument(..., help="Model name."),
    periods: int = typer.Option(1, "--periods", help="Access periods to buy."),
    rpc: str = RpcOption,
    key_file: Path = KeyFileOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Buy time-limited access to a paid model at its price."""
    sdk = connect(rpc, key_file, deployment)
    result = sdk.models.buy_access(name, periods)
    assert sdk.wallet is not None
    until = sdk.models.access_expiry(name, sdk.wallet.address)
    out.print(f"access to {name} until {until}  tx {result.tx_hash}")


@app.command()
def check(
    name: str = typer.Argument(..., help="Model name."),
    account: str = typer.Argument(..., help="Address to check."),
    rpc: str = RpcOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Print whether ACCOUNT may use the model now (exit 1 if not)."""
    allowed = connect(rpc, None, deployment, signer=False).models.has_access(name, account)
    out.print("yes" if allowed else "no")
    raise typer.Exit(0 if allowed else 1)
