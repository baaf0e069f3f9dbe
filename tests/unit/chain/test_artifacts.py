"""The committed build outputs are exactly what the sources compile to.

``contracts/build/*.json`` (and ``build/test/``) and ``registry/chain/revert_errors.py`` are
committed so running the system needs no compiler. Recompiling with the pinned solc-js must give
byte-identical files: a stale artifact (a source edited without ``anchorml contracts build``)
or a hand-edited revert module fails here. The full recompile needs node and solc-js (~20 s).
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from registry.chain import artifacts, compiler

BUILD_FILES = sorted(
    p.relative_to(compiler.BUILD_DIR).as_posix() for p in compiler.BUILD_DIR.rglob("*.json")
)


@pytest.fixture(scope="module")
def rebuilt() -> dict[str, str]:
    """Artifacts compiled afresh from the current sources (relative name → JSON text)."""
    if shutil.which("node") is None or not (compiler.REPO_ROOT / "node_modules/solc").is_dir():
        pytest.fail("node and solc-js are needed to check the artifacts: run `make npm`")
    sources = compiler.collect_sources()
    return compiler.render_artifacts(sources, compiler.compile_sources(sources))


def test_artifacts_record_the_current_sources() -> None:
    """Cheap staleness check (no compiler): every artifact names the sha256 of every source."""
    expected = {
        name: hashlib.sha256(text.encode()).hexdigest()
        for name, text in compiler.collect_sources().items()
    }
    for rel in BUILD_FILES:
        artifact = json.loads((compiler.BUILD_DIR / rel).read_text())
        assert artifact["sourceHashes"] == expected, (
            f"{rel} is stale: run `anchorml contracts build`"
        )


@pytest.mark.integration  # solc-js runs under node
def test_recompiled_artifacts_are_byte_identical(rebuilt: dict[str, str]) -> None:
    assert sorted(rebuilt) == BUILD_FILES
    for rel, text in rebuilt.items():
        committed = (compiler.BUILD_DIR / rel).read_text()
        assert committed == text, f"contracts/build/{rel} differs from a fresh compile"


@pytest.mark.integration  # solc-js runs under node
def test_generated_revert_module_is_up_to_date(rebuilt: dict[str, str]) -> None:
    assert compiler.REVERT_ERRORS_MODULE.read_text() == compiler.render_revert_errors(rebuilt)


def test_loaded_artifacts_hash_the_committed_bytes() -> None:
    for name in compiler.DEPLOYABLE:
        raw = (compiler.BUILD_DIR / f"{name}.json").read_bytes()
        assert artifacts.load(name).sha256 == hashlib.sha256(raw).hexdigest()
