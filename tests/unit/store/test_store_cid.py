"""CIDs, varints and multibase: exact encodings and refusal of malformed input."""

from __future__ import annotations

import hashlib

import pytest

from registry.errors import CorruptContentError, InvalidCIDError
from registry.store.cid import (
    CID,
    DAG_PB,
    RAW,
    b32_decode,
    b32_encode,
    b58_decode,
    b58_encode,
    decode_varint,
    encode_varint,
    parse_cid,
)

EMPTY_RAW = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
EMPTY_DIR_V1 = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
EMPTY_DIR_V0 = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02")],
)
def test_varint_round_trip(value: int, encoded: bytes) -> None:
    assert encode_varint(value) == encoded
    assert decode_varint(encoded) == (value, len(encoded))
    assert decode_varint(b"junk" + encoded, 4) == (value, 4 + len(encoded))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated"),
        (b"\x80", "truncated"),
        (b"\x80\x00", "not minimally encoded"),
        (b"\xff" * 9 + b"\x01", "longer than 9 bytes"),
    ],
)
def test_varint_rejects_malformed(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_varint(data)


def test_base32_and_base58_round_trip() -> None:
    data = bytes(range(40))
    assert b32_decode(b32_encode(data)) == data
    assert b32_encode(b"\x01\x55") == "afkq"
    assert b58_encode(b"\x00\x00\x01") == "112"
    assert b58_decode("112") == b"\x00\x00\x01"
    with pytest.raises(ValueError, match="invalid base58 character"):
        b58_decode("0OIl")


def test_cid_of_empty_raw_block() -> None:
    cid = CID.for_block(RAW, b"")
    assert str(cid) == EMPTY_RAW
    assert cid.version == 1 and cid.codec == RAW and cid.hash_code == 0x12
    assert cid.digest == hashlib.sha256(b"").digest()
    assert cid.to_bytes() == b"\x01\x55\x12\x20" + hashlib.sha256(b"").digest()
    assert CID.parse(EMPTY_RAW) == cid
    assert CID.decode(cid.to_bytes()) == cid


def test_cid_text_forms_parse_to_the_same_block() -> None:
    v1 = CID.parse(EMPTY_DIR_V1)
    v0 = CID.parse(EMPTY_DIR_V0)
    assert v0.version == 0 and v0.codec == DAG_PB
    assert str(v0) == EMPTY_DIR_V0
    assert v0.to_v1() == v1
    assert v0.multihash == v1.multihash
    assert v0.to_bytes() == v1.multihash
    z = v1.encode("base58btc")
    assert z.startswith("z") and CID.parse(z) == v1
    assert CID.parse(EMPTY_DIR_V1.upper()) == v1
    assert CID.parse("/ipfs/" + EMPTY_DIR_V1) == v1
    assert parse_cid(v1) is v1
    assert repr(v1) == f"CID('{EMPTY_DIR_V1}')"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "x" + EMPTY_RAW[1:],  # unknown multibase
        "b" + "a" * 10,  # valid base32, not a CID
        EMPTY_RAW[:-4],  # truncated multihash
        EMPTY_RAW + "aa",  # trailing bytes
        "bafkrei!",  # not base32
        "Qm" + "1" * 44,  # base58 but not a sha2-256 multihash
        "z" + b58_encode(b"\x02\x55\x12\x20" + bytes(32)),  # CID version 2
    ],
)
def test_malformed_cid_text_is_refused(text: str) -> None:
    with pytest.raises(InvalidCIDError):
        CID.parse(text)


def test_non_string_cid_is_refused() -> None:
    with pytest.raises(InvalidCIDError, match="expected a string"):
        CID.parse(42)  # type: ignore[arg-type]


def test_verify_detects_mismatch_and_unsupported_hash() -> None:
    cid = CID.for_block(RAW, b"abc")
    cid.verify(b"abc")
    with pytest.raises(CorruptContentError, match="does not hash to its CID"):
        cid.verify(b"abd")
    identity = CID(1, RAW, b"\x00\x03abc")
    with pytest.raises(InvalidCIDError, match="only sha2-256"):
        identity.verify(b"abc")


def test_decode_prefix_reads_cid_then_data() -> None:
    cid = CID.for_block(RAW, b"x")
    cid_end = len(cid.to_bytes())
    assert CID.decode_prefix(cid.to_bytes() + b"rest") == (cid, cid_end)
    v0 = CID.parse(EMPTY_DIR_V0)
    assert CID.decode_prefix(v0.to_bytes() + b"rest") == (v0, 34)
