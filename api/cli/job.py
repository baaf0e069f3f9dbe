"""`anchorml job submit|status|list|result`.

``submit`` checks the job before it connects (kind, params JSON, input file) and again, with the
model's manifest at hand, before it uploads or escrows anything: a job no worker would take is
refused with one line naming the option to fix. ``--wait`` shows each status change and ends when
the job settles; a job still undelivered at its deadline is expired (the reward refunded) and
the command exits non-zero.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

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
from registry.clients import JobStatus
from registry.errors import ConfigError
from registry.jobs import (
    LABELS,
    InvalidJobKindError,
    InvalidJobParamsError,
    JobError,
    JobKind,
    JobNotFinalizedError,
    check_job,
    fetch_result,
    read_input,
    submit,
    wait_settled,
)

app = typer.Typer(help="Post jobs and follow them.", no_args_is_help=True)

#: The option that fixes each job protocol error.
_OPTION = {InvalidJobKindError: "--kind", InvalidJobParamsError: "--params"}
#: Seconds --wait keeps going past the deadline (the chain's clock may trail the wall's).
WAIT_GRACE_S = 120


def _refuse(exc: JobError) -> NoReturn:
    """Re-raise a job protocol error naming the command-line option that fixes it."""
    option = _OPTION.get(type(exc), "--input")
    raise ConfigError(f"{exc.message} (fix {option})") from None


def _params(text: str) -> dict[str, object]:
    raw = Path(text[1:]).read_text() if text.startswith("@") else text
    try:
        params = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"--params is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise ConfigError("--params must be a JSON object")
    return params


@app.command("submit")
def submit_cmd(
    kind: str = typer.Option(..., "--kind", help=" | ".join(LABELS)),
    model: str = typer.Option(..., "--model", help="NAME@VERSION (or @alias)."),
    input_path: Path = typer.Option(..., "--input", help="Input file."),
    reward: int = typer.Option(..., "--reward", help="Reward in wei, escrowed."),
    params: str = typer.Option(
        None,
        "--params",
        help="Params as JSON, or @file.json (infer: the task comes from the model if left out).",
    ),
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
    """Check the job, upload the input and params, and post it with an escrowed reward."""
    try:
        job_kind = JobKind.parse(kind)
        params_obj = _params(params) if params is not None else {}
        data = read_input(input_path)
        if not (job_kind is JobKind.INFER and "task" not in params_obj):
            check_job(job_kind, params_obj, data)  # before connecting: no chain needed to refuse
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
    except JobError as exc:
        _refuse(exc)
    out.print(f"job {posted.job_id}")
    out.print(f"input {posted.input_cid}")
    out.print(f"tx {posted.tx_hash}")
    if not wait:
        return
    record = wait_settled(
        sdk,
        posted.job_id,
        timeout=float(deadline + WAIT_GRACE_S),
        on_status=lambda status: err.print(f"job {posted.job_id}: {status.name.lower()}"),
        expire_at=posted.deadline,
    )
    if record.status is JobStatus.EXPIRED:
        raise JobNotFinalizedError(
            f"job {posted.job_id} expired without an accepted result; its reward of "
            f"{record.reward_wei} wei was refunded to your withdrawable balance"
        )
    if record.status is JobStatus.CANCELLED:
        raise JobNotFinalizedError(f"job {posted.job_id} was cancelled; its reward was refunded")
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
        "kind": record.spec.kind.label,
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
                "kind": r.spec.kind.label,
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
