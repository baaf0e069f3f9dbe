"""`anchorml node run`."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Run a worker node.", no_args_is_help=True)


@app.command()
def run(
    config: Path = typer.Option(None, "--config", help="node.toml (values there; env overrides)."),
    name: str = typer.Option(None, "--name", help="Node name (state directory)."),
    serves: list[str] = typer.Option(None, "--serves", help="Model version to serve (repeat)."),
    http_port: int = typer.Option(None, "--http-port", help="HTTP port (0 = any free port)."),
    log_level: str = typer.Option("INFO", "--log-level"),
) -> None:
    """Stake, register and work on jobs until SIGTERM/Ctrl-C."""
    from node.config import load_config
    from node.main import configure_logging, main

    cfg = load_config(config, name=name, serves=serves or None, http_port=http_port)
    configure_logging(log_level)
    main(cfg)
