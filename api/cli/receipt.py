"""`anchorml receipt verify|challenge|status|resolve`: check a saved answer from the chain, and
challenge a wrong one.

``verify FILE`` reads an answer saved as JSON (the gateway's body, or what the ``openai`` client
returned, ``response.model_dump()``), prints who answered, with which weights, whether that node
was staked and serving the version at the time, and whether request and response match; the
first problem found ends the command with one line and exit status 1. ``challenge FILE`` pins the
re-execution input and escrows the fee; ``status`` and ``resolve`` follow the challenge.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from api.cli.common import (
    DeploymentOption,
    JsonOption,
    KeyFileOption,
    RpcOption,
    connect,
    out,
    print_json,
)
from registry.errors import ConfigError
from registry.receipts.challenge import file_challenge
from registry.receipts.verify import ReceiptReport, split_answer, verify_answer

app = typer.Typer(help="Verify and challenge signed answers.", no_args_is_help=True)

ReceiptOption = typer.Option(
    None, "--receipt", help="The anchorml-receipt header value, if saved apart from the body."
)


def _load(path: Path) -> dict[str, Any]:
    try:
        answer = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"{path} is not a JSON answer") from None
    if not isinstance(answer, dict):
        raise ConfigError(f"{path} is not a JSON object")
    return answer


def _yes(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "NO"


def _rows(report: ReceiptReport) -> list[tuple[str, str]]:
    receipt, node, weights = report.signed.receipt, report.node, report.weights
    at = f"block {node.block}" if node.block is not None else "before deployment"
    if not node.historical:
        at = f"now (block {node.block})"
    rows = [
        ("signer", report.signer),
        ("endpoint", report.endpoint),
        ("model", (weights.ref if weights else None) or "0x" + receipt.version_id.hex()),
        ("cid", weights.cid if weights else "unknown version"),
        ("manifest sha256", "0x" + weights.manifest_sha256.hex() if weights else "-"),
        ("issued at", f"{receipt.issued_at} (state read at {at})"),
        ("registered", _yes(node.registered)),
        ("staked", f"{_yes(node.eligible)} ({node.stake_wei} wei)"),
        ("serving the version", _yes(node.serving)),
        ("request matches", _yes(report.request_matches)),
        ("response matches", _yes(report.response_matches)),
        ("deterministic", _yes(report.deterministic)),
    ]
    if node.may_serve is not None:
        rows.insert(9, ("allowed by the owner", _yes(node.may_serve)))
    return rows


@app.command("verify")
def verify_cmd(
    path: Path = typer.Argument(..., help="The saved answer (JSON)."),
    receipt: str = ReceiptOption,
    as_json: bool = JsonOption,
    rpc: str = RpcOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Check a saved answer's receipt against the chain (exit 1 if anything fails)."""
    answer = _load(path)
    sdk = connect(rpc, None, deployment, signer=False)
    report = verify_answer(sdk, answer, receipt)
    if as_json:
        print_json(
            {
                **dict(_rows(report)),
                "ok": report.ok,
                "notes": list(report.notes),
                "problems": [{"code": p.code, "message": p.message} for p in report.problems],
            }
        )
    else:
        table = Table("", "", show_header=False, box=None)
        for key, value in _rows(report):
            table.add_row(key, value)
        out.print(table)
        for note in report.notes:
            out.print(f"note: {note}")
    report.raise_for_problems()
    if not as_json:
        out.print("verified")


@app.command("challenge")
def challenge_cmd(
    path: Path = typer.Argument(..., help="The saved answer (JSON)."),
    receipt: str = ReceiptOption,
    fee: int = typer.Option(None, "--fee", help="Wei to escrow (default: the contract's fee)."),
    rpc: str = RpcOption,
    key_file: Path = KeyFileOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Challenge a saved answer on chain: its request is re-executed by other nodes."""
    saved = split_answer(_load(path), receipt)
    sdk = connect(rpc, key_file, deployment)
    filed = file_challenge(sdk, saved.signed, saved.request, saved.response, fee)
    out.print(f"challenge {filed.challenge_id}")
    out.print(f"job {filed.job_id}")
    out.print(f"input {filed.input_cid}")


@app.command("status")
def status_cmd(
    challenge_id: int = typer.Argument(...),
    rpc: str = RpcOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Print a challenge's state as JSON."""
    sdk = connect(rpc, None, deployment, signer=False)
    found = sdk.challenges.get(challenge_id)
    job = sdk.jobs.get_job(found.job_id)
    print_json({**vars(found), "job_status": job.status})


@app.command("resolve")
def resolve_cmd(
    challenge_id: int = typer.Argument(...),
    rpc: str = RpcOption,
    key_file: Path = KeyFileOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Settle a challenge whose re-execution job settled: slash, dismiss or refund."""
    sdk = connect(rpc, key_file, deployment)
    result = sdk.challenges.resolve(challenge_id)
    out.print(f"outcome {result.value.name.lower()}")
    out.print(f"tx {result.tx_hash}")
