"""Entry point of the `anchorml` console script.

Each command group lives in its own module of this package and is mounted here. Errors from the
SDK are printed as one line naming the problem (never a stack trace) and exit with status 1.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from registry.errors import AnchormlError


class _App(typer.Typer):
    """Typer app that turns anchorml errors into one-line messages."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except AnchormlError as exc:
            sys.stderr.write(f"error: {exc.message}\n")
            sys.exit(1)


app = _App(
    name="anchorml",
    help="Blockchain-anchored model registry and inference network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _mount() -> None:
    """Mount the command groups (imported here to keep start-up of each group independent)."""
    from api.cli import access, chain, contracts, job, model, node, store

    app.add_typer(contracts.app, name="contracts")
    app.add_typer(store.app, name="store")
    app.add_typer(chain.app, name="chain")
    app.add_typer(model.app, name="model")
    app.add_typer(access.app, name="access")
    app.add_typer(node.app, name="node")
    app.add_typer(job.app, name="job")


_mount()
