"""dag-pb and UnixFS encodings: exact bytes, round trips, refusal of malformed nodes."""

from __future__ import annotations

import pytest

from registry.errors import CorruptContentError
from registry.store.cid import CID, DAG_PB, RAW
from registry.store.dagpb import (
    DIRECTORY_DATA,
    PBLink,
    PBNode,
    UnixFSType,
    decode_node,
    decode_unixfs,
    directory_node,
    encode_node,
    encode_unixfs,
    file_node,
)

LEAF = CID.for_block(RAW, b"x")


def test_empty_directory_bytes_and_cid() -> None:
    data = directory_node([])
    assert data == b"\x0a\x02\x08\x01"
    assert DIRECTORY_DATA == b"\x08\x01"
    assert str(CID.for_block(DAG_PB, data)) == (
        "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
    )


def test_file_node_layout_links_first_then_data() -> None:
    data = file_node([PBLink(LEAF, "", 1), PBLink(LEAF, "", 1)], [1, 1])
    link = b"\x0a\x24" + LEAF.to_bytes() + b"\x12\x00" + b"\x18\x01"
    unixfs = b"\x08\x02" + b"\x18\x02" + b"\x20\x01" + b"\x20\x01"
    assert data == (b"\x12\x2a" + link) * 2 + b"\x0a\x08" + unixfs
    node = decode_node(data)
    assert node == PBNode((PBLink(LEAF, "", 1), PBLink(LEAF, "", 1)), unixfs)
    meta = decode_unixfs(node.data)
    assert (meta.type, meta.filesize, meta.blocksizes, meta.data) == (
        UnixFSType.FILE, 2, (1, 1), b"",
    )  # fmt: skip


def test_directory_links_sorted_by_name_bytes() -> None:
    links = [PBLink(LEAF, "b", 1), PBLink(LEAF, "B", 1), PBLink(LEAF, "a", 1), PBLink(LEAF, "é", 1)]
    node = decode_node(directory_node(links))
    assert [link.name for link in node.links] == ["B", "a", "b", "é"]


def test_link_without_name_or_tsize_round_trips() -> None:
    node = PBNode((PBLink(LEAF, None, None),), None)
    assert encode_node(node) == b"\x12\x26\x0a\x24" + LEAF.to_bytes()
    assert decode_node(encode_node(node)) == node


def test_unixfs_packed_blocksizes_and_unknown_fields_decode() -> None:
    packed = b"\x08\x02\x18\x03\x22\x02\x01\x02\x38\xa4\x03\x78\x05"
    meta = decode_unixfs(packed)
    assert meta.blocksizes == (1, 2)
    assert meta.mode == 0o644
    assert meta.extra == ((15, 0, 5),)
    assert encode_unixfs(UnixFSType.RAW, data=b"hi") == b"\x08\x00\x12\x02hi"


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (b"\x0a\x02\x08\x01\x12\x00", "Links after Data"),
        (b"\x0a\x00\x0a\x00", "duplicate dag-pb Data"),
        (b"\x1a\x00", "unexpected dag-pb field 3"),
        (b"\x12\x02\x12\x00", "link without Hash"),
        (b"\x12\x05\x0a\x03abc", "invalid CID"),
        (b"\x0a\x05\x08", "truncated protobuf field"),
        (b"\x0d\x00\x00\x00\x00", "wire type 5"),
    ],
)
def test_malformed_dag_pb_is_corrupt(block: bytes, message: str) -> None:
    with pytest.raises(CorruptContentError, match=message):
        decode_node(block)


@pytest.mark.parametrize(
    ("data", "message"),
    [(None, "no UnixFS data"), (b"\x18\x01", "without Type"), (b"\x08\x09", "not a valid")],
)
def test_malformed_unixfs_is_corrupt(data: bytes | None, message: str) -> None:
    with pytest.raises(CorruptContentError, match=message):
        decode_unixfs(data)
