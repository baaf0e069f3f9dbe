"""Load the committed contract artifacts (ABI + bytecode) from ``contracts/build/``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from registry.chain.compiler import BUILD_DIR, DEPLOYABLE
from registry.errors import ConfigError


@dataclass(frozen=True)
class Artifact:
    """A compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    sha256: str


@cache
def load(name: str, build_dir: Path = BUILD_DIR) -> Artifact:
    """The artifact of contract ``name`` (e.g. ``"JobBoard"``, or ``"test/ReentrantPayee"``).

    Raises:
        ConfigError: the artifact is missing (run ``anchorml contracts build``).
    """
    path = build_dir / f"{name}.json"
    try:
        raw = path.read_bytes()
    except OSError:
        raise ConfigError(
            f"missing contract artifact {path}: run `anchorml contracts build`"
        ) from None
    data = json.loads(raw)
    return Artifact(
        name=data["contractName"],
        abi=data["abi"],
        bytecode=data["bytecode"],
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def all_abis() -> dict[str, list[dict[str, Any]]]:
    """ABIs of every deployable contract, by name."""
    return {name: load(name).abi for name in DEPLOYABLE}
