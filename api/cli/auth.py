"""`anchorml auth token`: mint a gateway bearer token from your key (no chain access needed)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from api.cli.common import settings
from registry.auth import mint_token, parse_ttl
from registry.chain.connection import load_account

app = typer.Typer(help="Gateway credentials.", no_args_is_help=True)


@app.command()
def token(
    ttl: Annotated[
        str, typer.Option("--ttl", help="Lifetime: seconds or 30m, 12h, 1d, 2w.")
    ] = "1d",
    key_file: Annotated[Path | None, typer.Option("--key-file", help="Private key file.")] = None,
) -> None:
    """Print a bearer token for your address (key: $ANCHORML_PRIVATE_KEY or --key-file).

    Use it as ``Authorization: Bearer <token>``; the gateway recovers your address from it and
    checks on chain which models you may use. Only the token is printed.
    """
    seconds = parse_ttl(ttl)
    cfg = settings(key_file=key_file)
    key = cfg.private_key.get_secret_value() if cfg.private_key and not key_file else None
    account = load_account(key, str(cfg.key_file) if cfg.key_file else None)
    sys.stdout.write(mint_token(account, seconds) + "\n")
