"""KuboStore against a fake daemon (httpx.MockTransport): parameters sent, errors mapped,
and daemon answers verified rather than trusted."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from test_store_behaviour import TREE_ENTRIES, TREE_ROOT, content, make_tree

from registry.errors import (
    ContentNotFoundError,
    CorruptContentError,
    InvalidCIDError,
    StoreError,
    StoreUnavailableError,
)
from registry.store import CID, EmbeddedStore, KuboStore
from registry.store.car import write_car
from registry.store.kubo import ADD_PARAMS

F_CID = "bafybeidah3bzaz4cwnjaz2aj3p7ingoou5c4f5w2vmuwt7igejftdr4bfe"


class FakeDaemon:
    """Serves block/get and cat from an embedded store; records every request."""

    def __init__(self, backing: EmbeddedStore, agent: str = "kubo/0.30.0/") -> None:
        self.backing = backing
        self.agent = agent
        self.requests: list[httpx.Request] = []
        self.cat_body: Callable[[bytes], bytes] = lambda data: data
        self.routes: dict[str, Callable[[httpx.Request], httpx.Response]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        command = request.url.path.removeprefix("/api/v0/")
        if command in self.routes:
            return self.routes[command](request)
        arg = request.url.params.get("arg", "")
        if command == "id":
            return httpx.Response(200, json={"AgentVersion": self.agent})
        if command == "block/get":
            path = self.backing.block_path(arg)
            if not path.exists():
                return error(500, "block was not found locally (offline): ipld: could not find")
            return httpx.Response(200, content=path.read_bytes())
        if command == "cat":
            return httpx.Response(200, content=self.cat_body(self.backing.read(arg)))
        return error(404, f"unknown command {command}")

    def store(self) -> KuboStore:
        return KuboStore(
            "http://daemon:5001", client=httpx.Client(transport=httpx.MockTransport(self))
        )


def error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"Message": message, "Code": 0, "Type": "error"})


@pytest.fixture
def daemon(tmp_path: Path) -> FakeDaemon:
    backing = EmbeddedStore(tmp_path / "backing")
    backing.add_bytes(content("f", 1_048_576))
    return FakeDaemon(backing)


def multipart_names(request: httpx.Request) -> list[tuple[str, str]]:
    """``(decoded filename, content type)`` of each part of a captured upload."""
    body = request.read()
    ctype = request.headers["Content-Type"]
    boundary = ctype.split("boundary=")[1].encode()
    out = []
    for part in body.split(b"--" + boundary)[1:-1]:
        head = part.split(b"\r\n\r\n", 1)[0].decode()
        name = head.split('filename="')[1].split('"')[0]
        part_type = head.split("Content-Type: ")[1].split("\r\n")[0]
        out.append((unquote(name), part_type))
    return out


# --- reads are verified ------------------------------------------------------------------------


def test_cat_streams_and_verifies(daemon: FakeDaemon) -> None:
    store = daemon.store()
    assert store.read(F_CID) == content("f", 1_048_576)
    commands = [r.url.path for r in daemon.requests]
    # the root node via block/get, then every leaf byte through one cat
    assert commands == ["/api/v0/block/get", "/api/v0/cat"]
    assert daemon.requests[0].url.params["timeout"] == "30s"


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "does not hash to its CID"),
        (lambda d: d + b"extra", "longer than its DAG"),
        (lambda d: d[:-5], "ended early"),
    ],
)
def test_cat_rejects_what_the_daemon_changed(
    daemon: FakeDaemon, tamper: Callable[[bytes], bytes], message: str
) -> None:
    daemon.cat_body = tamper
    with pytest.raises(CorruptContentError, match=message):
        daemon.store().read(F_CID)


def test_get_block_rejects_tampered_block(daemon: FakeDaemon) -> None:
    leaf = daemon.backing.put_block(b"genuine")
    daemon.backing.block_path(leaf).write_bytes(b"forgery")
    with pytest.raises(CorruptContentError):
        daemon.store().get_block(leaf)


def test_tampered_cat_leaves_no_file(daemon: FakeDaemon, tmp_path: Path) -> None:
    daemon.cat_body = lambda d: d[:300_000] + b"\0" + d[300_001:]
    out = tmp_path / "out"
    with pytest.raises(CorruptContentError):
        daemon.store().get(F_CID, out / "f.bin")
    assert list(out.iterdir()) == []


# --- errors are translated once ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "error_type"),
    [
        (error(500, "block was not found locally (offline)"), ContentNotFoundError),
        (error(500, "Failed to get block: request timed out"), ContentNotFoundError),
        (error(500, "context deadline exceeded"), ContentNotFoundError),
        (error(400, "invalid CID: selected encoding not supported"), InvalidCIDError),
        (error(500, "repo is locked"), StoreError),
        (httpx.Response(502, text="bad gateway"), StoreError),
    ],
)
def test_api_errors_map_to_typed_errors(
    daemon: FakeDaemon, response: httpx.Response, error_type: type[Exception]
) -> None:
    daemon.routes["block/get"] = lambda _request: response
    with pytest.raises(error_type) as caught:
        daemon.store().get_block(F_CID)
    assert type(caught.value) is error_type


def test_unreachable_daemon_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    store = KuboStore(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        store.get_block(F_CID)
    with pytest.raises(StoreUnavailableError):
        store.add_bytes(b"x")


def test_has_block_is_a_local_check(daemon: FakeDaemon) -> None:
    daemon.routes["block/stat"] = lambda r: (
        httpx.Response(200, json={"Key": r.url.params["arg"], "Size": 1})
        if daemon.backing.has_block(r.url.params["arg"])
        else error(500, "request timed out")
    )
    store = daemon.store()
    assert store.has(F_CID)
    assert not store.has(CID.for_block(0x55, b"absent"))
    params = daemon.requests[-1].url.params
    assert (params["offline"], params["timeout"]) == ("true", "1s")


# --- adds send explicit layout parameters ------------------------------------------------------


def _fake_add(lines: Sequence[Mapping[str, object]]) -> Callable[[httpx.Request], httpx.Response]:
    body = "\n".join(json.dumps(line) for line in lines) + "\n"
    return lambda request: (request.read(), httpx.Response(200, text=body))[1]


def test_add_file_sends_explicit_parameters(daemon: FakeDaemon, tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(content("f", 1_048_576))
    daemon.routes["add"] = _fake_add([{"Name": "f.bin", "Hash": F_CID, "Size": "1048838"}])
    assert str(daemon.store().add_file(path)) == F_CID
    (request,) = [r for r in daemon.requests if r.url.path == "/api/v0/add"]
    assert dict(request.url.params) == ADD_PARAMS | {"pin": "true"}
    assert ADD_PARAMS["cid-version"] == "1" and ADD_PARAMS["raw-leaves"] == "true"
    assert ADD_PARAMS["chunker"] == "size-262144" and ADD_PARAMS["cid-base"] == "base32"
    assert multipart_names(request) == [("f.bin", "application/octet-stream")]


@pytest.mark.parametrize(
    ("agent", "expected_parts"),
    [
        (
            "kubo/0.30.0/",
            [
                ("m", "application/x-directory"),
                ("m/config.json", "application/octet-stream"),
                ("m/empty", "application/x-directory"),
                ("m/model.safetensors", "application/octet-stream"),
                ("m/tok", "application/x-directory"),
                ("m/tok/vocab.txt", "application/octet-stream"),
                ("m/tök", "application/x-directory"),
            ],
        ),
        (
            "js-ipfs/0.18.1",
            [
                ("m/config.json", "application/octet-stream"),
                ("m/empty", "application/x-directory"),
                ("m/model.safetensors", "application/octet-stream"),
                ("m/tok/vocab.txt", "application/octet-stream"),
                ("m/tök", "application/x-directory"),
            ],
        ),
    ],
)
def test_add_dir_multipart_layout_per_daemon(
    daemon: FakeDaemon, tmp_path: Path, agent: str, expected_parts: list[tuple[str, str]]
) -> None:
    root = make_tree(tmp_path)
    (root / "empty").mkdir()
    (root / "tök").mkdir()
    daemon.agent = agent
    lines = [{"Name": name, "Hash": cid, "Size": "1"} for name, cid in TREE_ENTRIES.items()]
    daemon.routes["add"] = _fake_add(lines)
    seen: list[str] = []
    cid = daemon.store().add_dir(root, on_entry=lambda e: seen.append(e.path))
    assert str(cid) == TREE_ROOT
    assert seen == list(TREE_ENTRIES)
    (request,) = [r for r in daemon.requests if r.url.path == "/api/v0/add"]
    assert multipart_names(request) == expected_parts


def test_add_without_root_in_answer_is_an_error(daemon: FakeDaemon) -> None:
    daemon.routes["add"] = _fake_add([{"Name": "other", "Hash": F_CID, "Size": "1"}])
    with pytest.raises(StoreError, match="reported no CID"):
        daemon.store().add_bytes(b"x")


def test_add_error_line_in_stream_is_an_error(daemon: FakeDaemon) -> None:
    daemon.routes["add"] = _fake_add([{"Message": "disk full", "Type": "error"}])
    with pytest.raises(StoreError, match="disk full"):
        daemon.store().add_bytes(b"x")


@pytest.mark.parametrize(
    ("agent", "expected"),
    [("kubo/0.30.0/", {"cid-codec": "dag-pb"}), ("js-ipfs/0.18.1", {"format": "dag-pb"})],
)
def test_put_block_codec_parameter_per_daemon(
    daemon: FakeDaemon, agent: str, expected: dict[str, str]
) -> None:
    daemon.agent = agent
    node = b"\x0a\x02\x08\x01"
    v0 = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
    daemon.routes["block/put"] = _fake_add([{"Key": v0, "Size": 4}])
    cid = daemon.store().put_block(node, 0x70)
    assert str(cid) == "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
    params = dict(daemon.requests[-1].url.params)
    assert params.items() >= expected.items()


def test_put_block_answer_for_other_bytes_is_refused(daemon: FakeDaemon) -> None:
    wrong = str(CID.for_block(0x55, b"other"))
    daemon.routes["block/put"] = _fake_add([{"Key": wrong, "Size": 5}])
    with pytest.raises(CorruptContentError, match="daemon stored block as"):
        daemon.store().put_block(b"mine")


# --- CAR files are verified on both sides ------------------------------------------------------


def test_export_car_rejects_tampered_archive(daemon: FakeDaemon, tmp_path: Path) -> None:
    data = b"payload"
    cid = CID.for_block(0x55, data)
    buf = io.BytesIO()
    write_car(buf, [cid], [(cid, b"paylOad")])
    daemon.routes["dag/export"] = lambda _r: httpx.Response(200, content=buf.getvalue())
    with pytest.raises(CorruptContentError):
        daemon.store().export_car(cid, tmp_path / "out" / "x.car")
    assert list((tmp_path / "out").iterdir()) == []


def test_import_car_verifies_before_upload(daemon: FakeDaemon, tmp_path: Path) -> None:
    cid = CID.for_block(0x55, b"payload")
    buf = io.BytesIO()
    write_car(buf, [cid], [(cid, b"paylOad")])
    path = tmp_path / "bad.car"
    path.write_bytes(buf.getvalue())
    with pytest.raises(CorruptContentError):
        daemon.store().import_car(path)
    assert [r.url.path for r in daemon.requests] == []


def test_import_car_reports_pin_errors(daemon: FakeDaemon, tmp_path: Path) -> None:
    cid = CID.for_block(0x55, b"payload")
    buf = io.BytesIO()
    write_car(buf, [cid], [(cid, b"payload")])
    path = tmp_path / "ok.car"
    path.write_bytes(buf.getvalue())
    answer = {"Root": {"Cid": {"/": str(cid)}, "PinErrorMsg": "pin failed: missing block"}}
    daemon.routes["dag/import"] = _fake_add([answer])
    with pytest.raises(StoreError, match="missing block"):
        daemon.store().import_car(path)
    daemon.routes["dag/import"] = _fake_add([{"Root": {"Cid": {"/": str(cid)}, "PinErrorMsg": ""}}])
    assert daemon.store().import_car(path) == [cid]
    assert daemon.requests[-1].url.params["pin-roots"] == "true"
