"""G2 — schemathesis generates requests from the gateway's own ``/openapi.json`` (valid and
invalid ones) against a real socket: no server error, and every response fits the schema.

Run through schemathesis's CLI (its pytest plugin does not support this pytest), bounded:
``MAX_EXAMPLES`` per operation, a fixed seed, no example database, a time budget, and a
4-token generation cap so that a valid chat request stays cheap; on-chain requests give up
after 2 s (their open jobs are cancelled and refunded).

No worker runs here, so a *valid* on-chain request (``"anchorml": {"mode": "onchain"}``) ends in
the gateway's documented answer for a job that did not settle in time: 504 ``job_timeout``. That
one 5xx is expected; any other (500 above all) still fails the run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.gateway import GatewayNet, ThreadServer

pytestmark = pytest.mark.timeout(900)

MAX_EXAMPLES = 15
CHECKS = ",".join(
    [
        "not_a_server_error",
        "response_schema_conformance",
        "status_code_conformance",
        "content_type_conformance",
    ]
)


@pytest.fixture(scope="module")
def server(gateway_net: GatewayNet) -> Iterator[ThreadServer]:
    app = gateway_net.app(
        rate_limit_per_s=0, max_tokens_cap=4, default_max_tokens=4,
        onchain_timeout_s=2, job_deadline_s=60, job_lease_s=30,
    )  # fmt: skip
    with ThreadServer(app) as running:
        yield running


@pytest.mark.integration  # the schemathesis CLI runs as a process
def test_no_server_error_and_no_schema_violation(server: ThreadServer, tmp_path: Path) -> None:
    schemathesis = Path(sys.executable).with_name("schemathesis")
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        '[checks.not_a_server_error]\nexpected-statuses = ["2xx", "3xx", "4xx", "504"]\n'
    )
    proc = subprocess.run(
        [
            str(schemathesis), "--config-file", str(config), "run", f"{server.url}/openapi.json",
            "--checks", CHECKS,
            "--max-examples", str(MAX_EXAMPLES),
            "--seed", "20261122",
            "--generation-database", "none",
            "--phases", "examples,coverage,fuzzing",
            "--workers", "1",
            "--max-time", "180",
            "--request-timeout", "120",
            "--suppress-health-check", "all",
            "--no-color",
            "--report", "junit", "--report-dir", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=840, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
