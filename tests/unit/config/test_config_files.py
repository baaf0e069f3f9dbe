"""The node's and the gateway's typed configs: a TOML file, environment variables over it,
command-line values over both, and a ``ConfigError`` naming the setting for anything invalid."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.gateway.config import load_config as load_gateway_config
from node.config import load_config as load_node_config
from registry.errors import ConfigError

KEY = "0x" + "11" * 32


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ANCHORML_"):
            monkeypatch.delenv(name)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_env_overrides_the_file_and_options_override_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _toml(tmp_path, f'private_key = "{KEY}"\nname = "from-file"\nbatch_size = 8\n')
    assert load_node_config(path).batch_size == 8
    monkeypatch.setenv("ANCHORML_BATCH_SIZE", "12")
    cfg = load_node_config(path, name="from-cli", http_port=None)
    assert (cfg.batch_size, cfg.name) == (12, "from-cli")
    assert cfg.private_key is not None and cfg.private_key.get_secret_value() == KEY


def test_gateway_reads_its_own_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _toml(tmp_path, "port = 9000\nbatch_size = 4\n")
    monkeypatch.setenv("ANCHORML_GATEWAY_BATCH_SIZE", "32")
    monkeypatch.setenv("ANCHORML_BATCH_SIZE", "2")  # the node's variable: not the gateway's
    cfg = load_gateway_config(path, port=None)
    assert (cfg.port, cfg.batch_size) == (9000, 32)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f'private_key = "{KEY}"\nbatch_size = 0\n', "invalid node config: batch_size:"),
        (
            f'private_key = "{KEY}"\nkinds = ["INFER", "MINE"]\n',
            "invalid node config: kinds.1: Value error, unknown job kind 'MINE'",
        ),
        ('name = "no key"\n', "set ANCHORML_PRIVATE_KEY or key_file"),
        ("batch_size = [\n", "cannot read node config"),
    ],
)
def test_node_config_errors_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_node_config(_toml(tmp_path, text))


def test_gateway_config_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="default_max_tokens must not exceed max_tokens_cap"):
        load_gateway_config(_toml(tmp_path, "max_tokens_cap = 8\ndefault_max_tokens = 64\n"))
    with pytest.raises(ConfigError, match="cannot read gateway config .*missing.toml"):
        load_gateway_config(tmp_path / "missing.toml")


def test_trusted_gateways_are_addresses_from_a_list_or_a_comma_separated_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = "0x" + "aa" * 20, "0x" + "bb" * 20
    path = _toml(tmp_path, f'private_key = "{KEY}"\ntrusted_gateways = ["{a}"]\n')
    assert load_node_config(path).trusted_gateways == [a]
    monkeypatch.setenv("ANCHORML_TRUSTED_GATEWAYS", f"{a}, {b}")
    assert load_node_config(path).trusted_gateways == [a, b]
    monkeypatch.setenv("ANCHORML_TRUSTED_GATEWAYS", f"{a},not-an-address")
    with pytest.raises(ConfigError, match="'not-an-address' is not an address"):
        load_node_config(path)
