"""The gateway's OpenAI-compatible endpoints, in process (ASGI), on a devnet with real models:
embeddings (float and base64, batched), chat and completions (greedy, stop strings, SSE
streaming with usage), model listing and name resolution (``@version``, ``@alias``)."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from support.gateway import CHAT, MINILM, GatewayNet

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def client(gateway_net: GatewayNet) -> Iterator[TestClient]:
    with TestClient(gateway_net.app(rate_limit_per_s=0)) as c:
        yield c


def _chat(content: str, **extra: object) -> dict[str, object]:
    return {"model": CHAT, "messages": [{"role": "user", "content": content}], **extra}


def test_embeddings_float_and_base64_agree(client: TestClient) -> None:
    texts = ["a cat sat on the mat", "blockchains anchor model bytes"]
    floats = client.post("/v1/embeddings", json={"model": MINILM, "input": texts})
    assert floats.status_code == 200, floats.text
    body = floats.json()
    assert body["object"] == "list" and body["model"] == f"{MINILM}@v1"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 384 for d in body["data"])
    assert (
        body["usage"]["prompt_tokens"] > 4
        and body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"]
    )
    packed = client.post(
        "/v1/embeddings",
        json={"model": f"{MINILM}@prod", "input": texts, "encoding_format": "base64"},
    ).json()
    raw = base64.b64decode(packed["data"][1]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    # The float answer reads back to the very float32 values (written in shortest form).
    floats32 = struct.unpack("<384f", struct.pack("<384f", *body["data"][1]["embedding"]))
    assert floats32 == decoded
    norm = sum(x * x for x in decoded) ** 0.5
    assert norm == pytest.approx(1.0, abs=1e-4)


def test_one_text_embeds_the_same_alone_and_in_a_batch(client: TestClient) -> None:
    alone = client.post("/v1/embeddings", json={"model": MINILM, "input": "hello world"}).json()
    mixed = client.post(
        "/v1/embeddings", json={"model": MINILM, "input": ["x " * 50, "hello world"]}
    ).json()
    assert alone["data"][0]["embedding"] == pytest.approx(mixed["data"][1]["embedding"], abs=1e-5)


def test_chat_is_greedy_and_deterministic_by_default(client: TestClient) -> None:
    request = _chat("What is the capital of France? Answer in one word.", max_tokens=12)
    first = client.post("/v1/chat/completions", json=request)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["object"] == "chat.completion" and body["model"] == f"{CHAT}@v1"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["completion_tokens"] <= 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    again = client.post("/v1/chat/completions", json=request).json()
    assert again["choices"][0]["message"]["content"] == choice["message"]["content"]


def test_seeded_sampling_repeats(client: TestClient) -> None:
    request = _chat("Name a colour.", max_tokens=8, temperature=1.2, top_p=0.9, seed=7)
    a = client.post("/v1/chat/completions", json=request).json()
    b = client.post("/v1/chat/completions", json=request).json()
    assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]


def test_streamed_chat_matches_the_unstreamed_answer(client: TestClient) -> None:
    request = _chat("Count from one to five.", max_tokens=16)
    whole = client.post("/v1/chat/completions", json=request).json()
    events = []
    with client.stream(
        "POST", "/v1/chat/completions",
        json={**request, "stream": True, "stream_options": {"include_usage": True}},
    ) as response:  # fmt: skip
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line[len("data: ") :])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finals] == [
        whole["choices"][0]["finish_reason"]
    ]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]


def test_completion_stops_at_a_stop_string(client: TestClient) -> None:
    plain = client.post(
        "/v1/completions", json={"model": CHAT, "prompt": "1, 2, 3, 4,", "max_tokens": 12}
    ).json()
    text = plain["choices"][0]["text"]
    assert plain["object"] == "text_completion" and "5" in text
    cut = client.post(
        "/v1/completions",
        json={"model": CHAT, "prompt": "1, 2, 3, 4,", "max_tokens": 12, "stop": ["6"]},
    ).json()
    assert cut["choices"][0]["finish_reason"] == "stop"
    assert cut["choices"][0]["text"] == text[: text.index("6")]


def test_models_lists_names_versions_and_aliases(client: TestClient) -> None:
    ids = {m["id"] for m in client.get("/v1/models").json()["data"]}
    assert {MINILM, f"{MINILM}@v1", f"{MINILM}@prod", CHAT, f"{CHAT}@v1"} <= ids
    one = client.get(f"/v1/models/{MINILM}@prod")
    assert one.status_code == 200 and one.json()["id"] == f"{MINILM}@v1"


def test_wrong_task_is_a_clear_400(client: TestClient) -> None:
    response = client.post("/v1/embeddings", json={"model": CHAT, "input": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_task"


def test_metrics_count_batches_and_inference_paths(client: TestClient) -> None:
    text = client.get("/metrics").text
    assert 'anchorml_gateway_inference_total{path="inprocess"}' in text
    assert "anchorml_batch_size_count" in text
    assert "anchorml_generated_tokens_total" in text
