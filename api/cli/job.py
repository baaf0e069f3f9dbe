"""`anchorml job submit|status|list|result`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
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
from registry.clients import JobKind
from registry.errors import ConfigError
from registry.jobio import fetch_result, submit, wait_settled

app = typer.Typer(help="Post jobs and follow them.", no_args_is_help=True)


@app.command("submit")
def submit_cmd(
    kind: str = typer.Option(..., "--kind", help="infer | train | finetune | eval | compress"),
    model: str = typer.Option(..., "--model", help="NAME@VERSION (or @alias)."),
    input_path: Path = typer.Option(..., "--input", help="Input file or directory."),
    reward: int = typer.Option(..., "--reward", help="Reward in wei, escrowed."),
    params: str = typer.Option("{}", "--params", help="Params as JSON, or @file.json."),
    redundancy: int = typer.Option(1, "--redundancy", help="Nodes that must agree (k)."),
    deadline: int = typer.Option(3600, "--deadline", help="Seconds until refund."),
    lease: int = typer.Option(600, "--lease", help="Seconds a claim lasts."),
    output_model: str = typer.Option(
        None, "--output-model", help="Model that receives the new version."
    ),
    wait: bool = typer.Option(False, "--wait", help="Wait until settled and fetch the result."),
    out_path: Path = typer.Option(None, "--out", help="Where --wait writes the result."),
    rpc: str = RpcOption,
    key_file: Path = KeyFileOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Upload the input and params and post the job with an escrowed reward."""
    try:
        job_kind = JobKind[kind.upper()]
    except KeyError:
        raise ConfigError(f"--kind must be one of {[k.name.lower() for k in JobKind]}") from None
    raw = Path(params[1:]).read_text() if params.startswith("@") else params
    try:
        params_obj = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"--params is not valid JSON: {exc}") from None
    if not isinstance(params_obj, dict):
        raise ConfigError("--params must be a JSON object")
    if not input_path.exists():
        raise ConfigError(f"--input {input_path} does not exist")
    sdk = connect(rpc, key_file, deployment)
    posted = submit(
        sdk,
        job_kind,
        model,
        input_path,
        params=params_obj,
        reward_wei=reward,
        redundancy=redundancy,
        deadline_s=deadline,
        lease_s=lease,
        output_model=output_model,
    )
    out.print(f"job {posted.job_id}")
    out.print(f"input {posted.input_cid}")
    out.print(f"tx {posted.tx_hash}")
    if wait:
        err.print(f"waiting for job {posted.job_id} …")
        record = wait_settled(sdk, posted.job_id, timeout=float(deadline))
        out.print(f"status {record.status.name.lower()}")
        if record.result is not None:
            out.print(f"result {record.result.content.to_cid()}")
            target = out_path or Path(f"job-{posted.job_id}-result")
            fetch_result(sdk.store, record.result, target)
            out.print(f"saved {target}")


@app.command("status")
def status_cmd(
    job_id: int = typer.Argument(...),
    rpc: str = RpcOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Print a job's state as JSON."""
    sdk = connect(rpc, None, deployment, signer=False)
    record = sdk.jobs.get_job(job_id)
    data = {
        "job_id": record.job_id,
        "status": record.status.name.lower(),
        "kind": record.spec.kind.name.lower(),
        "requester": record.requester,
        "reward_wei": record.reward_wei,
        "redundancy": record.spec.redundancy,
        "claims": record.claims,
        "deadline": record.spec.deadline,
        "input": record.spec.input.to_cid(),
        "result": record.result.content.to_cid() if record.result else None,
        "result_sha256": "0x" + record.result.sha256.hex() if record.result else None,
    }
    print_json(data)


@app.command("result")
def result_cmd(
    job_id: int = typer.Argument(...),
    out_path: Path = typer.Argument(..., help="Where to write the verified result."),
    rpc: str = RpcOption,
    deployment: Path = DeploymentOption,
) -> None:
    """Fetch a finalized job's result, verified against the chain."""
    sdk = connect(rpc, None, deployment, signer=False)
    record = sdk.jobs.get_job(job_id)
    if record.result is None:
        raise ConfigError(f"job {job_id} is {record.status.name.lower()}: no result")
    fetch_result(sdk.store, record.result, out_path)
    out.print(str(out_path))


@app.command("list")
def list_cmd(
    as_json: bool = JsonOption,
    rpc: str = RpcOption,
    deployment: Path = DeploymentOption,
) -> None:
    """List every job with its status."""
    sdk = connect(rpc, None, deployment, signer=False)
    rows = []
    for job_id in range(1, sdk.jobs.last_job_id() + 1):
        r = sdk.jobs.get_job(job_id)
        rows.append(
            {
                "job_id": job_id,
                "kind": r.spec.kind.name.lower(),
                "status": r.status.name.lower(),
                "reward_wei": r.reward_wei,
                "redundancy": r.spec.redundancy,
                "result": r.result.content.to_cid() if r.result else None,
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table("job", "kind", "status", "reward (wei)", "k", "result")
    for row in rows:
        table.add_row(
            str(row["job_id"]),
            str(row["kind"]),
            str(row["status"]),
            str(row["reward_wei"]),
            str(row["redundancy"]),
            str(row["result"] or "-"),
        )
    out.print(table)
