"""The gateway's chain watcher on every backend: it folds the contracts' events into the index,
and after a reorg rebuilds the index instead of keeping models, jobs or nodes of a lost branch."""

from __future__ import annotations

import asyncio

from api.gateway.index import VIEWS, RegistryIndex
from api.gateway.watcher import ChainWatcher
from registry.config import Settings
from registry.sdk import Anchorml
from support.chain import PUBLIC, World


def watcher(env: World) -> tuple[ChainWatcher, list[set[str]]]:
    sdk = Anchorml(chain=env.chain, deployment=env.deployment, wallet=None, settings=Settings())
    changes: list[set[str]] = []
    return ChainWatcher(sdk, RegistryIndex(), changes.append, window=4), changes


def test_the_watcher_indexes_the_history_then_each_new_block(env: World) -> None:
    w, changes = watcher(env)
    asyncio.run(w.poll())
    assert w.index.model(PUBLIC) is not None
    assert w.cursor == env.chain.head()
    env.owner.models.create_model("watched")
    changes.clear()
    assert asyncio.run(w.poll()) == 1
    assert w.index.model("watched") is not None and changes == [{"models", "access"}]
    assert asyncio.run(w.poll()) == 0


def test_after_a_reorg_the_index_holds_only_the_new_branch(env: World) -> None:
    w, changes = watcher(env)
    asyncio.run(w.poll())
    fork = env.snapshot()
    env.owner.models.create_model("lost-branch")
    asyncio.run(w.poll())
    assert w.index.model("lost-branch") is not None

    env.restore(fork)
    env.owner.models.create_model("new-branch")
    env.chain.mine(2)
    changes.clear()
    asyncio.run(w.poll())

    assert w.index.model("lost-branch") is None
    assert w.index.model("new-branch") is not None
    assert w.index.model(PUBLIC) is not None  # the history before the fork, folded again
    assert changes == [set(VIEWS)]
    assert w.cursor == env.chain.head()
