"""Reverts reach Python as typed exceptions generated from the ABIs.

Every ``error`` of every deployable contract maps to exactly one generated class (by selector
and by name), the classes carry the ABI's argument names and types, decoding works on
hand-encoded payloads and on real reverts from each backend, and the payloads that are not
custom errors (``Error(string)``, ``Panic``, unknown, empty) become plain
:class:`~registry.errors.ContractRevertError` with a readable message.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.chain import artifacts, revert_errors
from registry.chain.codegen import error_signature
from registry.chain.reverts import as_revert, decode_revert, revert_data
from registry.clients.models import model_id
from registry.errors import ChainError, ContractRevertError
from support.chain import GATED, PAID, World, hx, reverts

GENERATED = {
    name: cls
    for name, cls in inspect.getmembers(revert_errors, inspect.isclass)
    if issubclass(cls, ContractRevertError) and cls is not ContractRevertError
}
ABI_ERRORS = [
    (contract, entry)
    for contract, abi in sorted(artifacts.all_abis().items())
    for entry in abi
    if entry["type"] == "error"
]


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


@pytest.mark.parametrize(
    "entry", [e for _, e in ABI_ERRORS], ids=[f"{c}.{e['name']}" for c, e in ABI_ERRORS]
)
def test_every_abi_error_maps_to_one_generated_class(entry: dict[str, Any]) -> None:
    signature = error_signature(entry)
    selector = keccak(text=signature)[:4]
    cls = revert_errors.BY_SELECTOR[selector]
    assert [c for c in GENERATED.values() if c.error_name == entry["name"]] == [cls]
    assert cls.__name__ == cls.error_name == entry["name"]
    assert cls.signature == signature
    assert cls.code == snake(entry["name"])
    assert cls.param_types == tuple(i["type"] for i in entry["inputs"])
    assert cls.param_names == tuple(snake(i["name"]) for i in entry["inputs"])
    assert issubclass(cls, ContractRevertError) and issubclass(cls, ChainError)


def test_no_generated_class_without_an_abi_error() -> None:
    signatures = {error_signature(e) for _, e in ABI_ERRORS}
    assert {cls.signature for cls in GENERATED.values()} == signatures
    assert len(revert_errors.BY_SELECTOR) == len(GENERATED) == len(signatures)
    assert set(revert_errors.BY_SELECTOR.values()) == set(GENERATED.values())


def test_custom_errors_of_the_three_contracts_are_all_covered() -> None:
    """A spot check against names written by hand: the table is not silently empty."""
    for name in ("JobNotFound", "LeaseActive", "NotModelOwner", "StakeLocked", "ReservedTag"):
        assert name in GENERATED
    assert "AccessControlUnauthorizedAccount" in GENERATED  # inherited from OpenZeppelin


# ------------------------------------------------------------------------------------ decoding


@settings(max_examples=40, deadline=None)
@given(
    job_id=st.integers(0, 2**64 - 1),
    holder=st.binary(min_size=20, max_size=20),
    expiry=st.integers(0, 2**40 - 1),
)
def test_decode_revert_gives_typed_error_with_named_args(
    job_id: int, holder: bytes, expiry: int
) -> None:
    cls = revert_errors.LeaseActive
    payload = keccak(text=cls.signature)[:4] + encode(
        ["uint64", "address", "uint40"], [job_id, holder, expiry]
    )
    error = decode_revert(payload)
    assert type(error) is cls
    assert error.args_by_name == {
        "job_id": job_id,
        "holder": to_checksum_address(holder),
        "lease_expiry": expiry,
    }
    assert error.error_name == "LeaseActive"
    assert f"LeaseActive(job_id={job_id}" in str(error)


def test_decode_revert_renders_bytes_and_strings() -> None:
    cls = revert_errors.ReservedTag
    error = decode_revert(keccak(text=cls.signature)[:4] + encode(["string"], ["job-7"]))
    assert (type(error), error.args_by_name) == (cls, {"tag": "job-7"})
    cls2 = revert_errors.ModelNotFound
    error = decode_revert(keccak(text=cls2.signature)[:4] + encode(["bytes32"], [b"\x01" * 32]))
    assert error.args_by_name == {"model_id": "0x" + "01" * 32}


def test_decode_revert_of_error_string() -> None:
    payload = bytes.fromhex("08c379a0") + encode(["string"], ["nope"])
    error = decode_revert(payload)
    assert type(error) is ContractRevertError
    assert error.args_by_name == {"reason": "nope"}
    assert "nope" in str(error)


def test_decode_revert_of_panic() -> None:
    error = decode_revert(bytes.fromhex("4e487b71") + encode(["uint256"], [0x11]))
    assert type(error) is ContractRevertError
    assert error.args_by_name == {"panic": 0x11}
    assert "0x11" in str(error)


def test_decode_revert_of_unknown_and_empty_payloads() -> None:
    unknown = decode_revert(bytes.fromhex("deadbeef"))
    assert type(unknown) is ContractRevertError
    assert "0xdeadbeef" in str(unknown)
    empty = decode_revert(b"")
    assert (type(empty), empty.args_by_name) == (ContractRevertError, {})


def test_decode_revert_with_truncated_arguments_keeps_the_type() -> None:
    cls = revert_errors.JobNotFound
    error = decode_revert(keccak(text=cls.signature)[:4] + b"\x00" * 5)
    assert (type(error), error.args_by_name) == (cls, {})


def test_revert_data_reads_each_backends_format() -> None:
    class HttpStyle(Exception):
        def __init__(self, data: Any) -> None:
            super().__init__("execution reverted")
            self.data = data

    payload = bytes.fromhex("feedbeef00")
    assert revert_data(HttpStyle("0xfeedbeef00")) == payload
    assert revert_data(HttpStyle({"data": "0xfeedbeef00"})) == payload
    assert revert_data(HttpStyle(payload)) == payload
    tester_style = Exception(f"execution reverted: {payload!r}")
    assert revert_data(tester_style) == payload
    assert revert_data(Exception("unrelated")) is None
    assert as_revert(ValueError("connection refused")) is None


def test_as_revert_recognises_a_web3_panic() -> None:
    """Regression: web3's ContractPanicError was taken for a transport failure."""
    from web3.exceptions import ContractPanicError

    data = "0x4e487b71" + encode(["uint256"], [0x11]).hex()
    error = as_revert(ContractPanicError("Panic error 0x11: Arithmetic overflow", data=data))
    assert error is not None
    assert (type(error), error.args_by_name) == (ContractRevertError, {"panic": 0x11})


# ----------------------------------------------------------------------------- real reverts


def test_real_custom_error_decodes_to_typed_exception(env: World) -> None:
    with reverts(revert_errors.JobNotFound, job_id=99):
        env.user.jobs.cancel(99)


def test_real_error_raised_in_a_nested_call_keeps_its_type(env: World) -> None:
    """JobBoard.createJob calls ModelRegistry.checkVersionAccess: the registry's error surfaces
    through the board unchanged."""
    with reverts(revert_errors.NoAccess, model_id=hx(model_id(GATED)), account=env.user.address):
        env.create_job(model=GATED)


def test_real_panic_decodes_to_plain_revert(env: World) -> None:
    """Buying more access on top of a grant without expiry overflows uint64: Panic(0x11)."""
    env.owner.models.grant_access(PAID, env.buyer.address)
    with pytest.raises(ContractRevertError) as info:
        env.buyer.models.buy_access(PAID)
    assert type(info.value) is ContractRevertError
    assert info.value.args_by_name == {"panic": 0x11}
    assert env.buyer.models.access_expiry(PAID, env.buyer.address) == 2**64 - 1
