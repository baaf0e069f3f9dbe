"""``anchorml store``: add, read and move content in the content store.

The store is ``--store`` if given, else ``$ANCHORML_STORE``, else ``$ANCHORML_DATA_DIR/store``
(an embedded store under ``~/.anchorml`` by default); an ``http(s)://`` URL selects an IPFS
daemon's RPC API. Stdout carries only results (CIDs, file bytes) so commands compose in
scripts; progress bars go to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from registry.store import AddedEntry, ContentStore, open_store
from registry.store.builder import ProgressFn, tree_size

app = typer.Typer(
    name="store",
    help="Content store (IPFS-compatible): add, cat, get, export/import CAR, pin.",
    no_args_is_help=True,
)

_err = Console(stderr=True)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Embedded store directory or IPFS API URL (default: $ANCHORML_STORE, "
        "else $ANCHORML_DATA_DIR/store).",
        show_default=False,
    ),
]


@contextmanager
def _store(spec: str | None) -> Iterator[ContentStore]:
    store = open_store(spec)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[ProgressFn]:
    """A byte-count progress bar on stderr (silent when stderr is not a terminal)."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=_err,
        transient=True,
        disable=not _err.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@app.command()
def add(
    path: Annotated[Path, typer.Argument(help="File or directory to add.", show_default=False)],
    only_hash: Annotated[
        bool, typer.Option("--only-hash", "-n", help="Compute the CID; store nothing.")
    ] = False,
    hidden: Annotated[
        bool, typer.Option("--hidden", help="Include names starting with '.' in directories.")
    ] = False,
    store: StoreOption = None,
) -> None:
    """Add a file or a directory tree; print its CID.

    For a directory, each entry is printed as "CID PATH" as it is added, and the last line is
    the root CID alone.
    """
    is_dir = path.is_dir()

    def on_entry(entry: AddedEntry) -> None:
        if is_dir and entry.path != path.name:
            _out(f"{entry.cid} {entry.path}")

    with (
        _store(store) as content,
        _progress(f"adding {path.name}", tree_size(path, include_hidden=hidden)) as tick,
    ):
        cid = content.add_path(
            path, only_hash=only_hash, include_hidden=hidden, on_entry=on_entry, progress=tick
        )
    _out(str(cid))


@app.command()
def cat(
    cid: Annotated[str, typer.Argument(help="CID of a file.", show_default=False)],
    store: StoreOption = None,
) -> None:
    """Write a file's content to stdout (every block verified)."""
    with _store(store) as content:
        total = content.stat(cid).size
        out = sys.stdout.buffer
        with _progress("reading", total) as tick:
            for piece in content.cat(cid):
                out.write(piece)
                tick(len(piece))
        out.flush()


@app.command()
def get(
    cid: Annotated[str, typer.Argument(help="CID of a file or directory.", show_default=False)],
    out: Annotated[Path, typer.Argument(help="Destination path.", show_default=False)],
    store: StoreOption = None,
) -> None:
    """Download a file or directory to OUT (verified, then renamed into place)."""
    with _store(store) as content:
        info = content.stat(cid)
        size = info.size if info.kind == "file" else None
        with _progress(f"getting {out.name}", size) as tick:
            content.get(cid, out, progress=tick)


@app.command("export")
def export_car(
    cid: Annotated[str, typer.Argument(help="Root CID of the DAG.", show_default=False)],
    out: Annotated[Path, typer.Argument(help="CAR file to write.", show_default=False)],
    store: StoreOption = None,
) -> None:
    """Export the DAG under CID as a CARv1 file."""
    with _store(store) as content, _err.status(f"exporting {cid}", spinner="dots"):
        content.export_car(cid, out)


@app.command("import")
def import_car(
    car_file: Annotated[Path, typer.Argument(help="CARv1 file.", show_default=False)],
    pin: Annotated[bool, typer.Option("--pin/--no-pin", help="Pin the roots.")] = True,
    store: StoreOption = None,
) -> None:
    """Import a CARv1 file (every block verified); print each root CID."""
    with _store(store) as content, _err.status(f"importing {car_file.name}", spinner="dots"):
        roots = content.import_car(car_file, pin=pin)
    for root in roots:
        _out(str(root))


@app.command()
def pin(
    cid: Annotated[str, typer.Argument(help="Root CID to pin.", show_default=False)],
    store: StoreOption = None,
) -> None:
    """Pin the DAG under CID (every block must be present)."""
    with _store(store) as content:
        content.pin(cid)
    _out(str(cid))
