"""One decode loop: an INFER job and the serving runtime decode a prompt the same way.

The same prompt, params and seed give the same tokens through an INFER job's executor and
through :class:`~node.serving.InferenceRuntime`, greedy and sampled; stop strings in an INFER
job's params cut its text exactly where they cut a served request's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from node.executors import run_job  # noqa: E402
from node.executors.common import THREADS_ENV  # noqa: E402
from node.models import GenerationDone, GenerationParams  # noqa: E402
from node.serving import InferenceRuntime, RuntimeConfig  # noqa: E402
from node.serving.lanes import default_lanes  # noqa: E402
from registry.clients import ContentRef, VersionRecord  # noqa: E402
from registry.dev import demo  # noqa: E402
from registry.jobs import InvalidJobParamsError, JobKind, parse_params  # noqa: E402

pytestmark = pytest.mark.timeout(600)

CHAT = [{"role": "user", "content": "Name three colours."}]
COUNTING = "1, 2, 3, 4,"


@pytest.fixture(autouse=True)
def same_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """INFER jobs run with the thread count the runtime's decode steps use (its lane count):
    CPU results are bit-identical for one thread count, not across counts."""
    monkeypatch.setenv(THREADS_ENV, str(default_lanes()))


class _DirCache:
    """Stands in for the verified ModelCache: every version is ``model_dir``."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir

    def ensure(self, version: VersionRecord) -> Path:
        return self.model_dir


def served(
    model_dir: Path,
    params: GenerationParams,
    *,
    messages: list[dict[str, str]] | None = None,
    text: str | None = None,
) -> tuple[str, GenerationDone]:
    """The text and end of one generation through the serving runtime."""
    digest = hashlib.sha256(str(model_dir).encode()).digest()
    version = VersionRecord(
        digest, digest, "v1", ContentRef(0x70, digest), digest, None, 0, "", False
    )

    async def scenario() -> tuple[str, GenerationDone]:
        runtime = InferenceRuntime(_DirCache(model_dir), RuntimeConfig())  # type: ignore[arg-type]
        try:
            loaded, prompt = await runtime.prompt(version, params, messages=messages, text=text)
            stream = await runtime.generate(loaded, prompt)
            return await asyncio.wait_for(stream.collect(), timeout=300)
        finally:
            await runtime.stop()

    return asyncio.run(scenario())


def job(model_dir: Path, tmp_path: Path, doc: dict[str, Any], params: dict[str, Any]) -> Any:
    """``result.json`` of one INFER job."""
    request = tmp_path / "input.json"
    request.write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "out"
    run_job(JobKind.INFER, model_dir, request, parse_params(JobKind.INFER, params), out)
    return json.loads((out / "result.json").read_text(encoding="utf-8"))


def same_answer(result: Any, text: str, done: GenerationDone) -> None:
    assert result["text"] == text
    assert result["finish_reason"] == done.finish_reason
    assert result["usage"] == {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
    }


SAMPLING: dict[str, dict[str, Any]] = {
    "greedy": {"temperature": 0.0},
    "sampled": {"temperature": 0.8, "top_p": 0.9, "seed": 3},
    "hot": {"temperature": 1.5, "top_p": 1.0, "seed": 11},
}


@pytest.mark.parametrize("sampling", ["greedy", "sampled"])
def test_chat_job_decodes_like_serving(sampling: str, tmp_path: Path) -> None:
    model = demo.cached_model("smollm2")
    knobs = SAMPLING[sampling]
    result = job(
        model, tmp_path, {"messages": CHAT}, {"task": "chat", "max_new_tokens": 16, **knobs}
    )
    text, done = served(model, GenerationParams(max_tokens=16, **knobs), messages=CHAT)
    same_answer(result, text, done)
    assert done.completion_tokens > 0


@pytest.mark.parametrize("sampling", list(SAMPLING))
def test_completion_job_decodes_like_serving_on_random_weights(
    sampling: str, tmp_path: Path
) -> None:
    """tiny-gpt2's random weights spread probability over many tokens: a sampler that differs
    in any way (order of the candidates, random stream, nucleus cut) picks other bytes."""
    model = demo.cached_model("tiny-gpt2")
    knobs = SAMPLING[sampling]
    params = {"task": "generate", "max_new_tokens": 24, **knobs}
    result = job(model, tmp_path, {"prompt": "Hello"}, params)
    text, done = served(model, GenerationParams(max_tokens=24, **knobs), text="Hello")
    same_answer(result, text, done)


@pytest.mark.parametrize(
    ("stop", "expected"),
    [(["6"], " 5, "), ([", 7", "never"], " 5, 6"), (["never"], " 5, 6, 7, 8, 9, ")],
)
def test_stop_strings_cut_a_job_where_they_cut_a_served_request(
    stop: list[str], expected: str, tmp_path: Path
) -> None:
    model = demo.cached_model("smollm2")
    params = {"task": "generate", "max_new_tokens": 16, "stop": stop}
    result = job(model, tmp_path, {"prompt": COUNTING}, params)
    assert result["text"] == expected
    assert result["finish_reason"] == ("length" if stop == ["never"] else "stop")
    text, done = served(model, GenerationParams(max_tokens=16, stop=tuple(stop)), text=COUNTING)
    same_answer(result, text, done)


@pytest.mark.parametrize("stop", [[""], ["a", "b", "c", "d", "e"], ["x" * 257], "6"])
def test_bad_stop_strings_are_refused(stop: object, tmp_path: Path) -> None:
    with pytest.raises(InvalidJobParamsError, match="stop"):
        parse_params(JobKind.INFER, {"task": "generate", "stop": stop})
