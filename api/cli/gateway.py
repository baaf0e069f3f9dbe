"""`anchorml gateway`: serve the HTTP gateway (OpenAI-compatible API, registry, jobs, dashboard)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli.common import connect, err


def serve(
    config: Annotated[
        Path | None, typer.Option("--config", help="gateway.toml (ANCHORML_GATEWAY_* overrides).")
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Interface (127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (8000).")] = None,
    inprocess: Annotated[
        bool | None,
        typer.Option("--inprocess/--no-inprocess", help="Run models here when no worker does."),
    ] = None,
    rpc: Annotated[str | None, typer.Option("--rpc", help="JSON-RPC URL.")] = None,
    key_file: Annotated[Path | None, typer.Option("--key-file", help="Private key file.")] = None,
    deployment: Annotated[
        Path | None, typer.Option("--deployment", help="Deployment file.")
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Serve the gateway until Ctrl-C.

    Chain, store and key come from ANCHORML_RPC_URL, ANCHORML_STORE, ANCHORML_DEPLOYMENT and
    ANCHORML_PRIVATE_KEY (the key signs jobs the gateway creates; without one, on-chain
    requests and job creation answer 503).
    """
    import logging

    import uvicorn

    from api.gateway.app import create_app
    from api.gateway.config import load_config
    from node.serving import freeze_gc_after_loads, retain_freed_memory

    retain_freed_memory()
    cfg = load_config(config, host=host, port=port, inprocess=inprocess)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    for noisy in ("web3", "urllib3", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sdk = connect(rpc, key_file, deployment)
    app = create_app(cfg, sdk)
    freeze_gc_after_loads()
    err.print(f"gateway on http://{cfg.host}:{cfg.port}  (dashboard /, API docs /docs)")
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=log_level.lower(), access_log=False)
