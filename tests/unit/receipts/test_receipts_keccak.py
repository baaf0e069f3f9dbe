"""The receipts' fast keccak gives ``eth_utils.keccak``'s digests, whichever backend it picked."""

from __future__ import annotations

import pytest
from eth_utils import keccak as reference

from registry.receipts.keccak import keccak


@pytest.mark.parametrize("data", [b"", b"abc", bytes(range(256)) * 40])
def test_fast_keccak_matches_eth_utils(data: bytes) -> None:
    assert keccak(data) == reference(data)
    assert keccak(text="anchorml") == reference(text="anchorml")
