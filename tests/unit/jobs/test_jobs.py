"""The job protocol (registry.jobs): the kinds match the contract, the params schemas and their
parsing, the INFER task derived from a model's manifest, and the input checks a job must pass
before it is posted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from registry.errors import AnchormlError
from registry.jobs import (
    LABELS,
    MAX_NEW_TOKENS_CAP,
    ChatParams,
    CompressParams,
    EmbedParams,
    FinetuneParams,
    InvalidJobInputError,
    InvalidJobKindError,
    InvalidJobParamsError,
    JobKind,
    KindName,
    check_job,
    default_task,
    parse_params,
)

CONTRACT = Path(__file__).resolve().parents[3] / "contracts" / "src" / "JobBoard.sol"


def test_kinds_are_the_contracts_in_its_order() -> None:
    body = re.search(r"enum Kind \{([^}]*)\}", CONTRACT.read_text())
    assert body is not None
    names = [re.sub(r"//.*", "", n).strip() for n in body.group(1).split(",")]
    assert [n.upper() for n in names if n] == [k.name for k in JobKind]
    assert [int(k) for k in JobKind] == list(range(len(JobKind)))
    assert {k for k in JobKind if k.produces_model} == {
        JobKind.TRAIN,
        JobKind.FINETUNE,
        JobKind.COMPRESS,
    }


def test_kinds_parse_by_name_in_any_case_or_number() -> None:
    assert JobKind.parse("infer") is JobKind.INFER
    assert JobKind.parse(" FineTune ") is JobKind.FINETUNE
    assert JobKind.parse(3) is JobKind.EVAL
    assert LABELS == ("infer", "train", "finetune", "eval", "compress")
    with pytest.raises(InvalidJobKindError, match="unknown job kind 'MINE'; expected one of infer"):
        JobKind.parse("MINE")


def test_kind_name_in_a_model_reads_any_case_and_writes_the_label() -> None:
    class Body(BaseModel):
        kind: KindName

    assert Body.model_validate({"kind": "Eval"}).kind is JobKind.EVAL
    assert Body(kind=JobKind.TRAIN).model_dump() == {"kind": "train"}
    assert Body.model_json_schema()["properties"]["kind"]["enum"] == list(LABELS)
    with pytest.raises(ValidationError, match="unknown job kind"):
        Body.model_validate({"kind": "mine"})


def test_infer_params_are_discriminated_by_task() -> None:
    assert isinstance(parse_params(JobKind.INFER, '{"task": "chat"}'), ChatParams)
    assert isinstance(parse_params("infer", {"task": "embed"}), EmbedParams)
    chat = parse_params(JobKind.INFER, b'{"task":"chat","max_new_tokens":5}')
    assert isinstance(chat, ChatParams)
    assert (chat.max_new_tokens, chat.temperature, chat.seed) == (5, 0.0, 0)


@pytest.mark.parametrize(
    ("kind", "params", "where"),
    [
        (
            JobKind.INFER,
            {"task": "chat", "max_new_tokens": MAX_NEW_TOKENS_CAP + 1},
            "chat.max_new_tokens",
        ),
        (JobKind.INFER, {"task": "chat", "max_new_tokens": 0}, "chat.max_new_tokens"),
        (JobKind.INFER, {"task": "chat", "temperature": -1}, "chat.temperature"),
        (JobKind.INFER, {"task": "chat", "evil": 1}, "chat.evil"),
        (JobKind.INFER, {"task": "translate"}, "params"),
        (JobKind.TRAIN, {"steps": 10**6}, "steps"),
        (JobKind.TRAIN, {"lr": 0}, "lr"),
        (JobKind.FINETUNE, {"method": "full", "lora": {"r": 4}}, "params"),
        (JobKind.FINETUNE, {"lora": {"target_modules": ["q_proj; rm -rf"]}}, "lora.target_modules"),
        (JobKind.FINETUNE, {"labels": ["a", "a"]}, "params"),
        (JobKind.COMPRESS, {"method": "int8", "sparsity": 0.5}, "params"),
        (JobKind.COMPRESS, {"method": "prune", "sparsity": 1.0}, "sparsity"),
        (JobKind.EVAL, {"max_length": 4}, "max_length"),
    ],
)
def test_invalid_params_raise_typed_error(
    kind: JobKind, params: dict[str, object], where: str
) -> None:
    with pytest.raises(InvalidJobParamsError, match=f"invalid {kind.name} params: {where}") as info:
        parse_params(kind, params)
    assert info.value.code == "invalid_job_params"
    assert isinstance(info.value, AnchormlError) and isinstance(info.value, ValueError)
    assert info.value.errors and "loc" in info.value.errors[0]


def test_malformed_params_json() -> None:
    with pytest.raises(InvalidJobParamsError, match="invalid EVAL params"):
        parse_params(JobKind.EVAL, "{not json")


def test_unknown_kind() -> None:
    with pytest.raises(InvalidJobKindError, match="unknown job kind 'MINE'"):
        parse_params("MINE", "{}")


def test_defaults() -> None:
    finetune = parse_params(JobKind.FINETUNE, "{}")
    assert isinstance(finetune, FinetuneParams)
    assert finetune.method == "lora" and finetune.lora_settings.r == 8
    compress = parse_params(JobKind.COMPRESS, {"method": "prune"})
    assert isinstance(compress, CompressParams)
    assert (compress.sparsity, compress.scope, compress.eval.max_length) == (0.5, "global", 128)


@pytest.mark.parametrize(
    ("model_task", "doc", "task"),
    [
        ("feature-extraction", {"texts": ["x"]}, "embed"),
        ("feature-extraction", {}, "embed"),  # the input is checked afterwards, not here
        ("text-classification", {"texts": ["x"]}, "classify"),
        ("text-generation", {"messages": []}, "chat"),
        ("text-generation", {"prompt": "x"}, "generate"),
    ],
)
def test_the_task_comes_from_the_manifest_when_one_fits(
    model_task: str, doc: object, task: str
) -> None:
    assert default_task(model_task, doc) == task


@pytest.mark.parametrize(
    ("model_task", "doc", "words"),
    [
        ("text-generation", {"texts": ["x"]}, ("chat (input with 'messages')", "generate")),
        ("text-generation", {"prompt": "x", "messages": []}, ("chat", "generate")),
        ("adapter", {"texts": ["x"]}, ("'adapter'", "no INFER task")),
    ],
)
def test_an_ambiguous_task_is_a_params_error(
    model_task: str, doc: object, words: tuple[str, ...]
) -> None:
    with pytest.raises(InvalidJobParamsError, match="INFER params need a 'task'") as info:
        default_task(model_task, doc, "m@v1")
    for word in words:
        assert word in info.value.message
    assert info.value.errors[0]["loc"] == ["task"]


def _doc(value: object) -> bytes:
    return json.dumps(value).encode()


def test_check_job_adds_the_derived_task_only() -> None:
    checked = check_job(JobKind.INFER, None, _doc({"texts": ["a"]}), lambda: "feature-extraction")
    assert checked.params == {"task": "embed"} and isinstance(checked.parsed, EmbedParams)
    given = {"task": "embed", "normalize": False}
    assert check_job(JobKind.INFER, given, _doc({"texts": ["a"]})).params == given
    with pytest.raises(InvalidJobParamsError, match="need a 'task'"):
        check_job(JobKind.INFER, {}, _doc({"texts": ["a"]}))  # no manifest to ask


@pytest.mark.parametrize(
    ("kind", "params", "data", "match"),
    [
        (JobKind.INFER, {"task": "embed"}, b"[1]", "INFER input must be a JSON object"),
        (JobKind.INFER, {"task": "embed"}, b"{", "not valid JSON"),
        (JobKind.INFER, {"task": "embed"}, _doc({"texts": []}), "'texts' must be a list"),
        (JobKind.INFER, {"task": "classify"}, _doc({"texts": [1]}), "'texts' must be a list"),
        (JobKind.INFER, {"task": "generate"}, _doc({"texts": ["x"]}), "'prompt' must be"),
        (
            JobKind.INFER,
            {"task": "chat"},
            _doc({"messages": [{"role": "robot", "content": "x"}]}),
            r"messages\[0\] must be",
        ),
        (JobKind.TRAIN, {}, b"\xff\xfe", "not UTF-8"),
        (JobKind.EVAL, {}, b"\xff", "not UTF-8"),
        (JobKind.FINETUNE, {}, b"plain text\n", "line 1 is not valid JSON"),
        (JobKind.FINETUNE, {}, b"\n\n", "no rows"),
    ],
)
def test_inputs_that_do_not_fit_the_kind_are_refused(
    kind: JobKind, params: dict[str, object], data: bytes, match: str
) -> None:
    with pytest.raises(InvalidJobInputError, match=match) as info:
        check_job(kind, params, data)
    assert info.value.code == "invalid_job_input"


def test_inputs_that_fit_pass() -> None:
    chat = _doc({"messages": [{"role": "user", "content": "hi"}]})
    check_job(JobKind.INFER, {"task": "chat"}, chat)
    check_job(JobKind.INFER, {"task": "generate"}, _doc({"prompt": ""}))
    check_job(JobKind.TRAIN, {}, "text é".encode())
    check_job(JobKind.FINETUNE, {}, b'{"text": "a"}\n\n{"text": "b"}\n')
    check_job(JobKind.COMPRESS, {"method": "int8"}, b"")
