"""Deploy the contracts and read/write the deployment file.

The deployment file (JSON) records the chain id, contract addresses, the deploy block and the
sha256 of each artifact used, so every process (workers, gateway, CLI) binds to the same
contracts and refuses a file made for another chain.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from registry.chain import artifacts
from registry.chain.connection import Chain
from registry.chain.tx import Wallet
from registry.errors import ChainMismatchError, ConfigError


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live on one chain."""

    chain_id: int
    model_registry: str
    node_registry: str
    job_board: str
    challenges: str
    deploy_block: int
    deployer: str
    artifacts: dict[str, str]

    def check_chain(self, chain: Chain) -> None:
        """Refuse to use this deployment on another chain.

        Raises:
            ChainMismatchError: the connected chain's id differs.
        """
        if chain.chain_id != self.chain_id:
            raise ChainMismatchError(
                f"the deployment file is for chain id {self.chain_id} but the RPC endpoint "
                f"{chain.url} is chain id {chain.chain_id}: fix ANCHORML_DEPLOYMENT or "
                "ANCHORML_RPC_URL"
            )


@dataclass(frozen=True)
class DeployParams:
    """Constructor parameters of a deployment."""

    admin_transfer_delay: int = 0
    min_stake_wei: int = 10**17
    unstake_delay_s: int = 3600
    slash_amount_wei: int = 5 * 10**16
    reveal_window_s: int = 600
    # Challenges (docs/economics.md, "Challenges"): window + job TTL + reveal window must stay
    # below the unstake delay, which the contract checks.
    challenge_fee_wei: int = 10**16
    challenge_window_s: int = 1_800
    challenge_job_ttl_s: int = 900
    # One re-executor: the devnet runs two workers, one of which is the accused.
    challenge_redundancy: int = 1
    fault_slash_wei: int = 10**17


#: Contracts a deployment holds, in deploy order (their artifacts' sha256 are recorded).
CONTRACTS = ("ModelRegistry", "NodeRegistry", "JobBoard", "Challenges")


def deploy(wallet: Wallet, params: DeployParams | None = None) -> Deployment:
    """Deploy ModelRegistry, NodeRegistry, JobBoard and Challenges and wire their roles.

    The deployer becomes default admin and pauser of all four; the job board gets
    ``JOB_BOARD_ROLE`` on the registry and ``SLASHER_ROLE`` on the node registry; the
    Challenges contract gets ``CHALLENGES_ROLE`` on the job board and ``SLASHER_ROLE`` on the
    node registry.
    """
    p = params or DeployParams()
    w3 = wallet.chain.w3
    admin = wallet.address

    def factory(name: str):  # type: ignore[no-untyped-def]
        art = artifacts.load(name)
        return w3.eth.contract(abi=art.abi, bytecode=art.bytecode)

    first = wallet.deploy(factory("ModelRegistry"), admin, p.admin_transfer_delay)
    registry_addr = first.receipt["contractAddress"]
    nodes_addr = wallet.deploy(
        factory("NodeRegistry"), admin, p.admin_transfer_delay, p.min_stake_wei, p.unstake_delay_s
    ).receipt["contractAddress"]
    board_addr = wallet.deploy(
        factory("JobBoard"),
        admin,
        p.admin_transfer_delay,
        registry_addr,
        nodes_addr,
        p.slash_amount_wei,
        p.reveal_window_s,
    ).receipt["contractAddress"]
    challenges_addr = wallet.deploy(
        factory("Challenges"),
        admin,
        p.admin_transfer_delay,
        board_addr,
        nodes_addr,
        p.challenge_fee_wei,
        p.challenge_window_s,
        p.challenge_job_ttl_s,
        p.challenge_redundancy,
        p.fault_slash_wei,
    ).receipt["contractAddress"]
    registry = w3.eth.contract(address=registry_addr, abi=artifacts.load("ModelRegistry").abi)
    nodes = w3.eth.contract(address=nodes_addr, abi=artifacts.load("NodeRegistry").abi)
    board = w3.eth.contract(address=board_addr, abi=artifacts.load("JobBoard").abi)
    wallet.transact(
        registry.functions.grantRole(registry.functions.JOB_BOARD_ROLE().call(), board_addr)
    )
    slasher = nodes.functions.SLASHER_ROLE().call()
    wallet.transact(nodes.functions.grantRole(slasher, board_addr))
    wallet.transact(nodes.functions.grantRole(slasher, challenges_addr))
    wallet.transact(
        board.functions.grantRole(board.functions.CHALLENGES_ROLE().call(), challenges_addr)
    )
    return Deployment(
        chain_id=wallet.chain.chain_id,
        model_registry=str(registry_addr),
        node_registry=str(nodes_addr),
        job_board=str(board_addr),
        challenges=str(challenges_addr),
        deploy_block=int(first.receipt["blockNumber"]),
        deployer=admin,
        artifacts={n: artifacts.load(n).sha256 for n in CONTRACTS},
    )


def save(deployment: Deployment, path: Path, *, force: bool = False) -> None:
    """Write the deployment file atomically.

    Raises:
        ConfigError: the file exists and ``force`` is false.
    """
    if path.exists() and not force:
        raise ConfigError(f"deployment file {path} already exists: pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(deployment), fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def load(path: Path) -> Deployment:
    """Read a deployment file.

    Raises:
        ConfigError: missing or malformed (setting ``ANCHORML_DEPLOYMENT``).
    """
    try:
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "job_board" in data and "challenges" not in data:
            # Written before the Challenges contract existed: its contracts lack the roles and
            # functions challenges need, so the only fix is a new deployment.
            raise ConfigError(
                f"deployment file {path} predates the Challenges contract: redeploy with "
                "`anchorml contracts deploy --force` (or restart `anchorml up`)"
            )
        return Deployment(**data)
    except FileNotFoundError:
        raise ConfigError(
            f"no deployment file at {path}: run `anchorml contracts deploy` or set "
            "ANCHORML_DEPLOYMENT"
        ) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"deployment file {path} is malformed: {exc}") from None
