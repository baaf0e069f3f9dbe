"""INFER end to end on real weights: SmolLM2 chat, MiniLM embeddings, classifier, tiny GPT-2.

A3: the same model, input and params give byte-identical ``result.json`` across runs and across
processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANCHORML_TORCH_THREADS", "1")  # 2 shared cores: avoid oversubscription

from node.executors import ExecutorResult, run_job  # noqa: E402
from registry.dev import demo  # noqa: E402
from registry.jobs import InvalidJobInputError, JobKind, parse_params  # noqa: E402


def _run(
    kind: JobKind, model: Path, data: Path, params: str | Mapping[str, object], out: Path
) -> ExecutorResult:
    """Parse ``params`` as the worker does, then run the executor."""
    return run_job(kind, model, data, parse_params(kind, params), out)


CHAT = {"messages": [{"role": "user", "content": "What is the capital of France?"}]}
TEXTS = [
    "A cat is sitting on the mat.",
    "A kitten rests on a rug.",
    "The central bank raised interest rates today.",
    "Python lists are mutable sequences.",
]
REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def smollm2() -> Path:
    return demo.cached_model("smollm2")


@pytest.fixture(scope="module")
def minilm() -> Path:
    return demo.cached_model("minilm")


def write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def chat_run(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One greedy chat job; returns (input file, output dir)."""
    root = tmp_path_factory.mktemp("chat")
    request = write_json(root / "chat.json", CHAT)
    result = _run(JobKind.INFER, smollm2, request, CHAT_PARAMS, root / "out")
    assert result.files == ["result.json"] and not result.produces_model
    return request, root / "out"


CHAT_PARAMS = '{"task":"chat","max_new_tokens":16}'


def test_chat_answers(chat_run: tuple[Path, Path]) -> None:
    raw = (chat_run[1] / "result.json").read_bytes()
    result = json.loads(raw)
    assert "Paris" in result["text"]
    assert result["finish_reason"] == "stop"
    assert 0 < result["usage"]["completion_tokens"] == result["metrics"]["completion_tokens"] <= 16
    assert raw == json.dumps(result, sort_keys=True, separators=(",", ":")).encode()


def test_chat_same_bytes_on_rerun(
    smollm2: Path, chat_run: tuple[Path, Path], tmp_path: Path
) -> None:
    _run(JobKind.INFER, smollm2, chat_run[0], json.loads(CHAT_PARAMS), tmp_path / "again")
    assert sha256(chat_run[1] / "result.json") == sha256(tmp_path / "again" / "result.json")


@pytest.mark.integration  # a second Python process
def test_chat_same_bytes_in_another_process(
    smollm2: Path, chat_run: tuple[Path, Path], tmp_path: Path
) -> None:
    code = (
        "import sys; from pathlib import Path; from node.executors import run_job; "
        "from registry.jobs import JobKind, parse_params; "
        "params = parse_params(JobKind.INFER, sys.argv[3]); "
        "run_job(JobKind.INFER, Path(sys.argv[1]), Path(sys.argv[2]), params, Path(sys.argv[4]))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    args = [str(smollm2), str(chat_run[0]), CHAT_PARAMS, str(tmp_path / "there")]
    subprocess.run(
        [sys.executable, "-c", code, *args],
        check=True,
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=600,
    )
    assert sha256(chat_run[1] / "result.json") == sha256(tmp_path / "there" / "result.json")


def test_sampling_is_seeded(tmp_path: Path) -> None:
    model = demo.cached_model("tiny-gpt2")
    request = write_json(tmp_path / "chat.json", CHAT)
    texts = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        params = {"task": "chat", "max_new_tokens": 12, "temperature": 1.0, "seed": seed}
        _run(JobKind.INFER, model, request, params, tmp_path / name)
        texts.append(json.loads((tmp_path / name / "result.json").read_text())["text"])
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]


def test_max_new_tokens_bounds_output(tmp_path: Path) -> None:
    model = demo.cached_model("tiny-gpt2")  # random weights: never emits EOS by choice
    request = write_json(tmp_path / "chat.json", CHAT)
    result = _run(
        JobKind.INFER, model, request, {"task": "chat", "max_new_tokens": 3}, tmp_path / "o"
    )
    assert result.metrics["completion_tokens"] == 3
    assert json.loads((tmp_path / "o" / "result.json").read_text())["finish_reason"] == "length"


@pytest.mark.parametrize(
    "doc",
    [
        {"messages": []},
        {"messages": [{"role": "wizard", "content": "hi"}]},
        {"messages": [{"role": "user", "content": 3}]},
        {"prompt": "no messages"},
    ],
)
def test_bad_chat_input(smollm2: Path, tmp_path: Path, doc: dict[str, object]) -> None:
    request = write_json(tmp_path / "bad.json", doc)
    with pytest.raises(InvalidJobInputError, match="messages"):
        _run(JobKind.INFER, smollm2, request, {"task": "chat"}, tmp_path / "o")


def test_generate_on_tiny_gpt2(tmp_path: Path) -> None:
    model = demo.cached_model("tiny-gpt2")
    request = write_json(tmp_path / "p.json", {"prompt": "Hello"})
    result = _run(
        JobKind.INFER, model, request, {"task": "generate", "max_new_tokens": 5}, tmp_path / "o"
    )
    assert result.metrics == {"prompt_tokens": 5, "completion_tokens": 5}


def test_prompt_longer_than_context_is_refused(tmp_path: Path) -> None:
    model = demo.cached_model("tiny-gpt2")  # 256 positions, one token per byte
    request = write_json(tmp_path / "p.json", {"prompt": "x" * 250})
    with pytest.raises(InvalidJobInputError, match="exceeds the model's context of 256"):
        _run(
            JobKind.INFER,
            model,
            request,
            {"task": "generate", "max_new_tokens": 10},
            tmp_path / "o",
        )


def test_embeddings_rank_similar_sentences(minilm: Path, tmp_path: Path) -> None:
    import torch

    request = write_json(tmp_path / "texts.json", {"texts": TEXTS})
    result = _run(
        JobKind.INFER, minilm, request, {"task": "embed", "batch_size": 3}, tmp_path / "o"
    )
    doc = json.loads((tmp_path / "o" / "result.json").read_text())
    vectors = torch.tensor(doc["embeddings"])
    assert vectors.shape == (4, 384) and doc["dim"] == 384 == result.metrics["dim"]
    assert torch.allclose(vectors.norm(dim=1), torch.ones(4), atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > 0.5
    assert sims[0, 1] > sims[0, 2] + 0.3 and sims[0, 1] > sims[0, 3] + 0.3


def test_embeddings_match_sentence_transformers(minilm: Path, tmp_path: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    request = write_json(tmp_path / "texts.json", {"texts": TEXTS})
    _run(JobKind.INFER, minilm, request, {"task": "embed"}, tmp_path / "o")
    ours = torch.tensor(json.loads((tmp_path / "o" / "result.json").read_text())["embeddings"])
    reference = SentenceTransformer(str(demo.minilm_source_dir()), device="cpu")
    theirs = torch.from_numpy(reference.encode(TEXTS, normalize_embeddings=True))
    cosine = torch.nn.functional.cosine_similarity(ours, theirs.float(), dim=1)
    assert cosine.min() > 0.9999


def test_embeddings_are_deterministic(minilm: Path, tmp_path: Path) -> None:
    request = write_json(tmp_path / "texts.json", {"texts": TEXTS})
    _run(JobKind.INFER, minilm, request, {"task": "embed"}, tmp_path / "a")
    _run(JobKind.INFER, minilm, request, {"task": "embed"}, tmp_path / "b")
    assert sha256(tmp_path / "a" / "result.json") == sha256(tmp_path / "b" / "result.json")


def test_classify_outputs_labels_and_scores(tmp_path: Path) -> None:
    model = demo.cached_model("tiny-classifier")
    request = write_json(tmp_path / "texts.json", {"texts": TEXTS[:2]})
    _run(JobKind.INFER, model, request, {"task": "classify"}, tmp_path / "o")
    doc = json.loads((tmp_path / "o" / "result.json").read_text())
    assert doc["labels"] == ["negative", "positive"]
    for row in doc["predictions"]:
        assert set(row["scores"]) == {"negative", "positive"}
        assert abs(sum(row["scores"].values()) - 1.0) < 1e-5
        assert row["score"] == max(row["scores"].values())
        assert row["label"] == max(row["scores"], key=row["scores"].get)


def test_bad_texts_input(minilm: Path, tmp_path: Path) -> None:
    request = write_json(tmp_path / "t.json", {"texts": ["ok", 3]})
    with pytest.raises(InvalidJobInputError, match="'texts' must be a list"):
        _run(JobKind.INFER, minilm, request, {"task": "embed"}, tmp_path / "o")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InvalidJobInputError, match="not valid JSON"):
        _run(JobKind.INFER, minilm, tmp_path / "broken.json", {"task": "embed"}, tmp_path / "p")
