"""Client settings shared by every anchorml process (CLI, node, gateway).

Values come from the environment (``ANCHORML_*``) and may be overridden by command-line options.
Secrets (the private key) are held as ``SecretStr`` and never printed.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_RPC_URL = "http://127.0.0.1:8545"


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
