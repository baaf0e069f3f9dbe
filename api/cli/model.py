"""`anchorml model push|pull|list|show|alias|revoke|servers`.

``push`` checks its local input — the options, the directory and what loading it could run
(pickle weights, remote code: :mod:`registry.model.safety`) — before it connects, so a bad
directory is named even with no chain running.
"""

from __future__ import annotations

from pathlib import Path

import typer
from eth_utils import is_address, to_checksum_address
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from api.cli.common import (
    DeploymentOption,
    JsonOption,
    KeyFileOption,
    RpcOption,
    connect,
    err,
    out,
    print_json,
)
from registry.clients import Access
from registry.clients.models import encode_license
from registry.errors import ConfigError
from registry.model.manifest import model_files
from registry.model.package import ModelCache, export_tree, push, read_manifest
from registry.model.safety import check_model_dir

app = typer.Typer(help="Push, pull and manage model versions.", no_args_is_help=True)


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    )


@app.command("push")
def push_cmd(
    directory: Path = typer.Argument(..., help="Model directory (Hugging Face layout)."),
    name: str = typer.Option(..., "--name", help="Model name."),
    version: str = typer.Option(..., "--version", help="Version tag."),
    access: str = typer.Option(
        "public", "--access", help="public | allowlist | paid (new models)."
    ),
    price: int = typer.Option(0, "--price", help="Price in wei of one access period (paid)."),
    period: int = typer.Option(0, "--period", help="Seconds one purchase buys (paid)."),
    parent: str = typer.Option(None, "--parent", help="Parent version, NAME@VERSION."),
    license: str = typer.Option("", "--license", help="Licence id (≤ 22 bytes)."),
    rpc: str = RpcOption,
    key_file: Path = KeyFileOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Validate, upload and register a model directory as NAME@VERSION."""
    try:
        policy = Access[access.upper()]
    except KeyError:
        raise ConfigError(f"--access must be public, allowlist or paid, not {access!r}") from None
    if policy is Access.PAID and period == 0:
        period = 86_400
    encode_license(license)
    check_model_dir(directory)  # local input first: no network before the directory is known good
    total = sum(path.stat().st_size for path in model_files(directory))
    sdk = connect(rpc, key_file, deployment)
    with _progress() as bar:
        task = bar.add_task(f"adding {directory.name}", total=total or None)
        result = push(
            sdk,
            directory,
            name,
            version,
            access=policy,
            price_wei=price,
            period_s=period,
            parent=parent,
            license=license,
            progress=lambda n: bar.advance(task, n),
        )
    out.print(f"{result.name}@{result.version}")
    out.print(f"cid {result.cid}")
    out.print(f"tx {result.tx_hash}")


@app.command("pull")
def pull_cmd(
    ref: str = typer.Argument(..., help="NAME, NAME@VERSION or NAME@ALIAS."),
    out_dir: Path = typer.Argument(None, help="Copy the verified model here (optional)."),
    rpc: str = RpcOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Fetch a version into the shared cache, verified against chain and manifest."""
    sdk = connect(rpc, None, deployment, signer=False)
    version = sdk.models.resolve(ref)
    cache = ModelCache(sdk.settings.cache_dir, sdk.store)
    manifest = read_manifest(sdk.store, version)
    with _progress() as bar:
        task = bar.add_task(f"pulling {ref}", total=manifest.total_size)
        path = cache.ensure(version, progress=lambda n: bar.advance(task, n))
    if out_dir is not None:
        path = export_tree(path, out_dir)
    out.print(str(path))


@app.command("list")
def list_cmd(
    name: str = typer.Argument(None, help="List this model's versions instead of all models."),
    as_json: bool = JsonOption,
    rpc: str = RpcOption,
    deployment: Path = DeploymentOption,
) -> None:
    """List models, or the versions of one model."""
    sdk = connect(rpc, None, deployment, signer=False)
    if name is None:
        models = sdk.models.list_models()
        if as_json:
            print_json(models)
            return
        table = Table("name", "owner", "access", "price (wei)")
        for m in models:
            table.add_row(m.name, m.owner, m.access.name.lower(), str(m.price_wei))
        out.print(table)
        return
    versions = sdk.models.list_versions(name)
    if as_json:
        print_json([{**_version_dict(v)} for v in versions])
        return
    table = Table("version", "cid", "parent", "job", "licence", "revoked")
    for v in versions:
        table.add_row(
            v.tag,
            v.cid,
            "0x" + v.parent.hex()[:12] if v.parent else "-",
            str(v.job_id or "-"),
            v.license or "-",
            "yes" if v.revoked else "",
        )
    out.print(table)


def _version_dict(v: object) -> dict[str, object]:
    from api.cli.common import to_jsonable

    data = to_jsonable(v)
    assert isinstance(data, dict)
    data["cid"] = getattr(v, "cid")  # noqa: B009 - a property, not in asdict()
    data.pop("content", None)
    return data


@app.command("show")
def show_cmd(
    ref: str = typer.Argument(..., help="NAME, NAME@VERSION or NAME@ALIAS."),
    rpc: str = RpcOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Show a version's on-chain record and manifest as JSON."""
    sdk = connect(rpc, None, deployment, signer=False)
    version = sdk.models.resolve(ref)
    manifest = read_manifest(sdk.store, version)
    print_json({"version": _version_dict(version), "manifest": manifest})


@app.command("alias")
def alias_cmd(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias, e.g. prod."),
    version: str = typer.Argument(None, help="Version to point at (omit with --rollback)."),
    rollback: bool = typer.Option(False, "--rollback", help="Move the alias back."),
    rpc: str = RpcOption,
    key_file: Path = KeyFileOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Point an alias at a version, or roll it back to its previous target."""
    sdk = connect(rpc, key_file, deployment)
    if rollback:
        result = sdk.models.rollback_alias(name, alias)
    elif version:
        result = sdk.models.set_alias(name, alias, version)
    else:
        raise ConfigError("give a VERSION to point the alias at, or --rollback")
    target = sdk.models.resolve(f"{name}@{alias}")
    out.print(f"{name}@{alias} -> {target.tag}  tx {result.tx_hash}")


@app.command("revoke")
def revoke_cmd(
    ref: str = typer.Argument(..., help="NAME@VERSION to revoke."),
    rpc: str = RpcOption,
    key_file: Path = KeyFileOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Revoke a version: it stays on record but is no longer served."""
    name, _, tag = ref.partition("@")
    if not tag:
        raise ConfigError("revoke needs NAME@VERSION")
    result = connect(rpc, key_file, deployment).models.revoke_version(name, tag)
    out.print(f"revoked {ref}  tx {result.tx_hash}")


def _addresses(values: list[str] | None, option: str) -> list[str]:
    """Checksummed addresses given with ``option`` (a bad one is a one-line local error)."""
    out_list: list[str] = []
    for value in values or []:
        if not is_address(value):
            raise ConfigError(f"{option} takes a 0x address, not {value!r}")
        out_list.append(to_checksum_address(value))
    return out_list


@app.command("servers")
def servers_cmd(
    name: str = typer.Argument(..., help="Model name."),
    restrict: bool = typer.Option(
        None, "--restrict/--open", help="Only allowed nodes may serve / every node may serve."
    ),
    allow: list[str] = typer.Option(None, "--allow", help="Allow this node address (repeatable)."),
    deny: list[str] = typer.Option(None, "--deny", help="Stop allowing this node (repeatable)."),
    as_json: bool = JsonOption,
    rpc: str = RpcOption,
    key_file: Path = KeyFileOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Show or change which nodes may serve a model (owner only to change).

    Allowed nodes are added before a restriction takes effect, so restricting and allowing in
    one call never leaves the model with no server in between.
    """
    allowed, denied = _addresses(allow, "--allow"), _addresses(deny, "--deny")
    changes = restrict is not None or allowed or denied
    sdk = connect(rpc, key_file if changes else None, deployment, signer=bool(changes))
    sdk.models.get_model(name)  # ModelNotFoundError before any transaction
    if allowed:
        tx = sdk.models.set_servers(name, allowed, True).tx_hash
        err.print(f"allowed {', '.join(allowed)}  tx {tx}")
    if denied:
        tx = sdk.models.set_servers(name, denied, False).tx_hash
        err.print(f"denied {', '.join(denied)}  tx {tx}")
    if restrict is not None:
        tx = sdk.models.set_server_restriction(name, restrict).tx_hash
        err.print(f"{'restricted' if restrict else 'opened'} {name}  tx {tx}")
    restricted = sdk.models.servers_restricted(name)
    servers = sdk.models.allowed_servers(name)
    if as_json:
        print_json({"model": name, "restricted": restricted, "servers": servers})
        return
    policy = "restricted to its allowed nodes" if restricted else "any node may serve"
    out.print(f"{name}: {policy}")
    for node in servers:
        out.print(f"  {node}")
