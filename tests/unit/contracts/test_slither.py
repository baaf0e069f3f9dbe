"""Static analysis (RELIABILITY C10): slither finds nothing of medium impact or above.

slither analyses ``contracts/src`` (not the test helpers in ``contracts/test``, nor OpenZeppelin
under ``node_modules``). It compiles through crytic-compile's standard-JSON platform driving the
same ``tools/solc`` shim as ``anchorml contracts build``, so it needs no network and no native
solc. The settings differ from the build's in code generation only (legacy, unoptimized): slither
reads the AST, which code generation does not change, and that compile takes ~2 s instead of
~17 s. slither lives in a venv of its own, ``.venv/slither`` (``make env``), because it requires
web3<8.

Each finding is triaged in the source: fixed, or silenced by ``// slither-disable-next-line
<detector>`` under a comment giving the reason. A directive without a reason, or one slither no
longer needs (a stale triage), fails too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from registry.chain import compiler

SRC_DIR = compiler.CONTRACTS_DIR / "src"
SLITHER = compiler.REPO_ROOT / ".venv" / "slither" / "bin" / "slither"
BLOCKING = ("High", "Medium")
DIRECTIVE = re.compile(r"^\s*//\s*slither-disable-")


def _slither_binary() -> str:
    if SLITHER.exists():
        return str(SLITHER)
    found = shutil.which("slither")
    if found is None:
        pytest.fail("slither is not installed: run `make env` (it installs .venv/slither)")
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """slither's JSON report on ``contracts/src``, medium and high impact detectors only."""
    if shutil.which("node") is None or not (compiler.REPO_ROOT / "node_modules/solc").is_dir():
        pytest.fail("node and solc-js are needed to run slither: run `make npm`")
    sources = compiler.collect_sources([SRC_DIR])
    standard_input = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            "evmVersion": compiler.SETTINGS["evmVersion"],
            "optimizer": {"enabled": False},
            "viaIR": False,
            # crytic-compile reads bytecode and source maps besides the AST
            "outputSelection": {
                "*": {
                    "*": [
                        "abi",
                        "evm.bytecode.object",
                        "evm.bytecode.sourceMap",
                        "evm.deployedBytecode.object",
                        "evm.deployedBytecode.sourceMap",
                    ],
                    "": ["ast"],
                }
            },
        },
    }
    input_file = tmp_path_factory.mktemp("slither") / "input.json"
    input_file.write_text(json.dumps(standard_input))
    cmd = [
        _slither_binary(),
        str(input_file),
        "--compile-force-framework",
        "solc-json",
        "--solc",
        str(compiler.SHIM),
        "--filter-paths",
        "node_modules",
        "--exclude-optimization",
        "--exclude-informational",
        "--exclude-low",
        "--warn-unused-ignores",
        "--json",
        "-",
    ]
    # source names are relative to the repository root, so slither must run there
    proc = subprocess.run(
        cmd, cwd=compiler.REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    try:
        out: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"slither printed no JSON (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    if not out.get("success"):
        pytest.fail(f"slither failed: {out.get('error')}\n{proc.stderr[-4000:]}")
    return out


def _detector_results(report: dict[str, Any]) -> list[dict[str, Any]]:
    return list(report.get("results", {}).get("detectors", []))


@pytest.mark.integration  # slither runs as a process
def test_no_untriaged_medium_or_high_finding(report: dict[str, Any]) -> None:
    findings = [r for r in _detector_results(report) if r.get("impact") in BLOCKING]
    listing = "\n".join(
        f"[{r['impact']}] {r['check']}: {r['description'].strip()}" for r in findings
    )
    assert not findings, (
        f"{len(findings)} untriaged slither finding(s): fix each, or put "
        f"`// slither-disable-next-line <detector>` under a comment giving the reason:\n{listing}"
    )


@pytest.mark.integration  # slither runs as a process
def test_no_stale_slither_directive(report: dict[str, Any]) -> None:
    stale = sorted(
        {
            f"{Path(u['file']).relative_to(compiler.REPO_ROOT)}:{u['line']} "
            f"({', '.join(u['unused_detectors'])})"
            for r in _detector_results(report)
            if r.get("check") == "unused-ignore-directive"
            for u in r.get("unused_ignores", [])
            if Path(u["file"]).is_relative_to(SRC_DIR)
        }
    )
    assert not stale, "slither-disable directives that suppress nothing:\n" + "\n".join(stale)


def test_every_slither_directive_gives_a_reason() -> None:
    """A directive sits directly under a plain `//` comment (the reason), not another directive."""
    bare = []
    for path in sorted(SRC_DIR.glob("*.sol")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if not DIRECTIVE.match(line):
                continue
            above = lines[i - 1].strip() if i else ""
            if not above.startswith("//") or above.startswith("///") or DIRECTIVE.match(above):
                bare.append(f"{path.relative_to(compiler.REPO_ROOT)}:{i + 1}")
    assert not bare, "slither-disable directives without a reason comment above:\n" + "\n".join(
        bare
    )
