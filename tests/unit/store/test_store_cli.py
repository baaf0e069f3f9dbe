"""``anchorml store`` commands (the typer app in api/cli/store.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_store_behaviour import TREE_ENTRIES, TREE_ROOT, content, make_tree
from typer.testing import CliRunner

from api.cli.store import app
from registry.errors import ContentNotFoundError, InvalidCIDError, StoreError
from registry.store import EmbeddedStore

F_CID = "bafybeidah3bzaz4cwnjaz2aj3p7ingoou5c4f5w2vmuwt7igejftdr4bfe"

runner = CliRunner()


@pytest.fixture
def data_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir in tmp_path; the store defaults to <data dir>/store."""
    monkeypatch.delenv("ANCHORML_STORE", raising=False)
    monkeypatch.setenv("ANCHORML_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data" / "store"


def test_add_file_prints_cid_alone(data_store: Path, tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(content("f", 1_048_576))
    result = runner.invoke(app, ["add", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == F_CID + "\n"
    assert EmbeddedStore(data_store).read(F_CID) == content("f", 1_048_576)


def test_add_directory_prints_entries_then_root(data_store: Path, tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    result = runner.invoke(app, ["add", str(root)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-1] == TREE_ROOT
    assert lines[:-1] == [f"{cid} {path}" for path, cid in TREE_ENTRIES.items() if path != "m"]


def test_add_only_hash_stores_nothing(data_store: Path, tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(content("f", 1_048_576))
    result = runner.invoke(app, ["add", "--only-hash", str(path)])
    assert result.stdout == F_CID + "\n"
    assert not any((data_store / "blocks").rglob("*"))


def test_cat_get_pin_export_import(data_store: Path, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src")
    assert runner.invoke(app, ["add", str(root)]).exit_code == 0
    cat = runner.invoke(app, ["cat", TREE_ENTRIES["m/config.json"]])
    assert cat.stdout_bytes == content("g1", 300)
    out = tmp_path / "dst" / "m"
    assert runner.invoke(app, ["get", TREE_ROOT, str(out)]).exit_code == 0
    assert (out / "tok" / "vocab.txt").read_bytes() == content("i", 5000)
    pin = runner.invoke(app, ["pin", TREE_ROOT])
    assert pin.stdout == TREE_ROOT + "\n"
    car = tmp_path / "m.car"
    assert runner.invoke(app, ["export", TREE_ROOT, str(car)]).exit_code == 0
    other = tmp_path / "other"
    imported = runner.invoke(app, ["import", str(car), "--store", str(other)])
    assert imported.exit_code == 0, imported.output
    assert imported.stdout == TREE_ROOT + "\n"
    assert [str(cid) for cid in EmbeddedStore(other).pins()] == [TREE_ROOT]


def test_store_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCHORML_STORE", str(tmp_path / "explicit"))
    path = tmp_path / "x"
    path.write_bytes(b"")
    assert runner.invoke(app, ["add", str(path)]).stdout == (
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku\n"
    )
    assert (tmp_path / "explicit" / "blocks").is_dir()


def test_errors_are_typed(data_store: Path, tmp_path: Path) -> None:
    gone = runner.invoke(app, ["add", str(tmp_path / "nope")])
    assert isinstance(gone.exception, StoreError)
    assert str(gone.exception) == f"no such file or directory: {tmp_path / 'nope'}"
    bad = runner.invoke(app, ["cat", "not-a-cid"])
    assert isinstance(bad.exception, InvalidCIDError)
    missing = runner.invoke(app, ["cat", F_CID])
    assert isinstance(missing.exception, ContentNotFoundError)
    assert missing.stdout == ""
