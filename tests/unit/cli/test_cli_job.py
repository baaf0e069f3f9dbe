"""`anchorml job submit` as a new user types it, against the shared gateway devnet: params and
input are checked against the kind's schema before anything is uploaded or escrowed (an INFER
task is derived from the model's manifest when that is unambiguous), and ``--wait`` shows the
job's status and stops when the job settles or expires."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.clients import JobStatus
from registry.jobs import fetch_params
from support.devnet import REQUESTER
from support.gateway import CHAT, MINILM, GatewayNet

pytestmark = pytest.mark.timeout(600)

ANCHORML = Path(sys.executable).with_name("anchorml")
REWARD = "1000000000000000"


def _submit(net: GatewayNet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ANCHORML), "job", "submit", "--reward", REWARD, *args],
        env=net.devnet.env(REQUESTER),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _doc(tmp_path: Path, name: str, doc: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def _one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _job_id(proc: subprocess.CompletedProcess[str]) -> int:
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("job "), proc.stdout
    return int(first.split()[1])


def test_without_params_the_task_comes_from_the_manifest(
    gateway_net: GatewayNet, tmp_path: Path
) -> None:
    # the README's line: no --params; MiniLM's manifest says feature-extraction → task "embed"
    texts = _doc(tmp_path, "in.json", {"texts": ["a cat", "a dog"]})
    job_id = _job_id(_submit(gateway_net, "--kind", "infer", "--model", MINILM, "--input", texts))
    sdk = gateway_net.sdk(None)
    record = sdk.jobs.get_job(job_id)
    assert json.loads(fetch_params(sdk.store, record.spec.params_hash)) == {"task": "embed"}
    # a chat model's manifest says text-generation: the input's shape picks chat or generate
    chat = _doc(tmp_path, "chat.json", {"messages": [{"role": "user", "content": "hi"}]})
    job_id = _job_id(_submit(gateway_net, "--kind", "infer", "--model", CHAT, "--input", chat))
    record = sdk.jobs.get_job(job_id)
    assert json.loads(fetch_params(sdk.store, record.spec.params_hash)) == {"task": "chat"}


@pytest.mark.parametrize(
    ("model", "params", "doc", "words"),
    [
        # text-generation fits chat and generate; this input names neither: say which option
        (CHAT, None, {"texts": ["x"]}, ("task", "--params")),
        # the params do not validate
        (MINILM, {"task": "embed", "oops": 1}, {"texts": ["x"]}, ("oops", "--params")),
        (MINILM, {"task": "chat"}, {"texts": ["x"]}, ("messages", "--input")),
        # the input does not fit the task
        (MINILM, {"task": "embed"}, {"prompt": "x"}, ("texts", "--input")),
    ],
)
def test_bad_params_or_input_are_refused_before_anything_is_escrowed(
    gateway_net: GatewayNet,
    tmp_path: Path,
    model: str,
    params: dict[str, object] | None,
    doc: object,
    words: tuple[str, ...],
) -> None:
    sdk = gateway_net.sdk(REQUESTER)
    assert sdk.wallet is not None
    before = (sdk.jobs.last_job_id(), sdk.chain.w3.eth.get_balance(sdk.wallet.address))
    args = ["--kind", "infer", "--model", model, "--input", _doc(tmp_path, "in.json", doc)]
    if params is not None:
        args += ["--params", json.dumps(params)]
    _one_line_error(_submit(gateway_net, *args), *words)
    after = (sdk.jobs.last_job_id(), sdk.chain.w3.eth.get_balance(sdk.wallet.address))
    assert after == before  # no job, no escrow, no gas


def test_a_training_input_must_be_text(gateway_net: GatewayNet, tmp_path: Path) -> None:
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\xff\xfe\x00 not text")
    before = gateway_net.sdk(None).jobs.last_job_id()
    proc = _submit(
        gateway_net, "--kind", "eval", "--model", CHAT, "--input", str(binary)
    )  # fmt: skip
    _one_line_error(proc, "UTF-8", "--input")
    assert gateway_net.sdk(None).jobs.last_job_id() == before


def test_wait_shows_the_status_and_stops_when_the_job_expires(
    gateway_net: GatewayNet, tmp_path: Path
) -> None:
    # no worker serves this devnet: the job stays open until its deadline, then --wait expires
    # it (refunding the requester) and exits non-zero with one clear line
    sdk = gateway_net.sdk(REQUESTER)
    texts = _doc(tmp_path, "in.json", {"texts": ["a cat"]})
    args = ["--kind", "infer", "--model", MINILM, "--input", texts, "--deadline", "600"]
    proc = subprocess.Popen(
        [str(ANCHORML), "job", "submit", "--reward", REWARD, *args, "--wait"],
        env=gateway_net.devnet.env(REQUESTER),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        job_id = int(proc.stdout.readline().split()[1])
        assert "open" in proc.stderr.readline()  # the status is shown as soon as it is known
        record = sdk.jobs.get_job(job_id)
        sdk.chain.set_next_timestamp(record.spec.deadline + 1)  # the deadline passes
        sdk.chain.mine(1)
        started = time.monotonic()
        code = proc.wait(timeout=120)
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - started < 60
    assert code == 1, rest
    last = rest.strip().splitlines()[-1]
    assert last.startswith("error: ") and f"job {job_id} expired" in last and "refund" in last
    assert "Traceback" not in rest
    assert sdk.jobs.status(job_id) == JobStatus.EXPIRED
