"""The content store against a real IPFS daemon (js-ipfs from node_modules).

1. The embedded store and the daemon's own ``/api/v0/add`` mint the same CIDs for the same
   files and directories.
2. CAR files move DAGs both ways under the same root (embedded export → daemon ``dag/import``;
   daemon ``dag/export`` → embedded import).
3. :class:`KuboStore` passes the behaviour suite the embedded store passes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from registry.dev.ipfs import JsIpfsDaemon
from registry.errors import CorruptContentError
from registry.store import CID, EmbeddedStore, KuboStore
from registry.store.car import write_car

pytestmark = pytest.mark.integration


def _load_suite() -> ModuleType:
    """The shared behaviour suite lives with the unit tests; load it by path."""
    path = Path(__file__).resolve().parents[2] / "unit" / "store" / "test_store_behaviour.py"
    spec = importlib.util.spec_from_file_location("store_behaviour_suite", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


suite = _load_suite()
content = suite.content


@pytest.fixture(scope="module")
def daemon() -> Iterator[JsIpfsDaemon]:
    with JsIpfsDaemon() as running:
        yield running


@pytest.fixture
def kubo(daemon: JsIpfsDaemon) -> Iterator[KuboStore]:
    with KuboStore(daemon.url, fetch_timeout=2, local_timeout=1) as store:
        yield store


@pytest.fixture
def embedded(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "embedded")


def daemon_add_file(url: str, path: Path, **extra: str) -> str:
    """The daemon's CID for one file, asked with plain httpx (not through KuboStore)."""
    params = {
        "cid-version": "1",
        "raw-leaves": "true",
        "chunker": "size-262144",
        "cid-base": "base32",
        "pin": "false",
    } | extra
    with open(path, "rb") as handle:
        response = httpx.post(
            f"{url}/api/v0/add", params=params, files={"file": (path.name, handle)}, timeout=120
        )
    response.raise_for_status()
    return str(response.json()["Hash"])


def write_rich_tree(root: Path) -> Path:
    """Nested directories, empty ones, odd names, empty and multi-chunk files."""
    files = {
        "README.md": content("r", 1200),
        "weights/model-00001.safetensors": content("w1", 700_000),
        "weights/model-00002.safetensors": content("w2", 262_144),
        "weights/empty.bin": b"",
        "tokenizer/v1/merges.txt": content("t", 90_000),
        "tokenizer/v1/special tokens #1 100%.json": content("s", 77),
        "données/ünïcode-名前.txt": content("u", 10),
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "empty-dir").mkdir()
    (root / "tokenizer" / "v2-empty").mkdir()
    return root


# --- 1. same CIDs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "size"),
    [(str(v["seed"]), int(str(v["size"]))) for v in suite.VECTORS if v["kind"] == "file"]
    + [("x", 262_143), ("y", 524_289), ("z", 3_000_000)],
)
def test_daemon_and_embedded_agree_on_files(
    daemon: JsIpfsDaemon, embedded: EmbeddedStore, tmp_path: Path, seed: str, size: int
) -> None:
    path = tmp_path / f"{seed}.bin"
    path.write_bytes(content(seed, size))
    ours = str(embedded.add_file(path))
    assert daemon_add_file(daemon.url, path) == ours
    assert daemon_add_file(daemon.url, path, **{"only-hash": "true"}) == ours
    vector = [str(v["cid"]) for v in suite.VECTORS if v.get("seed") == seed]
    if vector:
        assert vector == [ours]


def test_daemon_and_embedded_agree_on_vector_tree(
    kubo: KuboStore, embedded: EmbeddedStore, tmp_path: Path
) -> None:
    root = suite.make_tree(tmp_path)
    ours: list[tuple[str, str]] = []
    theirs: list[tuple[str, str]] = []
    assert str(embedded.add_dir(root, on_entry=lambda e: ours.append((e.path, str(e.cid))))) == (
        suite.TREE_ROOT
    )
    assert str(kubo.add_dir(root, on_entry=lambda e: theirs.append((e.path, str(e.cid))))) == (
        suite.TREE_ROOT
    )
    assert sorted(theirs) == sorted(ours)


def test_daemon_and_embedded_agree_on_rich_tree(
    kubo: KuboStore, embedded: EmbeddedStore, tmp_path: Path
) -> None:
    root = write_rich_tree(tmp_path / "model")
    ours = embedded.add_dir(root)
    assert kubo.add_dir(root) == ours
    # and the daemon serves each file under the same paths
    for rel in ("weights/model-00001.safetensors", "données/ünïcode-名前.txt"):
        response = httpx.post(f"{kubo.url}/api/v0/cat", params={"arg": f"/ipfs/{ours}/{rel}"})
        assert response.content == (root / rel).read_bytes()


# --- 2. CAR files both ways --------------------------------------------------------------------


def test_embedded_car_imports_into_daemon_under_same_root(
    kubo: KuboStore, embedded: EmbeddedStore, tmp_path: Path
) -> None:
    root = write_rich_tree(tmp_path / "fresh")
    (root / "nonce.txt").write_bytes(hashlib.sha256(str(tmp_path).encode()).digest())
    cid = embedded.add_dir(root)
    assert not kubo.has(cid)
    car = embedded.export_car(cid, tmp_path / "fresh.car")
    assert kubo.import_car(car) == [cid]
    assert kubo.has(cid)
    pins = httpx.post(f"{kubo.url}/api/v0/pin/ls", params={"arg": str(cid)}).json()
    assert {CID.parse(k) for k in pins["Keys"]} == {cid.to_v1()}
    response = httpx.post(f"{kubo.url}/api/v0/cat", params={"arg": f"/ipfs/{cid}/nonce.txt"})
    assert response.content == (root / "nonce.txt").read_bytes()


def test_daemon_car_imports_into_embedded_store(
    kubo: KuboStore, embedded: EmbeddedStore, tmp_path: Path
) -> None:
    root = write_rich_tree(tmp_path / "src")
    cid = kubo.add_dir(root)
    car = kubo.export_car(cid, tmp_path / "daemon.car")
    assert embedded.import_car(car) == [cid]
    embedded.get(cid, tmp_path / "copy")
    assert suite.tree_files(tmp_path / "copy") == suite.tree_files(root)
    # the two exports hold the same blocks in the same order
    ours = embedded.export_car(cid, tmp_path / "embedded.car")
    assert ours.read_bytes() == car.read_bytes()


def test_tampered_block_served_by_daemon_is_detected(kubo: KuboStore, tmp_path: Path) -> None:
    """js-ipfs's dag/import stores a block under a CID it does not hash to, and serves it;
    KuboStore re-hashes what it reads and refuses it."""
    data = hashlib.sha256(str(tmp_path).encode()).digest() * 100
    cid = CID.for_block(0x55, data)
    # flip a bit (replacing the last byte with a constant is a no-op when it already is one)
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    car = io.BytesIO()
    write_car(car, [cid], [(cid, tampered)])
    response = httpx.post(
        f"{kubo.url}/api/v0/dag/import",
        params={"pin-roots": "false"},
        files={"file": ("tampered.car", car.getvalue())},
    )
    assert response.status_code == 200  # the daemon does not check
    served = httpx.post(f"{kubo.url}/api/v0/block/get", params={"arg": str(cid)})
    assert served.content == tampered
    with pytest.raises(CorruptContentError, match="does not hash to its CID"):
        kubo.get_block(cid)
    with pytest.raises(CorruptContentError):
        kubo.read(cid)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CorruptContentError):
        kubo.get(cid, out / "x.bin")
    assert list(out.iterdir()) == []


# --- 3. the behaviour suite over the daemon ----------------------------------------------------


class TestKuboStore(suite.StoreBehaviour):  # type: ignore[misc,name-defined]
    """Every behaviour test of the embedded store, against the daemon."""

    @pytest.fixture
    def store(self, kubo: KuboStore) -> Iterator[KuboStore]:
        yield kubo


def test_daemon_identity(kubo: KuboStore) -> None:
    assert kubo.flavour == "js-ipfs"
    assert kubo.version()["Version"] == "0.18.1"
