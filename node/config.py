"""The worker node's one typed config: a TOML file plus ``ANCHORML_*`` environment overrides,
validated at start-up (cross-field: a signing key is required, served models parse)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from eth_utils import is_address
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from registry.config import DEFAULT_RPC_URL, Settings, load_config_file
from registry.jobs import JobKind, KindName


class NodeConfig(BaseSettings):
    """Everything a worker node needs.

    Attributes:
        rpc_url, private_key, key_file, store, deployment, data_dir: as in
            :class:`registry.config.Settings` (same ``ANCHORML_*`` variables).
        name: label for logs and the node's state directory.
        endpoint: public URL of this node's HTTP endpoint, declared on chain.
        http_host, http_port: where the HTTP endpoint listens (port 0 = any free port).
        serves: what the node serves: ``name@version`` / ``name@alias`` (one version),
            ``name@*`` (every version of a model, present and future), ``*`` (every model).
        kinds: job kinds this node takes (names in any case: ``["infer"]``).
        confirmations: blocks the listener trails the head by.
        poll_interval_s: seconds between head polls.
        scan_window: blocks per ``eth_getLogs`` request.
        max_tx_retries: rebroadcasts per transaction before giving up.
        tx_timeout_s: seconds to wait for a receipt before rebroadcasting.
        job_timeout_s: wall-clock cap on one job's execution.
        batch_size, batch_wait_ms: dynamic batching of direct inference (B requests or W ms).
        cache_max_bytes: model cache size limit.
        rpc_outage_s: seconds of continuous RPC failure before the node gives up (exit 1).
        trusted_gateways: signing addresses of the gateways whose per-request grants this node
            accepts in place of a caller's token (``ANCHORML_TRUSTED_GATEWAYS``, comma
            separated); empty: only callers' own tokens.
        min_reward_wei, lease_margin, min_lease_s, release_margin_s: which jobs the node takes
            and when it gives one back (:mod:`node.policy`): the least reward per claim slot,
            how much longer than the measured runtime a lease must be, the least lease for
            work not timed yet, and how long before its lease ends a running job is released.
    """

    model_config = SettingsConfigDict(env_prefix="ANCHORML_", extra="forbid")

    rpc_url: str = DEFAULT_RPC_URL
    private_key: SecretStr | None = None
    key_file: Path | None = None
    store: str | None = None
    deployment: Path | None = None
    data_dir: Path = Path.home() / ".anchorml"

    name: str = "node"
    endpoint: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 0
    serves: list[str] = Field(default_factory=list)
    kinds: list[KindName] = Field(default_factory=lambda: list(JobKind))
    confirmations: int = Field(default=0, ge=0, le=64)
    poll_interval_s: float = Field(default=0.5, gt=0, le=60)
    scan_window: int = Field(default=500, ge=1, le=10_000)
    max_tx_retries: int = Field(default=3, ge=0, le=10)
    tx_timeout_s: float = Field(default=30.0, gt=0)
    job_timeout_s: float = Field(default=1800.0, gt=0)
    batch_size: int = Field(default=16, ge=1, le=512)
    batch_wait_ms: float = Field(default=10.0, ge=0, le=1000)
    cache_max_bytes: int = Field(default=8 << 30, gt=0)
    rpc_outage_s: float = Field(default=30.0, gt=0)
    trusted_gateways: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("trusted_gateways", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for address in value:
                if not (isinstance(address, str) and is_address(address)):
                    raise ValueError(f"trusted_gateways: {address!r} is not an address")
        return value

    min_reward_wei: int = Field(default=10**9, ge=0)
    lease_margin: float = Field(default=1.5, ge=1.0, le=100.0)
    min_lease_s: float = Field(default=10.0, ge=0)
    release_margin_s: float = Field(default=5.0, ge=0)

    @model_validator(mode="after")
    def _needs_key(self) -> NodeConfig:
        if self.private_key is None and self.key_file is None:
            raise ValueError("a node signs transactions: set ANCHORML_PRIVATE_KEY or key_file")
        return self

    @property
    def settings(self) -> Settings:
        """The shared client settings this config implies."""
        return Settings(
            rpc_url=self.rpc_url,
            private_key=self.private_key,
            key_file=self.key_file,
            store=self.store,
            deployment=self.deployment,
            data_dir=self.data_dir,
        )

    @property
    def state_dir(self) -> Path:
        """This node's private state (cursor, job log)."""
        return self.data_dir / "nodes" / self.name


def load_config(path: Path | None = None, **overrides: Any) -> NodeConfig:
    """Load the node config from an optional TOML file, the environment and ``overrides``.

    Environment variables override the file; ``overrides`` (command-line options) override both.

    Raises:
        ConfigError: unreadable file or invalid values (the message names the setting).
    """
    return load_config_file(NodeConfig, path, "ANCHORML_", "node config", overrides)
