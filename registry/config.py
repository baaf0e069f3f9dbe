"""Client settings shared by every anchorml process (CLI, node, gateway).

Values come from the environment (``ANCHORML_*``) and may be overridden by command-line options.
Secrets (the private key) are held as ``SecretStr`` and never printed.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from registry.errors import ConfigError

DEFAULT_RPC_URL = "http://127.0.0.1:8545"

C = TypeVar("C", bound=BaseSettings)


def load_config_file(
    cls: type[C], path: Path | None, env_prefix: str, what: str, overrides: dict[str, Any]
) -> C:
    """Build ``cls`` from an optional TOML file, the environment and ``overrides``.

    Environment variables (``env_prefix`` + the setting's name) override the file; ``overrides``
    (command-line options; None means not given) override both.

    Raises:
        ConfigError: unreadable file or invalid values; the message names ``what`` ("node
            config") and the first invalid setting.
    """
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {what} {path}: {exc}") from None
    env_keys = {k[len(env_prefix) :].lower() for k in os.environ if k.startswith(env_prefix)}
    values = {k: v for k, v in values.items() if k not in env_keys}
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return cls(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(f"invalid {what}: {where}: {first['msg']}") from None


class Settings(BaseSettings):
    """Where the chain, the store and the deployment are, and which key signs.

    Attributes:
        rpc_url: JSON-RPC URL of the chain (``ANCHORML_RPC_URL``); ``embedded`` for an
            in-process eth-tester chain.
        private_key: hex private key that signs transactions (``ANCHORML_PRIVATE_KEY``).
        key_file: file holding the private key instead (``ANCHORML_KEY_FILE``).
        store: content store — a directory (embedded) or an IPFS RPC URL (``ANCHORML_STORE``).
        deployment: deployment file (``ANCHORML_DEPLOYMENT``).
        data_dir: data directory (``ANCHORML_DATA_DIR``).
    """

    model_config = SettingsConfigDict(env_prefix="ANCHORML_", extra="ignore")

    rpc_url: str = DEFAULT_RPC_URL
    private_key: SecretStr | None = None
    key_file: Path | None = None
    store: str | None = None
    deployment: Path | None = None
    data_dir: Path = Path.home() / ".anchorml"

    @property
    def store_spec(self) -> str:
        """The store to open: the configured one, or ``<data_dir>/store``."""
        return self.store or str(self.data_dir / "store")

    @property
    def deployment_path(self) -> Path:
        """The deployment file: the configured one, or ``<data_dir>/deployment.json``."""
        return self.deployment or self.data_dir / "deployment.json"

    @property
    def cache_dir(self) -> Path:
        """Verified model cache shared by the node and the gateway."""
        return self.data_dir / "models"
