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


@app.callback()
def _root() -> None:
    """Blockchain-anchored model registry and inference network."""
    # A callback keeps `anchorml` a command group even when only one single command is mounted
    # (lazy mounting below); without it Typer runs that command for `anchorml <name>`.


#: Command groups: name → module holding a ``typer.Typer`` called ``app``.
GROUPS = {
    "contracts": "api.cli.contracts",
    "store": "api.cli.store",
    "chain": "api.cli.chain",
    "model": "api.cli.model",
    "access": "api.cli.access",
    "node": "api.cli.node",
    "job": "api.cli.job",
    "auth": "api.cli.auth",
    "receipt": "api.cli.receipt",
}
#: Single commands: name → (module, function).
COMMANDS = {
    "gateway": ("api.cli.gateway", "serve"),
    "up": ("api.cli.up", "up"),
    "demo": ("api.cli.demo", "demo"),
}


def _mount(argv: list[str]) -> None:
    """Mount the command groups. Only the invoked one is imported (start-up stays fast, e.g. for
    ``anchorml store add --only-hash``); help and unknown commands import them all."""
    import importlib

    wanted = next((a for a in argv[1:] if not a.startswith("-")), None)
    lazy = wanted in GROUPS or wanted in COMMANDS
    for name, module in GROUPS.items():
        if not lazy or name == wanted:
            app.add_typer(importlib.import_module(module).app, name=name)
    for name, (module, func) in COMMANDS.items():
        if not lazy or name == wanted:
            app.command(name)(getattr(importlib.import_module(module), func))


_mount(sys.argv)

if __name__ == "__main__":
    app()
