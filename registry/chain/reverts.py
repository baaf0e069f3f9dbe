"""Turn a contract revert into the typed exception generated from the ABI.

Each backend reports revert data differently: web3's HTTP provider raises
``ContractCustomError``/``ContractLogicError`` carrying ``data`` (hex), while the in-process
eth-tester raises ``TransactionFailed("execution reverted: b'...'")``. :func:`revert_data`
extracts the raw bytes from either; :func:`decode_revert` maps them to the exception class
whose selector matches, with arguments decoded by name.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_tester.exceptions import TransactionFailed
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import ContractLogicError

from registry.chain.revert_errors import BY_SELECTOR
from registry.errors import ContractRevertError

_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)
#: What web3 (ContractCustomError, ContractPanicError, ...) and eth-tester raise for a revert.
_REVERT_TYPES = (ContractLogicError, TransactionFailed)
_HEX = re.compile(r"0x[0-9a-fA-F]{8,}")


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert payload carried by a web3 / eth-tester exception, if any."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes(HexBytes(data))
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, dict) and isinstance(data.get("data"), str):
        return bytes(HexBytes(data["data"]))
    for arg in exc.args:
        if isinstance(arg, bytes | bytearray):
            return bytes(arg)
        if not isinstance(arg, str):
            continue
        if "execution reverted: b'" in arg or 'execution reverted: b"' in arg:
            literal = arg.split("execution reverted: ", 1)[1]
            try:
                value = ast.literal_eval(literal)
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, bytes):
                return value
        found = _HEX.search(arg)
        if found:
            return bytes(HexBytes(found.group(0)))
    return None


def decode_revert(data: bytes) -> ContractRevertError:
    """Build the typed exception for a revert payload.

    Unknown selectors, ``Error(string)`` and ``Panic(uint256)`` become a plain
    :class:`ContractRevertError` with a readable message.
    """
    selector, body = data[:4], data[4:]
    cls = BY_SELECTOR.get(selector)
    if cls is not None:
        try:
            values = abi_decode(list(cls.param_types), body)
        except DecodingError:
            values = ()
        plain = (_plain(v, t) for v, t in zip(values, cls.param_types, strict=False))
        args = dict(zip(cls.param_names, plain, strict=False))
        shown = ", ".join(f"{k}={_show(v)}" for k, v in args.items())
        return cls(f"contract reverted: {cls.error_name}({shown})", args)
    if selector == _ERROR_STRING:
        (reason,) = abi_decode(["string"], body)
        return ContractRevertError(f"contract reverted: {reason}", {"reason": reason})
    if selector == _PANIC:
        (code,) = abi_decode(["uint256"], body)
        return ContractRevertError(f"contract panicked (code {code:#x})", {"panic": code})
    if not data:
        return ContractRevertError("contract reverted without a reason")
    return ContractRevertError(f"contract reverted with unknown error 0x{data.hex()}")


def as_revert(exc: BaseException) -> ContractRevertError | None:
    """The typed revert inside a web3/eth-tester exception, or None if it is not a revert."""
    # ContractPanicError (web3 over HTTP, e.g. an arithmetic overflow) says "Panic error", not
    # "revert": without its type a panic would pass for an unreachable RPC endpoint. A node that
    # answers a revert as a plain JSON-RPC error is known only by its message.
    if not isinstance(exc, _REVERT_TYPES) and "revert" not in str(exc).lower():
        return None
    data = revert_data(exc)
    if data is None:
        return ContractRevertError(f"contract reverted: {exc}")
    return decode_revert(data)


def _plain(value: Any, abi_type: str) -> Any:
    """A decoded argument as the rest of the SDK shows it: checksummed addresses (web3 style,
    so they compare equal to ``Wallet.address``), ``0x``-hex for bytes."""
    if abi_type == "address":
        return to_checksum_address(value)
    return "0x" + value.hex() if isinstance(value, bytes) else value


def _show(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)
