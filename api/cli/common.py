"""Helpers shared by the CLI command groups: settings from options, consoles, output."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from registry.config import Settings
from registry.sdk import Anchorml

#: stdout is for results (CIDs, ids, JSON); progress and messages go to stderr.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

RpcOption = typer.Option(None, "--rpc", help="JSON-RPC URL (default: $ANCHORML_RPC_URL).")
KeyFileOption = typer.Option(None, "--key-file", help="File holding the private key.")
DeploymentOption = typer.Option(
    None, "--deployment", help="Deployment file (default: $ANCHORML_DEPLOYMENT)."
)
JsonOption = typer.Option(False, "--json", help="Print JSON for scripts.")


def settings(
    rpc: str | None = None, key_file: Path | None = None, deployment: Path | None = None
) -> Settings:
    """Settings from the environment, with command-line overrides applied."""
    overrides: dict[str, Any] = {}
    if rpc:
        overrides["rpc_url"] = rpc
    if key_file:
        overrides["key_file"] = key_file
    if deployment:
        overrides["deployment"] = deployment
    return Settings(**overrides)


def connect(
    rpc: str | None = None,
    key_file: Path | None = None,
    deployment: Path | None = None,
    *,
    signer: bool = True,
) -> Anchorml:
    """A connected SDK client for a command."""
    return Anchorml.from_settings(settings(rpc, key_file, deployment), signer=signer)


def to_jsonable(value: Any) -> Any:
    """Records → JSON-friendly values (bytes as 0x-hex, enums by name)."""
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if hasattr(value, "name") and hasattr(value, "value") and isinstance(value.value, int):
        return value.name.lower()
    return value


def print_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout."""
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2) + "\n")
