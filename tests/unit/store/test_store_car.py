"""CARv1: exact header bytes, round trip, and refusal of damaged archives."""

from __future__ import annotations

import io

import pytest

from registry.errors import CorruptContentError, StoreError
from registry.store.car import CarReader, decode_header, encode_header, read_car, write_car
from registry.store.cid import CID, DAG_PB, RAW, encode_varint

ROOT = CID.parse("bafybeiglhmnes72zknmafupl2nqzlxom33ocrywu7z7tvobcicxbo5jpfu")


def test_header_bytes_match_go_car_and_js_ipfs() -> None:
    # the first bytes of js-ipfs's `dag export` of ROOT
    expected = b"\xa2eroots\x81\xd8\x2a\x58\x25\x00" + ROOT.to_bytes() + b"gversion\x01"
    assert encode_header([ROOT]) == expected
    assert len(expected) == 0x3A
    assert decode_header(expected) == [ROOT]


def test_round_trip_verifies_blocks() -> None:
    blocks = [(CID.for_block(RAW, data), data) for data in (b"a", b"bb", b"")]
    node = b"\x0a\x02\x08\x01"
    blocks.append((CID.for_block(DAG_PB, node), node))
    buf = io.BytesIO()
    size = write_car(buf, [blocks[0][0]], blocks)
    assert size == len(buf.getvalue())
    buf.seek(0)
    assert read_car(buf) == ([blocks[0][0]], blocks)


def _car(roots: list[CID], sections: list[bytes], header: bytes | None = None) -> io.BytesIO:
    head = encode_header(roots) if header is None else header
    body = encode_varint(len(head)) + head
    body += b"".join(encode_varint(len(s)) + s for s in sections)
    return io.BytesIO(body)


def test_cidv0_sections_are_read() -> None:
    node = b"\x0a\x02\x08\x01"
    v0 = CID(0, DAG_PB, CID.for_block(DAG_PB, node).multihash)
    roots, blocks = read_car(_car([v0], [v0.to_bytes() + node]))
    assert roots == [v0] and blocks == [(v0, node)]


@pytest.mark.parametrize(
    ("stream", "error", "message"),
    [
        (io.BytesIO(b""), CorruptContentError, "empty CAR"),
        (io.BytesIO(b"\x80"), CorruptContentError, "cut inside a length prefix"),
        (io.BytesIO(b"\x05\xa1"), CorruptContentError, "truncated CAR"),
        (_car([], [], header=b"\xa1gversion\x02"), StoreError, "only CARv1"),
        (_car([], [], header=b"\xa1gversion\x01"), CorruptContentError, "roots must be"),
        (_car([], [], header=b"\x83\x01\x02\x03"), CorruptContentError, "not a map"),
        (_car([], [], header=b"\xbf\xff"), CorruptContentError, "indefinite-length"),
        (_car([], [], header=b"\xa1\x01\x01"), CorruptContentError, "keys must be strings"),
        (_car([], [], header=b"\xa1\x65roo"), CorruptContentError, "truncated CBOR"),
    ],
)
def test_bad_headers_are_refused(stream: io.BytesIO, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        CarReader(stream)


def test_tampered_block_is_corrupt() -> None:
    cid = CID.for_block(RAW, b"payload")
    reader = CarReader(_car([cid], [cid.to_bytes() + b"paylOad"]))
    with pytest.raises(CorruptContentError, match="does not hash to its CID"):
        list(reader)


def test_truncated_section_and_oversized_section_are_corrupt() -> None:
    cid = CID.for_block(RAW, b"payload")
    stream = _car([cid], [cid.to_bytes() + b"payload"])
    cut = io.BytesIO(stream.getvalue()[:-3])
    with pytest.raises(CorruptContentError, match="truncated CAR"):
        list(CarReader(cut))
    huge = io.BytesIO(_car([cid], []).getvalue() + encode_varint(64 << 20))
    with pytest.raises(CorruptContentError, match="exceeds"):
        list(CarReader(huge))
    garbage = _car([cid], [b"\x05\x55\x12\x20" + b"x" * 40])
    with pytest.raises(CorruptContentError, match="malformed CID in CAR"):
        list(CarReader(garbage))
