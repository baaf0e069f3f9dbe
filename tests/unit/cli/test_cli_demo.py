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
    net = _devnet(tmp_path / "mynet")
    settings = Settings(deployment=net / "deployment.json", data_dir=tmp_path / "elsewhere")
    assert devnet_root(None, settings) == net


def test_the_data_dir_is_the_devnet_folder(tmp_path: Path) -> None:
    # what `anchorml up` prints: ANCHORML_DATA_DIR=X, the folder it filled (no X/devnet)
    net = _devnet(tmp_path / "mynet")
    assert devnet_root(None, Settings(data_dir=net)) == net
    # a deployment file kept elsewhere does not hide it
    settings = Settings(deployment=tmp_path / "none" / "deployment.json", data_dir=net)
    assert devnet_root(None, settings) == net


def test_an_explicit_data_dir_wins(tmp_path: Path) -> None:
    other = _devnet(tmp_path / "other")
    default = _devnet(tmp_path / "default")
    assert devnet_root(other, Settings(data_dir=default)) == other


def test_no_devnet_names_every_place_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        devnet_root(
            None, Settings(deployment=tmp_path / "a" / "deployment.json", data_dir=tmp_path)
        )
    assert str(tmp_path / "a") in str(err.value) and f"or {tmp_path}:" in str(err.value)
    assert "anchorml up" in str(err.value)
