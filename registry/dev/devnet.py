"""The devnet: a dev chain reachable over JSON-RPC, the contracts deployed on it, a content
store, dev accounts, and the demo models. ``anchorml up``, the tests and ``bench/`` all build
on this one class; starting workers and a gateway on it is ``api.up``'s job.

Steps of :meth:`Devnet.start`:
    1. start the chain: the embedded eth-tester served over JSON-RPC from a thread of this
       process (its state lives in this process only), or anvil (with ``keep`` its state file
       is in the devnet folder, kept across restarts); either way a heartbeat mines an empty
       block whenever the chain was idle for a second, so time moves as on a real chain;
    2. deploy the contracts, or reuse the deployment of a kept anvil chain.

Its folder holds what every ``anchorml`` command looks for in ``$ANCHORML_DATA_DIR``:
``deployment.json``, ``store/`` (unless an IPFS daemon URL is given), ``models/`` (the verified
model cache), ``demo-models/`` (the built demo models) and the logs of its processes.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from eth_account import Account

from registry.chain import deployment as deployment_file
from registry.chain.connection import Chain, connect, dev_keys, embedded_chain
from registry.chain.tx import Wallet
from registry.clients import Access
from registry.config import Settings
from registry.dev import demo
from registry.dev.anvil import Anvil
from registry.dev.devserver import make_server
from registry.dev.heartbeat import Heartbeat
from registry.errors import AnchormlError, ConfigError
from registry.model.package import PushResult, push
from registry.sdk import Anchorml

KEYS = dev_keys()
#: Dev accounts (indexes into :data:`KEYS`) as ``anchorml up`` uses them.
ADMIN, OWNER, USER = 0, 1, 2
WORKER_KEYS = (5, 6, 7, 8, 9)
CHAINS = ("embedded", "anvil")


@dataclass(frozen=True)
class DemoModel:
    """A demo model as the devnet publishes it."""

    name: str
    builder: demo.DemoName
    access: Access


DEMO_MODELS = (
    DemoModel("minilm", "minilm", Access.PUBLIC),
    DemoModel("smollm2-chat", "smollm2", Access.PUBLIC),
    DemoModel("minilm-gated", "minilm", Access.ALLOWLIST),
)


class Devnet:
    """A dev chain + deployment + store in folder ``root``; a context manager.

    Args:
        root: the devnet folder (created).
        chain: ``embedded`` (eth-tester) or ``anvil``.
        store: an IPFS RPC URL, or None for the embedded store in ``root/store``.
        host, rpc_port: where the chain answers JSON-RPC (port 0: a free one).
        keep: anvil only: keep the chain in ``root/anvil-state.json`` across restarts and
            reuse its deployment.
        demo_cache: where the demo models are built (default: :func:`demo.default_cache_dir`).
    """

    def __init__(
        self,
        root: Path,
        chain: str = "embedded",
        store: str | None = None,
        *,
        host: str = "127.0.0.1",
        rpc_port: int = 0,
        keep: bool = False,
        demo_cache: Path | None = None,
    ) -> None:
        if chain not in CHAINS:
            raise ConfigError(f"--chain must be embedded or anvil, not {chain!r}")
        self.root = root
        self.backend = chain
        self.host = host
        self.rpc_port = rpc_port
        self.keep = keep
        self.demo_cache = demo_cache
        self.deployment_path = root / "deployment.json"
        self.store_spec = store or str(root / "store")
        self.url = ""
        self.chain: Chain | None = None
        self.reused = False
        self.anvil: Anvil | None = None
        self._server: Any = None
        self._heartbeat: Heartbeat | None = None

    # --- start and stop --------------------------------------------------------------------

    def start(self) -> Devnet:
        """Start the chain and deploy (or reuse) the contracts; returns self."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._start_chain()
            self._deploy()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_chain(self) -> None:
        if self.backend == "embedded":
            served = embedded_chain()
            self._server = make_server(served, self.host, self.rpc_port)
            threading.Thread(target=self._server.serve_forever, daemon=True, name="rpc").start()
            self.url = f"http://{self.host}:{self._server.server_address[1]}"
        else:
            self.anvil = Anvil(
                host=self.host,
                port=self.rpc_port,
                state=self.root / "anvil-state.json" if self.keep else None,
                log=self.root / "anvil.log",
            )
            self.url = self.anvil.start()
        self.chain = connect(self.url)
        if self.anvil is not None:  # the embedded server runs its own, under its lock
            self._heartbeat = Heartbeat(self.chain).start()

    def _deploy(self) -> None:
        assert self.chain is not None
        if self.keep and self.anvil is not None and self.deployment_path.exists():
            try:
                dep = deployment_file.load(self.deployment_path)
                dep.check_chain(self.chain)
                if self.chain.has_code(dep.job_board) and self.chain.has_code(dep.challenges):
                    self.reused = True
                    return
            except AnchormlError:
                pass
        dep = deployment_file.deploy(Wallet(self.chain, Account.from_key(KEYS[ADMIN])))
        deployment_file.save(dep, self.deployment_path, force=True)

    def stop(self) -> list[str]:
        """Stop the chain; return the names of parts that had to be killed."""
        killed = []
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        if self.anvil is not None and self.anvil.stop():
            killed.append("anvil")
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        return killed

    def __enter__(self) -> Devnet:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- dev accounts ----------------------------------------------------------------------

    def settings(self, key_index: int | None, data_dir: Path | None = None) -> Settings:
        """Client settings of dev account ``key_index`` (None: read-only) on this devnet;
        ``data_dir`` defaults to the devnet folder."""
        return Settings(
            rpc_url=self.url,
            private_key=KEYS[key_index] if key_index is not None else None,  # type: ignore[arg-type]
            store=self.store_spec,
            deployment=self.deployment_path,
            data_dir=data_dir or self.root,
        )

    def sdk(self, key_index: int | None = OWNER, data_dir: Path | None = None) -> Anchorml:
        """An SDK handle signing as dev account ``key_index``."""
        return Anchorml.from_settings(self.settings(key_index, data_dir))

    @staticmethod
    def address(key_index: int) -> str:
        """Address of dev account ``key_index``."""
        return str(Account.from_key(KEYS[key_index]).address)

    def env(self, key_index: int | None, data_dir: Path | None = None) -> dict[str, str]:
        """Environment for an ``anchorml`` process acting as dev account ``key_index``: this
        process's environment without its ``ANCHORML_*`` variables, plus the devnet's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANCHORML_")}
        env.update(
            ANCHORML_RPC_URL=self.url,
            ANCHORML_STORE=self.store_spec,
            ANCHORML_DEPLOYMENT=str(self.deployment_path),
            ANCHORML_DATA_DIR=str(data_dir or self.root),
            HF_HUB_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
        )
        if key_index is not None:
            env["ANCHORML_PRIVATE_KEY"] = KEYS[key_index]
        return env

    # --- demo models -----------------------------------------------------------------------

    def publish_demo(
        self,
        model: DemoModel,
        owner: int = OWNER,
        progress: Callable[[int], None] | None = None,
        total: Callable[[int], None] | None = None,
    ) -> PushResult | None:
        """Publish demo ``model`` as ``<name>@v1`` (alias ``prod``) from a copy of the built
        model; None when that version exists already (a kept chain).

        Args:
            progress: called with the bytes added to the store as they are.
            total: called once with the bytes to add, before the first ``progress``.
        """
        sdk = self.sdk(owner)
        if sdk.models.exists(model.name, "v1"):
            return None
        source = demo.cached_model(model.builder, self.demo_cache)
        staging = self.root / "staging" / model.name  # push writes anchorml.json into it
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging, copy_function=_link_or_copy)
        if total is not None:
            total(sum(f.stat().st_size for f in staging.rglob("*") if f.is_file()))
        try:
            result = push(
                sdk,
                staging,
                model.name,
                "v1",
                access=model.access,
                license="Apache-2.0",
                progress=progress,
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        sdk.models.set_alias(model.name, "prod", "v1")
        return result

    def grant(self, model: str, key_index: int, owner: int = OWNER) -> None:
        """Let dev account ``key_index`` use gated ``model`` (if it may not yet)."""
        sdk, address = self.sdk(owner), self.address(key_index)
        if not sdk.models.has_access(model, address):
            sdk.models.grant_access(model, address)


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link a built model's file (cheap; push only adds files), or copy it across devices."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
