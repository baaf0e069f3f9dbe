"""Compile the Solidity contracts with py-solc-x and write reproducible artifacts.

No native solc can be downloaded on the machines this project targets, so py-solc-x drives
solc-js (npm ``solc``) through ``tools/solc``, a shim answering ``--version`` and
``--standard-json``. Artifacts are committed under ``contracts/build/`` (one JSON file per
contract: ABI, bytecode, compiler version, settings, sha256 of every source), so running the
system needs no compiler; a test recompiles and checks they are byte-identical.

Steps of :func:`build`:
    1. collect ``contracts/src/*.sol`` (and ``contracts/test/*.sol``, the test-only helpers);
    2. compile them in one standard-JSON call with pinned settings;
    3. render each contract's artifact as canonical JSON and write it atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from registry.chain import codegen
from registry.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = REPO_ROOT / "contracts"
BUILD_DIR = CONTRACTS_DIR / "build"
SHIM = REPO_ROOT / "tools" / "solc"
REVERT_ERRORS_MODULE = Path(__file__).with_name("revert_errors.py")

#: Contracts whose artifacts are written (the rest are libraries and bases).
DEPLOYABLE = ("ModelRegistry", "NodeRegistry", "JobBoard", "Challenges")
#: Test-only contracts (attackers for the reentrancy tests), built into ``build/test/``.
TEST_CONTRACTS = ("ReentrantPayee",)

SOLC_VERSION = "0.8.30"
SETTINGS: dict[str, Any] = {
    # shanghai: the newest EVM every supported chain runs (ganache stops there).
    "evmVersion": "shanghai",
    "optimizer": {"enabled": True, "runs": 1000},
    "viaIR": True,
    "metadata": {"bytecodeHash": "none"},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
}


#: Directories whose ``*.sol`` files :func:`build` compiles (contracts, then test helpers).
SOURCE_DIRS = (CONTRACTS_DIR / "src", CONTRACTS_DIR / "test")


def collect_sources(dirs: Iterable[Path] = SOURCE_DIRS) -> dict[str, str]:
    """The sources :func:`build` compiles: path relative to the repo root → text."""
    out: dict[str, str] = {}
    for d in dirs:
        for path in sorted(d.glob("*.sol")):
            out[path.relative_to(REPO_ROOT).as_posix()] = path.read_text()
    return out


def compile_sources(sources: dict[str, str]) -> dict[str, Any]:
    """Run the compiler on ``sources`` (path → text) and return solc's standard-JSON output.

    Raises:
        ConfigError: the shim or solc-js is missing (run ``make npm``), or compilation failed.
    """
    import solcx
    from solcx.exceptions import SolcError

    if not (REPO_ROOT / "node_modules" / "solc").is_dir() or shutil.which("node") is None:
        raise ConfigError("solc-js is not installed: run `make npm` (needs node and npm)")
    standard_input = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": SETTINGS,
    }
    try:
        output: dict[str, Any] = solcx.compile_standard(
            standard_input, solc_binary=str(SHIM), base_path=str(REPO_ROOT)
        )
    except SolcError as exc:
        try:
            errors = json.loads(exc.stdout_data or "{}").get("errors", [])
            detail = "".join(e["formattedMessage"] for e in errors if e["severity"] == "error")
        except ValueError:
            detail = exc.stderr_data or str(exc)
        raise ConfigError(f"contract compilation failed:\n{detail}") from None
    return output


def render_artifacts(sources: dict[str, str], output: dict[str, Any]) -> dict[str, str]:
    """Turn compiler output into artifact files (relative name → canonical JSON text)."""
    source_hashes = {
        name: hashlib.sha256(text.encode()).hexdigest() for name, text in sorted(sources.items())
    }
    artifacts: dict[str, str] = {}
    for source_name, contracts in sorted(output.get("contracts", {}).items()):
        for name, data in sorted(contracts.items()):
            if name in DEPLOYABLE:
                rel = f"{name}.json"
            elif name in TEST_CONTRACTS:
                rel = f"test/{name}.json"
            else:
                continue
            artifact = {
                "contractName": name,
                "sourceName": source_name,
                "abi": data["abi"],
                "bytecode": "0x" + data["evm"]["bytecode"]["object"],
                "compiler": {"name": "solc", "version": SOLC_VERSION},
                "settings": {k: v for k, v in SETTINGS.items() if k != "outputSelection"},
                "sourceHashes": source_hashes,
            }
            artifacts[rel] = json.dumps(artifact, indent=1, sort_keys=True) + "\n"
    return artifacts


def build(out_dir: Path = BUILD_DIR) -> dict[str, str]:
    """Compile every contract and (re)write the artifacts under ``out_dir``.

    Returns:
        The artifacts written, relative name → JSON text.
    """
    sources = collect_sources()
    artifacts = render_artifacts(sources, compile_sources(sources))
    for rel, text in artifacts.items():
        _write_atomic(out_dir / rel, text)
    _write_atomic(REVERT_ERRORS_MODULE, render_revert_errors(artifacts))
    return artifacts


def render_revert_errors(artifacts: dict[str, str]) -> str:
    """Source of the generated revert-exception module for the deployable contracts."""
    abis = {
        rel: json.loads(text)["abi"]
        for rel, text in artifacts.items()
        if not rel.startswith("test/")
    }
    return codegen.render(abis)


def _write_atomic(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, target)
