"""One object that wires settings to a connected chain, the deployed contracts and the store.

sdk = Anchorml.from_settings(Settings())
sdk.models.resolve("minilm@prod")
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from registry.chain import deployment as deployment_file
from registry.chain.connection import Chain, connect, load_account
from registry.chain.deployment import Deployment
from registry.chain.tx import Wallet
from registry.clients import (
    ChallengesClient,
    JobBoardClient,
    ModelRegistryClient,
    NodeRegistryClient,
)
from registry.config import Settings

if TYPE_CHECKING:
    from registry.store.base import ContentStore


@dataclass
class Anchorml:
    """A connected client: chain, deployment, optional signer, contract clients, store."""

    chain: Chain
    deployment: Deployment
    wallet: Wallet | None
    settings: Settings

    @classmethod
    def from_settings(cls, settings: Settings, *, signer: bool = True) -> Anchorml:
        """Connect as ``settings`` say; the signer is loaded when a key is configured.

        Raises:
            ConfigError, RpcUnavailableError, ChainMismatchError: with the setting to fix.
        """
        chain = connect(settings.rpc_url)
        dep = deployment_file.load(settings.deployment_path)
        dep.check_chain(chain)
        wallet = None
        if signer and (settings.private_key is not None or settings.key_file is not None):
            key = settings.private_key.get_secret_value() if settings.private_key else None
            account = load_account(key, str(settings.key_file) if settings.key_file else None)
            wallet = Wallet(chain, account)
        return cls(chain=chain, deployment=dep, wallet=wallet, settings=settings)

    @cached_property
    def models(self) -> ModelRegistryClient:
        """The ModelRegistry client."""
        return ModelRegistryClient(
            self.chain,
            self.deployment.model_registry,
            self.wallet,
            from_block=self.deployment.deploy_block,
        )

    @cached_property
    def nodes(self) -> NodeRegistryClient:
        """The NodeRegistry client."""
        return NodeRegistryClient(
            self.chain,
            self.deployment.node_registry,
            self.wallet,
            from_block=self.deployment.deploy_block,
        )

    @cached_property
    def jobs(self) -> JobBoardClient:
        """The JobBoard client."""
        return JobBoardClient(
            self.chain,
            self.deployment.job_board,
            self.wallet,
            from_block=self.deployment.deploy_block,
        )

    @cached_property
    def challenges(self) -> ChallengesClient:
        """The Challenges client."""
        return ChallengesClient(
            self.chain,
            self.deployment.challenges,
            self.wallet,
            from_block=self.deployment.deploy_block,
        )

    @cached_property
    def store(self) -> ContentStore:
        """The content store the settings name."""
        from registry.store import open_store

        return open_store(self.settings.store_spec)
