"""`anchorml demo` finds the devnet the way `anchorml up` told the user to point at it."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.cli.demo import devnet_root
from registry.config import Settings
from registry.errors import ConfigError


def _devnet(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "deployment.json").write_text("{}")
    return path


def test_the_exported_deployment_names_the_devnet(tmp_path: Path) -> None:
    # what `anchorml up --data-dir X` prints: ANCHORML_DEPLOYMENT=X/deployment.json and
    # ANCHORML_DATA_DIR=X (so $ANCHORML_DATA_DIR/devnet does not exist)
    net = _devnet(tmp_path / "mynet")
    settings = Settings(deployment=net / "deployment.json", data_dir=net)
    assert devnet_root(None, settings) == net


def test_without_exports_the_default_devnet_is_used(tmp_path: Path) -> None:
    net = _devnet(tmp_path / "devnet")
    assert devnet_root(None, Settings(data_dir=tmp_path)) == net


def test_an_explicit_data_dir_wins(tmp_path: Path) -> None:
    other = _devnet(tmp_path / "other")
    _devnet(tmp_path / "devnet")
    assert devnet_root(other, Settings(data_dir=tmp_path)) == other


def test_no_devnet_names_every_place_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        devnet_root(None, Settings(data_dir=tmp_path))
    assert str(tmp_path / "devnet") in str(err.value)
    assert "anchorml up" in str(err.value)
