"""The gateway's one typed config: a TOML file, ``ANCHORML_GATEWAY_*`` environment variables and
command-line overrides, validated at start-up. Chain, store and key settings are the shared
``ANCHORML_*`` ones (:class:`registry.config.Settings`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from registry.config import load_config_file

ENV_PREFIX = "ANCHORML_GATEWAY_"


class GatewayConfig(BaseSettings):
    """Everything the gateway needs besides the shared client settings.

    Attributes:
        host, port: where to listen (loopback by default).
        max_body_bytes: larger request bodies get 413.
        rate_limit_per_s, rate_limit_burst: token bucket per caller (address, else client IP)
            on inference, job creation and IPFS reads; ``rate_limit_per_s = 0`` disables it.
        inprocess: run models in this process when no worker serves them (devnet mode);
            off: such requests get 503 ``no_worker``.
        batch_size, batch_wait_ms: dynamic batching of in-process encoders (B texts or W ms).
            B = 16 measured best at 32 concurrent clients on 2 cores (bench/gateway.py): one
            batch is gathered while the previous one runs, so the model never waits for HTTP.
        max_loaded_models, generation_slots: in-process runtime limits.
        max_tokens_cap, default_max_tokens: generation bounds (above the cap: 400).
        cache_ttl_s, access_cache_ttl_s: how long resolutions / access answers stay cached
            (events from the chain invalidate them sooner).
        watch_interval_s: how often the chain is polled for events.
        max_token_ttl_s: bearer tokens valid for longer than this are refused.
        ipfs_max_bytes: largest file ``/ipfs/{cid}`` serves.
        worker_timeout_s: timeout of a proxied request to a worker.
        allow_private_workers: accept worker endpoints on loopback and private addresses (and
            plain http to loopback ones): a devnet's workers (``anchorml up`` sets it). Off,
            only https endpoints on public addresses are called (:mod:`api.gateway.endpoints`).
        worker_max_requests, worker_max_streams: requests / streams in flight per worker from
            this gateway; a worker at its limit is skipped for the next candidate.
        worker_max_stream_s: total time one relayed stream may last; a longer one is closed.
        worker_backoff_s: how long a worker that was unreachable or gave a bad answer is skipped
            (doubling with each bad answer in a row, up to 32 times).
        grant_ttl_s: lifetime of the per-request grant the gateway sends a worker.
        receipt_skew_s: largest difference between a receipt's ``issued_at`` and the gateway's
            clock.
        onchain_timeout_s: how long an on-chain request waits for its job to settle.
        onchain_reward_wei, max_reward_wei: default and largest reward the gateway escrows.
        job_deadline_s, job_lease_s: deadline and lease of jobs the gateway creates.
        key, key_file: the key that signs the receipts of in-process answers and the grants
            (``ANCHORML_GATEWAY_KEY``, hex, or ``ANCHORML_GATEWAY_KEY_FILE``); default: the
            gateway's wallet key (``ANCHORML_PRIVATE_KEY``). Register it in NodeRegistry like
            a node's (``anchorml up`` does), so verifiers see it staked.
        receipts: sign in-process answers (default on; off only to measure what signing costs,
            ``bench/gateway.py``).
        spot_check_fraction: share of deterministic worker answers re-sent to a second node and
            compared (:mod:`api.gateway.spotcheck`); a wrong one is challenged on chain.
        sponsor_daily_wei_per_caller, sponsor_daily_wei_total: what the gateway may spend from
            its own wallet (rewards escrowed plus gas) on jobs per UTC day, for one caller and
            for all together (:mod:`api.gateway.budget`); 0 turns gateway-paid jobs off.
        sponsor_gas_per_job: gas reserved per gateway-paid job (creating it and one follow-up,
            a cancel or an expiry), charged at the wallet's current maximum fee.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65_535)
    max_body_bytes: int = Field(default=1 << 20, ge=1024, le=256 << 20)
    rate_limit_per_s: float = Field(default=20.0, ge=0)
    rate_limit_burst: int = Field(default=40, ge=1)
    inprocess: bool = True
    batch_size: int = Field(default=16, ge=1, le=512)
    batch_wait_ms: float = Field(default=10.0, ge=0, le=1000)
    max_loaded_models: int = Field(default=2, ge=1, le=64)
    generation_slots: int = Field(default=1, ge=1, le=64)
    max_tokens_cap: int = Field(default=1024, ge=1, le=32_768)
    default_max_tokens: int = Field(default=256, ge=1)
    cache_ttl_s: float = Field(default=30.0, ge=0)
    access_cache_ttl_s: float = Field(default=10.0, ge=0)
    watch_interval_s: float = Field(default=1.0, gt=0, le=60)
    max_token_ttl_s: int = Field(default=30 * 86_400, ge=60)
    ipfs_max_bytes: int = Field(default=64 << 20, ge=1)
    worker_timeout_s: float = Field(default=300.0, gt=0)
    allow_private_workers: bool = False
    worker_max_requests: int = Field(default=64, ge=1, le=100_000)
    worker_max_streams: int = Field(default=16, ge=1, le=100_000)
    worker_max_stream_s: float = Field(default=600.0, gt=0)
    worker_backoff_s: float = Field(default=10.0, ge=0)
    grant_ttl_s: float = Field(default=5.0, gt=0, le=300)
    receipt_skew_s: float = Field(default=30.0, ge=0, le=3600)
    onchain_timeout_s: float = Field(default=300.0, gt=0)
    onchain_reward_wei: int = Field(default=10**15, ge=1)
    max_reward_wei: int = Field(default=10**18, ge=1)
    job_deadline_s: int = Field(default=900, ge=60)
    job_lease_s: int = Field(default=300, ge=10)
    key: SecretStr | None = None
    key_file: Path | None = None
    receipts: bool = True
    spot_check_fraction: float = Field(default=0.01, ge=0.0, le=1.0)
    sponsor_daily_wei_per_caller: int = Field(default=10**16, ge=0)
    sponsor_daily_wei_total: int = Field(default=10**17, ge=0)
    sponsor_gas_per_job: int = Field(default=600_000, ge=21_000)

    @model_validator(mode="after")
    def _consistent(self) -> GatewayConfig:
        if self.default_max_tokens > self.max_tokens_cap:
            raise ValueError("default_max_tokens must not exceed max_tokens_cap")
        if self.onchain_reward_wei > self.max_reward_wei:
            raise ValueError("onchain_reward_wei must not exceed max_reward_wei")
        if self.job_lease_s > self.job_deadline_s:
            raise ValueError("job_lease_s must not exceed job_deadline_s")
        if self.onchain_timeout_s > self.job_deadline_s:
            raise ValueError("onchain_timeout_s must not exceed job_deadline_s")
        if self.key is not None and self.key_file is not None:
            raise ValueError("set one of key and key_file, not both")
        return self


def load_config(path: Path | None = None, **overrides: Any) -> GatewayConfig:
    """Load the config from an optional TOML file, the environment and ``overrides``.

    Environment variables override the file; ``overrides`` (command-line options) override both.

    Raises:
        ConfigError: unreadable file or invalid values (the message names the setting).
    """
    return load_config_file(GatewayConfig, path, ENV_PREFIX, "gateway config", overrides)
