"""One behaviour suite for every content-store backend.

:class:`StoreBehaviour` holds the tests; each backend subclasses it with a ``store`` fixture.
Here it runs against :class:`EmbeddedStore`; ``tests/integration/store/test_store_daemon.py``
runs the same class against :class:`KuboStore` over a real js-ipfs daemon.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.errors import (
    ContentNotFoundError,
    CorruptContentError,
    InvalidCIDError,
    StoreError,
)
from registry.store import CID, AddedEntry, ContentStore, DirEntry, EmbeddedStore, NodeStat
from registry.store.car import CarReader, write_car

VECTORS_FILE = Path(__file__).resolve().parents[4] / "shared" / "vectors" / "unixfs-cids.json"
VECTORS: list[dict[str, object]] = json.loads(VECTORS_FILE.read_text())

EMPTY_DIR = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
TREE_ROOT = "bafybeibekho7luqm7ymazs6wkpik5f2mmbtmt6n6jph6ubg2ypvdsvad7m"
TREE_ENTRIES = {
    "m/config.json": "bafkreibirdchesmv3ad6cys7x2qofultwt72ddtjveee2i3td635wiyr6a",
    "m/model.safetensors": "bafybeibpttci22yeto4rlw4u44jsoxv76433ifi7uaeey6xlaxpfibtooa",
    "m/tok/vocab.txt": "bafkreidagaoxysef4an6zqoy3ygyplcx4vp4ncgvg63xsdx7mb7vodouga",
    "m/tok": "bafybeibct42sg4lqhepfqasai4w4beu4zur34ujjfmnludtzjox6wznmv4",
    "m": TREE_ROOT,
}


def content(seed: str, size: int) -> bytes:
    """Vector content: the first ``size`` bytes of SHAKE-256("vector:" + seed)."""
    return hashlib.shake_256(("vector:" + seed).encode()).digest(size)


def file_vectors(max_size: int) -> list[tuple[str, int, str]]:
    """``(seed, size, cid)`` of the file vectors up to ``max_size`` bytes."""
    return [
        (str(v["seed"]), int(str(v["size"])), str(v["cid"]))
        for v in VECTORS
        if v["kind"] == "file" and int(str(v["size"])) <= max_size
    ]


def make_tree(parent: Path) -> Path:
    """Write the directory vector ``m`` under ``parent`` and return its path."""
    (vector,) = [v for v in VECTORS if v["kind"] == "dir"]
    root = parent / str(vector["name"])
    entries = vector["entries"]
    assert isinstance(entries, list)
    for entry in entries:
        path = root / entry["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content(entry["seed"], entry["size"]))
    assert vector["cid"] == TREE_ROOT
    return root


def tree_files(root: Path) -> dict[str, bytes]:
    """Relative path → bytes of every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def unique(label: str, size: int = 3000) -> bytes:
    """Content no other test adds (so a shared daemon cannot already hold it)."""
    return hashlib.shake_256(f"behaviour:{label}:{size}".encode()).digest(size)


class StoreBehaviour:
    """Behaviour every :class:`ContentStore` backend must have."""

    @pytest.fixture
    def store(self) -> Iterator[ContentStore]:
        raise NotImplementedError

    # --- adding: CIDs equal ipfs add --cid-version=1 ---------------------------------------

    @pytest.mark.parametrize(("seed", "size", "cid"), file_vectors(2_000_000))
    def test_add_bytes_matches_vector(
        self, store: ContentStore, seed: str, size: int, cid: str
    ) -> None:
        data = content(seed, size)
        assert str(store.add_bytes(data)) == cid
        assert store.read(cid) == data

    def test_add_file_matches_vector_and_reads_back(
        self, store: ContentStore, tmp_path: Path
    ) -> None:
        path = tmp_path / "f.bin"
        path.write_bytes(content("f", 1_048_576))
        cid = store.add_file(path)
        assert str(cid) == "bafybeidah3bzaz4cwnjaz2aj3p7ingoou5c4f5w2vmuwt7igejftdr4bfe"
        assert b"".join(store.cat(cid)) == content("f", 1_048_576)

    def test_add_dir_matches_vector_and_reports_entries(
        self, store: ContentStore, tmp_path: Path
    ) -> None:
        root = make_tree(tmp_path)
        entries: list[AddedEntry] = []
        cid = store.add_dir(root, on_entry=entries.append)
        assert str(cid) == TREE_ROOT
        assert {e.path: str(e.cid) for e in entries} == TREE_ENTRIES
        assert entries[-1].path == "m"
        sizes = {e.path: (e.size, e.is_dir) for e in entries}
        assert sizes["m/model.safetensors"] == (600_000, False)
        assert sizes["m"] == (605_687, True)

    def test_add_path_dispatches_on_kind(self, store: ContentStore, tmp_path: Path) -> None:
        root = make_tree(tmp_path)
        assert str(store.add_path(root)) == TREE_ROOT
        assert str(store.add_path(root / "config.json")) == TREE_ENTRIES["m/config.json"]

    def test_add_dir_with_empty_and_hidden_entries(
        self, store: ContentStore, tmp_path: Path
    ) -> None:
        root = make_tree(tmp_path)
        (root / "empty").mkdir()
        (root / ".git").mkdir()
        (root / ".git" / "HEAD").write_bytes(b"ref: main\n")
        cid = store.add_dir(root)
        assert str(cid) == "bafybeielgvoh3wfrhirpqqj63rtzc6oshb5swwb6o76zrve45tvs5kibna"
        assert [e.name for e in store.ls(cid)] == [
            "config.json",
            "empty",
            "model.safetensors",
            "tok",
        ]
        assert str(store.ls(cid)[1].cid) == EMPTY_DIR

    def test_only_hash_stores_nothing(self, store: ContentStore, tmp_path: Path) -> None:
        data = unique("only-hash")
        path = tmp_path / "x.bin"
        path.write_bytes(data)
        expected = CID.for_block(0x55, data)
        assert store.add_file(path, only_hash=True) == expected
        assert store.add_bytes(data, only_hash=True) == expected
        assert not store.has(expected)
        with pytest.raises(ContentNotFoundError):
            store.get_block(expected)

    def test_add_refuses_missing_path(self, store: ContentStore, tmp_path: Path) -> None:
        with pytest.raises(StoreError, match="not a regular file"):
            store.add_file(tmp_path / "nope")
        with pytest.raises(StoreError, match="not a directory"):
            store.add_dir(tmp_path / "nope")

    # --- reading ---------------------------------------------------------------------------

    def test_stat_file_and_directory(self, store: ContentStore, tmp_path: Path) -> None:
        store.add_dir(make_tree(tmp_path))
        model = TREE_ENTRIES["m/model.safetensors"]
        assert store.stat(model) == NodeStat(CID.parse(model), "file", 600_000, 158, 3)
        assert store.stat(TREE_ROOT) == NodeStat(CID.parse(TREE_ROOT), "directory", 605_687, 171, 3)
        raw = TREE_ENTRIES["m/config.json"]
        assert store.stat(raw) == NodeStat(CID.parse(raw), "file", 300, 300, 0)

    def test_ls_lists_sorted_entries(self, store: ContentStore, tmp_path: Path) -> None:
        store.add_dir(make_tree(tmp_path))
        assert store.ls(TREE_ROOT) == [
            DirEntry("config.json", CID.parse(TREE_ENTRIES["m/config.json"]), 300),
            DirEntry("model.safetensors", CID.parse(TREE_ENTRIES["m/model.safetensors"]), 600_158),
            DirEntry("tok", CID.parse(TREE_ENTRIES["m/tok"]), 5_058),
        ]

    def test_cat_of_directory_is_refused(self, store: ContentStore, tmp_path: Path) -> None:
        store.add_dir(make_tree(tmp_path))
        with pytest.raises(StoreError, match="is a directory"):
            store.read(TREE_ROOT)

    def test_read_refuses_oversized_before_reading(self, store: ContentStore) -> None:
        cid = store.add_bytes(content("f", 1_048_576))
        with pytest.raises(StoreError, match="more than the 1000 allowed"):
            store.read(cid, max_size=1000)
        assert len(store.read(cid, max_size=1_048_576)) == 1_048_576

    def test_get_file_is_atomic_and_exact(self, store: ContentStore, tmp_path: Path) -> None:
        cid = store.add_bytes(content("e", 262_145))
        out_dir = tmp_path / "out"
        target = store.get(cid, out_dir / "e.bin")
        assert target == out_dir / "e.bin"
        assert target.read_bytes() == content("e", 262_145)
        assert sorted(p.name for p in out_dir.iterdir()) == ["e.bin"]
        # a second get replaces the file in place
        store.get(cid, target)
        assert sorted(p.name for p in out_dir.iterdir()) == ["e.bin"]

    def test_get_directory_rebuilds_tree(self, store: ContentStore, tmp_path: Path) -> None:
        root = make_tree(tmp_path / "src")
        (root / "empty").mkdir()
        cid = store.add_dir(root)
        out = tmp_path / "dst" / "model"
        store.get(cid, out)
        assert tree_files(out) == tree_files(root)
        assert (out / "empty").is_dir()
        assert sorted(p.name for p in out.parent.iterdir()) == ["model"]

    def test_get_directory_refuses_existing_target(
        self, store: ContentStore, tmp_path: Path
    ) -> None:
        store.add_dir(make_tree(tmp_path / "src"))
        out = tmp_path / "dst"
        out.mkdir()
        with pytest.raises(StoreError, match="already exists"):
            store.get(TREE_ROOT, out)
        assert list(out.iterdir()) == []
        assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "src"]

    def test_get_refuses_oversized(self, store: ContentStore, tmp_path: Path) -> None:
        cid = store.add_bytes(content("f", 1_048_576))
        with pytest.raises(StoreError, match="more than the 10 allowed"):
            store.get(cid, tmp_path / "f.bin", max_size=10)
        assert list(tmp_path.iterdir()) == []

    def test_missing_content_is_not_found(self, store: ContentStore, tmp_path: Path) -> None:
        absent = CID.for_block(0x55, unique("absent"))
        assert not store.has(absent)
        with pytest.raises(ContentNotFoundError):
            store.get_block(absent)
        with pytest.raises(ContentNotFoundError):
            store.get(absent, tmp_path / "x")
        assert list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "hello",
            "bafy",
            "Qm123",
            "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf35!",
            "zzzz0OIl",
            "f01551220deadbeef",
        ],
    )
    def test_malformed_cid_is_invalid(self, store: ContentStore, text: str, tmp_path: Path) -> None:
        with pytest.raises(InvalidCIDError):
            store.get_block(text)
        with pytest.raises(InvalidCIDError):
            store.read(text)
        with pytest.raises(InvalidCIDError):
            store.get(text, tmp_path / "x")

    # --- blocks, pins, CAR -----------------------------------------------------------------

    def test_put_and_get_block(self, store: ContentStore) -> None:
        cid = store.put_block(b"hello")
        assert str(cid) == "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
        assert store.get_block(cid) == b"hello"
        assert store.has_block(cid)
        dir_cid = store.put_block(b"\x0a\x02\x08\x01", 0x70)
        assert str(dir_cid) == EMPTY_DIR
        assert store.stat(dir_cid).kind == "directory"

    def test_cidv0_and_base58_name_the_same_block(self, store: ContentStore) -> None:
        cid = store.put_block(b"\x0a\x02\x08\x01", 0x70)
        v0 = CID(0, 0x70, cid.multihash)
        assert str(v0) == "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
        assert store.get_block(str(v0)) == b"\x0a\x02\x08\x01"
        assert store.get_block(cid.encode("base58btc")) == b"\x0a\x02\x08\x01"

    def test_empty_dag_pb_file_reads_empty(self, store: ContentStore) -> None:
        cid = store.put_block(b"\x0a\x04\x08\x02\x18\x00", 0x70)
        assert str(CID(0, 0x70, cid.multihash)) == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        assert store.read(cid) == b""
        assert store.stat(cid) == NodeStat(cid, "file", 0, 6, 0)

    def test_pin_complete_dag(self, store: ContentStore, tmp_path: Path) -> None:
        cid = store.add_dir(make_tree(tmp_path))
        store.pin(cid)

    def test_pin_missing_dag_is_not_found(self, store: ContentStore) -> None:
        with pytest.raises(ContentNotFoundError):
            store.pin(CID.for_block(0x55, unique("pin-missing")))

    def test_car_round_trip(self, store: ContentStore, tmp_path: Path) -> None:
        cid = store.add_dir(make_tree(tmp_path / "src"))
        car_path = store.export_car(cid, tmp_path / "out" / "m.car")
        assert sorted(p.name for p in car_path.parent.iterdir()) == ["m.car"]
        with open(car_path, "rb") as handle:
            reader = CarReader(handle)
            blocks = list(reader)
        assert reader.roots == [cid]
        assert blocks[0][0] == cid
        assert {c for c, _ in blocks} == {c for c, _ in store.walk(cid)}
        assert len(blocks) == 8
        # into a fresh store and back out
        other = EmbeddedStore(tmp_path / "other")
        assert other.import_car(car_path) == [cid]
        other.get(cid, tmp_path / "copy")
        assert tree_files(tmp_path / "copy") == tree_files(tmp_path / "src" / "m")
        assert other.pins() == [cid]

    def test_import_car_rejects_tampered_block(self, store: ContentStore, tmp_path: Path) -> None:
        data = unique("tampered-car", 5000)
        cid = CID.for_block(0x55, data)
        buf = io.BytesIO()
        write_car(buf, [cid], [(cid, data[:-1] + bytes([data[-1] ^ 1]))])
        car_path = tmp_path / "bad.car"
        car_path.write_bytes(buf.getvalue())
        with pytest.raises(CorruptContentError):
            store.import_car(car_path)
        assert not store.has(cid)

    def test_import_car_rejects_truncated_file(self, store: ContentStore, tmp_path: Path) -> None:
        data = unique("truncated-car", 5000)
        cid = CID.for_block(0x55, data)
        buf = io.BytesIO()
        write_car(buf, [cid], [(cid, data)])
        car_path = tmp_path / "short.car"
        car_path.write_bytes(buf.getvalue()[:-10])
        with pytest.raises(CorruptContentError, match="truncated CAR"):
            store.import_car(car_path)
        assert not store.has(cid)


class TestEmbeddedStore(StoreBehaviour):
    """The behaviour suite against the embedded store."""

    @pytest.fixture
    def store(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContentStore]:
        with EmbeddedStore(tmp_path_factory.mktemp("store")) as embedded:
            yield embedded
