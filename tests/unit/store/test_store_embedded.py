"""EmbeddedStore specifics: on-disk damage, atomic downloads (A1), concurrency, bounded memory."""

from __future__ import annotations

import os
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_store_behaviour import TREE_ENTRIES, TREE_ROOT, content, make_tree

from registry.errors import (
    ConfigError,
    ContentNotFoundError,
    CorruptContentError,
    StoreError,
)
from registry.store import CID, EmbeddedStore, KuboStore, open_store
from registry.store.chunker import CHUNK_SIZE, DEFAULT_BATCH, default_workers
from registry.store.cid import DAG_PB, RAW
from registry.store.dagpb import PBLink, directory_node, file_node
from registry.store.factory import default_store_spec

F_CID = "bafybeidah3bzaz4cwnjaz2aj3p7ingoou5c4f5w2vmuwt7igejftdr4bfe"  # 1 MiB, 4 leaves


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")


def leaf_cids(store: EmbeddedStore, cid: str) -> list[CID]:
    return [c for c, _ in store.walk(cid) if c.codec == RAW]


def leftovers(root: Path) -> list[str]:
    """Temporary files anywhere under ``root``."""
    return sorted(p.name for p in root.rglob("*.tmp"))


# --- layout --------------------------------------------------------------------------------------


def test_blocks_live_under_sharded_multihash_names(store: EmbeddedStore) -> None:
    cid = store.put_block(b"hello")
    path = store.block_path(cid)
    key = "ciqcz4snxjp3biyoe3udwkwfxhrj4gywdzob7j2clzzqim3csofzqja"
    assert path == store.root / "blocks" / key[-3:-1] / key
    assert path.read_bytes() == b"hello"
    assert store.block_path(CID(0, DAG_PB, cid.multihash)) == path


def test_durable_store_writes_the_same_blocks(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "s", durable=True)
    assert str(store.add_bytes(content("f", 1_048_576))) == F_CID
    assert store.read(F_CID) == content("f", 1_048_576)


# --- damage on disk ------------------------------------------------------------------------------


def test_corrupt_block_is_detected_on_read(store: EmbeddedStore) -> None:
    store.add_bytes(content("f", 1_048_576))
    victim = store.block_path(leaf_cids(store, F_CID)[2])
    data = bytearray(victim.read_bytes())
    data[1000] ^= 0x01
    victim.write_bytes(bytes(data))
    with pytest.raises(CorruptContentError, match="does not hash to its CID"):
        store.read(F_CID)
    with pytest.raises(CorruptContentError):
        store.pin(F_CID)


def test_truncated_block_is_detected_and_repaired_by_re_adding(store: EmbeddedStore) -> None:
    store.add_bytes(content("f", 1_048_576))
    victim = store.block_path(leaf_cids(store, F_CID)[1])
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(CorruptContentError):
        store.read(F_CID)
    store.add_bytes(content("f", 1_048_576))
    assert store.read(F_CID) == content("f", 1_048_576)


def test_missing_block_is_not_found(store: EmbeddedStore, tmp_path: Path) -> None:
    store.add_bytes(content("f", 1_048_576))
    store.block_path(leaf_cids(store, F_CID)[3]).unlink()
    with pytest.raises(ContentNotFoundError, match="not found in"):
        store.read(F_CID)
    with pytest.raises(ContentNotFoundError):
        store.pin(F_CID)
    assert store.pins() == []
    with pytest.raises(ContentNotFoundError):
        store.get(F_CID, tmp_path / "out" / "f.bin")
    assert list((tmp_path / "out").iterdir()) == []


def test_failed_get_leaves_no_temp_and_keeps_old_file(store: EmbeddedStore, tmp_path: Path) -> None:
    """A1: content that fails verification half-way never replaces or litters the target."""
    store.add_bytes(content("f", 1_048_576))
    victim = store.block_path(leaf_cids(store, F_CID)[2])  # after two good leaves were written
    victim.write_bytes(b"x" * 262_144)
    out = tmp_path / "cache"
    out.mkdir()
    (out / "model.bin").write_bytes(b"previous version")
    with pytest.raises(CorruptContentError):
        store.get(F_CID, out / "model.bin")
    assert sorted(p.name for p in out.iterdir()) == ["model.bin"]
    assert (out / "model.bin").read_bytes() == b"previous version"


def test_failed_directory_get_leaves_nothing(store: EmbeddedStore, tmp_path: Path) -> None:
    store.add_dir(make_tree(tmp_path / "src"))
    vocab = CID.parse(TREE_ENTRIES["m/tok/vocab.txt"])
    store.block_path(vocab).write_bytes(b"tampered")
    out = tmp_path / "dst"
    with pytest.raises(CorruptContentError):
        store.get(TREE_ROOT, out / "m")
    assert list(out.iterdir()) == []
    assert leftovers(tmp_path) == []


def test_hash_valid_dag_with_lying_sizes_is_corrupt(store: EmbeddedStore) -> None:
    leaf = store.put_block(b"abc")
    liar = store.put_block(file_node([PBLink(leaf, "", 3)], [4]), DAG_PB)
    with pytest.raises(CorruptContentError, match="has 3 bytes, its parent says 4"):
        store.read(liar)
    inner = store.put_block(file_node([PBLink(leaf, "", 3)], [3]), DAG_PB)
    outer = store.put_block(file_node([PBLink(inner, "", 50)], [5]), DAG_PB)
    with pytest.raises(CorruptContentError, match="holds 3 bytes, parent says 5"):
        store.read(outer)
    missing_sizes = store.put_block(file_node([PBLink(leaf, "", 3)], []), DAG_PB)
    with pytest.raises(CorruptContentError, match="blocksizes differ"):
        store.read(missing_sizes)


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../../escape"])
def test_unsafe_directory_names_are_refused(
    store: EmbeddedStore, tmp_path: Path, name: str
) -> None:
    leaf = store.put_block(b"payload")
    evil = store.put_block(directory_node([PBLink(leaf, name, 7)]), DAG_PB)
    with pytest.raises(CorruptContentError, match="unsafe entry name"):
        store.get(evil, tmp_path / "out" / "d")
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "escape").exists()


# --- adding --------------------------------------------------------------------------------------


def test_concurrent_adds_from_threads(store: EmbeddedStore) -> None:
    payloads = [content(f"thread-{i % 4}", 300_000 + 70_000 * (i % 4)) for i in range(12)]
    expected = [store.add_bytes(p, only_hash=True) for p in payloads]
    start = threading.Barrier(6)

    def add(data: bytes) -> CID:
        start.wait(timeout=30)
        return store.add_bytes(data)

    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(add, payloads))
    assert got == expected
    for cid, data in zip(expected, payloads, strict=True):
        assert store.read(cid) == data
    assert leftovers(store.root) == []


def test_concurrent_directory_and_file_adds(store: EmbeddedStore, tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    with ThreadPoolExecutor(max_workers=4) as pool:
        dirs = [pool.submit(store.add_dir, root) for _ in range(4)]
        files = [pool.submit(store.add_file, root / "model.safetensors") for _ in range(4)]
        assert {str(f.result()) for f in dirs} == {TREE_ROOT}
        assert {str(f.result()) for f in files} == {TREE_ENTRIES["m/model.safetensors"]}
    store.pin(TREE_ROOT)


class _Pattern:
    """A large synthetic stream that holds only one small pattern in memory."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.pattern = content("pattern", 1 << 20)

    def readinto(self, view: memoryview) -> int:
        n = min(len(view), self.left, len(self.pattern))
        view[:n] = self.pattern[:n]
        self.left -= n
        return n

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("readinto must be used")


def test_adding_a_large_stream_uses_bounded_memory(store: EmbeddedStore) -> None:
    size = 80 << 20
    tracemalloc.start()
    try:
        cid = store.add_stream(_Pattern(size))  # type: ignore[arg-type]
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the chunker's ring of buffers, plus a little: never proportional to the input
    bound = (default_workers() + 1) * DEFAULT_BATCH * CHUNK_SIZE + (2 << 20)
    assert peak < bound < size // 3, f"peak {peak} bytes for an {size}-byte add"
    assert store.stat(cid).size == size
    assert cid == store.add_stream(_Pattern(size), only_hash=True)  # type: ignore[arg-type]


def test_symlinks_are_followed_and_loops_refused(store: EmbeddedStore, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "config.json").symlink_to(root / "config.json")
    (linked / "model.safetensors").symlink_to(root / "model.safetensors")
    (linked / "tok").symlink_to(root / "tok")
    assert str(store.add_dir(linked)) == TREE_ROOT
    (root / "tok" / "loop").symlink_to(root)
    with pytest.raises(StoreError, match="symlink loop"):
        store.add_dir(root)


def test_special_files_and_huge_directories_are_refused(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "pipe")
    with pytest.raises(StoreError, match="unsupported file type"):
        store.add_dir(fifo_dir)
    big = tmp_path / "big"
    big.mkdir()
    for i in range(1001):
        (big / f"f{i}").touch()
    with pytest.raises(StoreError, match="HAMT"):
        store.add_dir(big)


def test_non_utf8_names_are_refused(store: EmbeddedStore, tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    fd = os.open(os.fsencode(root) + b"/\xff.bin", os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    with pytest.raises(StoreError, match="not UTF-8"):
        store.add_dir(root)


# --- pins ----------------------------------------------------------------------------------------


def test_pins_are_listed_and_removed(store: EmbeddedStore, tmp_path: Path) -> None:
    cid = store.add_dir(make_tree(tmp_path))
    store.pin(str(CID(0, DAG_PB, cid.multihash)))
    assert store.pins() == [cid]
    store.unpin(cid)
    assert store.pins() == []


# --- factory -------------------------------------------------------------------------------------


def test_open_store_picks_backend(tmp_path: Path) -> None:
    embedded = open_store(tmp_path / "a")
    assert isinstance(embedded, EmbeddedStore) and embedded.root == tmp_path / "a"
    from_url = open_store(f"file://{tmp_path / 'b'}")
    assert isinstance(from_url, EmbeddedStore) and from_url.root == tmp_path / "b"
    kubo = open_store("http://127.0.0.1:5001/")
    assert isinstance(kubo, KuboStore) and kubo.url == "http://127.0.0.1:5001"
    kubo.close()
    with pytest.raises(ConfigError, match="unsupported content store"):
        open_store("ftp://example/x")
    with pytest.raises(ConfigError, match="empty content store spec"):
        open_store("  ")


def test_default_store_spec_from_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANCHORML_STORE", raising=False)
    monkeypatch.delenv("ANCHORML_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_store_spec() == str(tmp_path / ".anchorml" / "store")
    monkeypatch.setenv("ANCHORML_DATA_DIR", str(tmp_path / "data"))
    assert default_store_spec() == str(tmp_path / "data" / "store")
    monkeypatch.setenv("ANCHORML_STORE", "http://127.0.0.1:5001")
    assert default_store_spec() == "http://127.0.0.1:5001"
