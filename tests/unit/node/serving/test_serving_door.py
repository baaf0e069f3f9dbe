"""The one door into serving: code outside ``node/serving`` imports it only through its package
face, the face exports what it lists, and the one error translation sets ``Retry-After`` from
the error itself (the gateway no longer patches the header after translating)."""

from __future__ import annotations

import ast
from pathlib import Path

import node.serving
from api.gateway.auth import RateLimitedError
from node.serving.errors import OverloadedError, to_response

ROOT = Path(__file__).resolve().parents[4]


def _serving_submodule_imports(path: Path) -> list[str]:
    found = []
    for stmt in ast.walk(ast.parse(path.read_text(), str(path))):
        names = (
            [stmt.module or ""]
            if isinstance(stmt, ast.ImportFrom)
            else [a.name for a in stmt.names]
            if isinstance(stmt, ast.Import)
            else []
        )
        found += [f"{path.relative_to(ROOT)}:{stmt.lineno} {n}" for n in names]  # type: ignore[attr-defined]
    return [f for f in found if " node.serving." in f]


def test_code_outside_serving_uses_only_its_face() -> None:
    inside = ROOT / "node" / "serving"
    files = [
        p
        for top in ("api", "node", "bench", "registry")
        for p in (ROOT / top).rglob("*.py")
        if inside not in p.parents
    ]
    assert files
    assert [hit for p in files for hit in _serving_submodule_imports(p)] == []


def test_the_face_exports_what_it_lists() -> None:
    assert sorted(node.serving.__all__) == sorted(set(node.serving.__all__))
    assert all(hasattr(node.serving, name) for name in node.serving.__all__)


def test_retry_after_is_the_errors_own_wait_in_whole_seconds() -> None:
    limited = to_response(RateLimitedError("slow down", 2.5))
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    overloaded = to_response(OverloadedError("queue full"))
    assert overloaded.status_code == 503 and overloaded.headers["Retry-After"] == "1"
