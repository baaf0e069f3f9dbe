"""`anchorml demo`: the whole story against a running devnet (`anchorml up`), tx by tx.

1. push a model (allowlist) and grant a user access;
2. infer through the gateway: direct (a token is needed for the gated model; without one the
   gateway refuses), and on chain with redundancy 2 (two workers must agree);
3. a LoRA fine-tune job produces a new version with lineage; an eval job records metrics;
4. alias promotion and rollback; revocation (the gateway stops serving the version).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import typer
from eth_account import Account
from rich.console import Console

from registry.auth import mint_token
from registry.chain.connection import dev_keys
from registry.clients import Access, JobStatus
from registry.config import Settings
from registry.dev import demo as demo_models
from registry.dev.devnet import ADMIN as GATEWAY_KEY
from registry.dev.devnet import OWNER as OWNER_KEY
from registry.dev.devnet import USER as USER_KEY
from registry.errors import ConfigError
from registry.jobs import JobKind, fetch_result, submit, wait_settled
from registry.model.package import push
from registry.sdk import Anchorml

console = Console(highlight=False, soft_wrap=True)
MODEL = "story-gpt2"
CORPUS = (
    "Once upon a time a small model learned to tell stories. Every version it grew into was "
    "written on chain, so anyone could check which weights said what. "
) * 20


def devnet_root(data_dir: Path | None, settings: Settings) -> Path:
    """The folder of the devnet to tell the story on: ``--data-dir``, else the folder of the
    configured deployment, else ``$ANCHORML_DATA_DIR`` (the folder `anchorml up` fills).

    Raises:
        ConfigError: none of them holds a deployment.
    """
    if data_dir is not None:
        tried = [data_dir.expanduser()]
    else:
        tried = [settings.deployment_path.expanduser().parent]
        if settings.data_dir.expanduser() not in tried:
            tried.append(settings.data_dir.expanduser())
    for root in tried:
        if (root / "deployment.json").exists():
            return root
    raise ConfigError(
        f"no devnet at {' or '.join(map(str, tried))}: start one with `anchorml up` "
        "(or pass --data-dir)"
    )


def demo(
    gateway: str = typer.Option("http://127.0.0.1:8000", "--gateway", help="Gateway URL."),
    data_dir: Path = typer.Option(None, "--data-dir", help="The devnet's data dir."),
    rpc: str = typer.Option("http://127.0.0.1:8545", "--rpc", help="JSON-RPC URL."),
) -> None:
    """Tell the anchorml story against a running `anchorml up`, printing each tx and CID."""
    root = devnet_root(data_dir, Settings())

    def sdk_for(key: int) -> Anchorml:
        return Anchorml.from_settings(
            Settings(
                rpc_url=rpc,
                private_key=dev_keys()[key],  # type: ignore[arg-type]
                store=str(root / "store"),
                deployment=root / "deployment.json",
                data_dir=root,
            )
        )

    owner = sdk_for(OWNER_KEY)
    user_addr = Account.from_key(dev_keys()[USER_KEY]).address
    http = httpx.Client(base_url=gateway, timeout=600)
    tag = f"v{int(time.time())}"
    work = Path(tempfile.mkdtemp(prefix="anchorml-demo-"))
    try:
        _step("1. push a model and grant access")
        src = shutil.copytree(
            demo_models.cached_model("tiny-gpt2", root / "demo-models"), work / "m"
        )
        if not _exists(owner, MODEL):
            owner.models.create_model(MODEL, Access.ALLOWLIST)
        pushed = push(owner, Path(src), MODEL, tag, license="MIT")
        _say(f"pushed {MODEL}@{tag}", cid=pushed.cid, tx=pushed.tx_hash)
        granted = owner.models.grant_access(MODEL, user_addr)
        _say(f"granted the user {user_addr}", tx=granted.tx_hash)
        gateway_addr = Account.from_key(dev_keys()[GATEWAY_KEY]).address
        granted = owner.models.grant_access(MODEL, gateway_addr)
        _say(f"granted the gateway {gateway_addr} (it signs on-chain jobs)", tx=granted.tx_hash)

        _step("2. infer through the gateway")
        emb = _post(http, "/v1/embeddings", {"model": "minilm", "input": ["provenance matters"]})
        _say(f"minilm (public) → {len(emb['data'][0]['embedding'])}-dim embedding")
        hello = _post(
            http,
            "/v1/chat/completions",
            {
                "model": "smollm2-chat",
                "messages": [
                    {"role": "user", "content": "In one sentence: why sign model weights?"}
                ],
                "max_tokens": 40,
            },
        )
        _say(f"smollm2-chat (public) → {hello['choices'][0]['message']['content']!r}")
        _say(f"{MODEL} is a tiny untrained GPT-2: its replies are noise; the point is the paths")
        chat = {
            "model": f"{MODEL}@{tag}",
            "messages": [{"role": "user", "content": "Once"}],
            "max_tokens": 12,
        }
        refused = http.post("/v1/chat/completions", json=chat)
        _say(
            f"{MODEL} without a token → HTTP {refused.status_code} "
            f"{refused.json().get('error', {}).get('code')}"
        )
        token = mint_token(Account.from_key(dev_keys()[USER_KEY]), 3600)
        auth = {"Authorization": f"Bearer {token}"}
        direct = _post(http, "/v1/chat/completions", chat, auth)
        _say(f"direct with the user's token → {direct['choices'][0]['message']['content']!r}")
        onchain = _post(
            http,
            "/v1/chat/completions",
            {**chat, "anchorml": {"mode": "onchain", "redundancy": 2}},
            auth,
        )
        receipt = onchain.get("anchorml", {})
        _say(
            f"on chain, redundancy 2 → {onchain['choices'][0]['message']['content']!r}",
            job=receipt.get("job_id"),
            cid=receipt.get("result_cid"),
            tx=", ".join(receipt.get("transactions", {}).values())
            if isinstance(receipt.get("transactions"), dict)
            else receipt.get("create_tx"),
        )

        _step("3. fine-tune (LoRA) and evaluate through jobs")
        corpus = work / "corpus.txt"
        corpus.write_text(CORPUS)
        rows = work / "tune.jsonl"
        rows.write_text("\n".join(json.dumps({"text": s}) for s in CORPUS.split(". ")[:24]))
        tune = submit(
            owner,
            JobKind.FINETUNE,
            f"{MODEL}@{tag}",
            rows,
            reward_wei=10**15,
            params={
                "method": "lora",
                "steps": 8,
                "batch_size": 2,
                "lora": {"r": 4, "alpha": 8, "merge": True},
            },
            output_model=MODEL,
        )
        _say(f"FINETUNE job {tune.job_id} posted", cid=tune.input_cid, tx=tune.tx_hash)
        tuned = wait_settled(owner, tune.job_id, timeout=900)
        _require(tuned.status == JobStatus.FINALIZED, f"fine-tune job ended {tuned.status.name}")
        new_tag = f"job-{tune.job_id}"
        new = owner.models.version(MODEL, new_tag)
        _say(
            f"new version {MODEL}@{new_tag}, parent {MODEL}@{tag}, produced by job {new.job_id}",
            cid=new.cid,
        )
        ev = submit(
            owner,
            JobKind.EVAL,
            f"{MODEL}@{new_tag}",
            corpus,
            reward_wei=10**15,
            params={"max_length": 64, "max_tokens": 1024},
        )
        _say(f"EVAL job {ev.job_id} posted", tx=ev.tx_hash)
        evaluated = wait_settled(owner, ev.job_id, timeout=900)
        _require(evaluated.status == JobStatus.FINALIZED, f"eval job ended {evaluated.status.name}")
        assert evaluated.result is not None
        metrics = json.loads(
            fetch_result(owner.store, evaluated.result, work / "eval.json").read_text()
        )
        _say(
            f"metrics {json.dumps(metrics.get('metrics', metrics))[:120]}",
            cid=evaluated.result.content.to_cid(),
        )

        _step("4. aliases, rollback, revocation")
        a = owner.models.set_alias(MODEL, "prod", tag)
        _say(f"prod → {tag}", tx=a.tx_hash)
        b = owner.models.set_alias(MODEL, "prod", new_tag)
        _say(f"prod → {new_tag} (promoted)", tx=b.tx_hash)
        c = owner.models.rollback_alias(MODEL, "prod")
        _say(f"prod → {owner.models.resolve(MODEL + '@prod').tag} (rolled back)", tx=c.tx_hash)
        r = owner.models.revoke_version(MODEL, new_tag)
        _say(f"revoked {MODEL}@{new_tag}", tx=r.tx_hash)
        gone = http.post(
            "/v1/chat/completions", json={**chat, "model": f"{MODEL}@{new_tag}"}, headers=auth
        )
        _say(
            f"gateway on the revoked version → HTTP {gone.status_code} "
            f"{gone.json().get('error', {}).get('code')}"
        )
        console.print("\n[bold green]done[/] — open the dashboard at " + gateway + "/")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        http.close()


def _exists(sdk: Anchorml, name: str) -> bool:
    try:
        sdk.models.get_model(name)
    except Exception:
        return False
    return True


def _post(
    http: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Any:
    response = http.post(path, json=body, headers=headers)
    if response.status_code != 200:
        raise ConfigError(f"gateway {path} answered {response.status_code}: {response.text[:300]}")
    return response.json()


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _step(title: str) -> None:
    console.print(f"\n[bold]{title}[/]")


def _say(text: str, **refs: Any) -> None:
    console.print(f"  {text}")
    for key, value in refs.items():
        if value:
            console.print(f"      {key:<4} {value}")
