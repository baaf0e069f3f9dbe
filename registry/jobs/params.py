"""Job params: one schema per job kind (INFER has one per task), and their parsing.

Every schema forbids unknown fields and bounds what would let one job hog a worker
(``max_new_tokens``, steps, batch sizes, sequence lengths). The JSON a job carries on chain (by
hash) is parsed once by :func:`parse_params` — by the requester before anything is posted, and
by the worker before it claims; the worker hands the parsed object to the executor.

An INFER job may leave ``task`` out when the model's manifest decides it (:func:`default_task`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from registry.jobs.errors import InvalidJobParamsError
from registry.jobs.kinds import JobKind

MAX_NEW_TOKENS_CAP = 1024
MAX_STEPS = 10_000
MAX_SEQ_LEN = 4096
_MODULE_NAME = re.compile(r"^[A-Za-z0-9_.]{1,128}$")

Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
LearningRate = Annotated[float, Field(gt=0.0, le=1.0)]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- INFER -----------------------------------------------------------------------------------


class _GenerationParams(_Params):
    max_new_tokens: int = Field(default=64, ge=1, le=MAX_NEW_TOKENS_CAP)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0 = greedy decoding")
    top_p: float = Field(
        default=1.0, gt=0.0, le=1.0, description="nucleus sampling, when temperature > 0"
    )
    seed: Seed = 0
    stop: tuple[Annotated[str, Field(min_length=1, max_length=256)], ...] = Field(
        default=(), max_length=4, description="up to 4 strings that end the text (not included)"
    )


class ChatParams(_GenerationParams):
    """INFER chat: input ``{"messages": [{"role", "content"}, ...]}``, the model's chat template."""

    task: Literal["chat"]


class GenerateParams(_GenerationParams):
    """INFER text completion: input ``{"prompt": "..."}``."""

    task: Literal["generate"]


class EmbedParams(_Params):
    """INFER sentence embeddings: input ``{"texts": [...]}``."""

    task: Literal["embed"]
    normalize: bool = True
    max_length: int | None = Field(default=None, ge=1, le=8192, description="default: the model's")
    batch_size: int = Field(default=32, ge=1, le=256)


class ClassifyParams(_Params):
    """INFER sequence classification: input ``{"texts": [...]}``."""

    task: Literal["classify"]
    max_length: int | None = Field(default=None, ge=1, le=8192)
    batch_size: int = Field(default=32, ge=1, le=256)


class VerifyParams(_Params):
    """INFER re-execution of a challenged receipt: input ``{"receipt", "request", "response"}``
    (see :mod:`node.executors.verify`); the output is the 65-byte verdict."""

    task: Literal["verify"]


InferParams = Annotated[
    ChatParams | GenerateParams | EmbedParams | ClassifyParams | VerifyParams,
    Field(discriminator="task"),
]


# --- TRAIN / FINETUNE ------------------------------------------------------------------------


class _OptimParams(_Params):
    seed: Seed = 0
    steps: int = Field(default=50, ge=1, le=MAX_STEPS)
    batch_size: int = Field(default=8, ge=1, le=256)
    warmup_steps: int = Field(default=0, ge=0, le=MAX_STEPS)
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    grad_clip: float = Field(default=1.0, gt=0.0, le=100.0)


class TrainParams(_OptimParams):
    """TRAIN a causal LM from its config on a UTF-8 text file."""

    lr: LearningRate = 1e-3
    seq_len: int = Field(default=64, ge=8, le=MAX_SEQ_LEN)


class LoraParams(_Params):
    """LoRA settings; ``target_modules=None`` uses peft's default for the architecture."""

    r: int = Field(default=8, ge=1, le=256)
    alpha: int = Field(default=16, ge=1, le=4096)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | None = Field(default=None, min_length=1, max_length=64)
    merge: bool = Field(
        default=False, description="merge into the base weights and emit a full model"
    )

    @field_validator("target_modules")
    @classmethod
    def _module_names(cls, names: list[str] | None) -> list[str] | None:
        for name in names or []:
            if not _MODULE_NAME.match(name):
                raise ValueError(f"invalid module name {name!r}")
        return names


class FinetuneParams(_OptimParams):
    """FINETUNE (full or LoRA) on JSONL: ``{"text","label"}`` or ``{"prompt","completion"}`` /
    ``{"text"}``."""

    method: Literal["full", "lora"] = "lora"
    task: Literal["auto", "causal_lm", "classification"] = "auto"
    lr: LearningRate = 1e-4
    max_length: int = Field(default=128, ge=8, le=MAX_SEQ_LEN)
    labels: list[str] | None = Field(
        default=None, min_length=2, max_length=1000, description="build a new classification head"
    )
    chat_template: bool = Field(
        default=False, description="wrap prompts in the model's chat template"
    )
    lora: LoraParams | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FinetuneParams:
        if self.method == "full" and self.lora is not None:
            raise ValueError("lora settings given with method 'full'")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be distinct")
        if self.labels is not None and self.task == "causal_lm":
            raise ValueError("labels only apply to classification")
        return self

    @property
    def lora_settings(self) -> LoraParams:
        """The LoRA settings in effect (defaults when not given)."""
        return self.lora or LoraParams.model_validate({})


# --- EVAL / COMPRESS -------------------------------------------------------------------------


class EvalParams(_Params):
    """EVAL: perplexity (causal LM, text file) or accuracy (classifier, labelled JSONL)."""

    max_length: int = Field(
        default=128, ge=8, le=MAX_SEQ_LEN, description="window / truncation length"
    )
    max_tokens: int = Field(default=16_384, ge=1, le=1_000_000, description="cap on tokens scored")
    batch_size: int = Field(default=8, ge=1, le=256)


class CompressParams(_Params):
    """COMPRESS: magnitude pruning and/or int8 weight-only quantization."""

    method: Literal["prune", "int8", "prune+int8"]
    sparsity: float = Field(default=0.5, gt=0.0, lt=1.0)
    scope: Literal["global", "per_layer"] = "global"
    eval: EvalParams = Field(default_factory=lambda: EvalParams.model_validate({}))

    @model_validator(mode="after")
    def _consistent(self) -> CompressParams:
        if self.method == "int8" and {"sparsity", "scope"} & self.model_fields_set:
            raise ValueError("sparsity/scope only apply to pruning")
        return self


JobParams = (
    ChatParams
    | GenerateParams
    | EmbedParams
    | ClassifyParams
    | VerifyParams
    | TrainParams
    | FinetuneParams
    | EvalParams
    | CompressParams
)
"""The parsed params of any job."""

#: The params classes of each kind.
PARAM_TYPES: dict[JobKind, tuple[type[BaseModel], ...]] = {
    JobKind.INFER: (ChatParams, GenerateParams, EmbedParams, ClassifyParams, VerifyParams),
    JobKind.TRAIN: (TrainParams,),
    JobKind.FINETUNE: (FinetuneParams,),
    JobKind.EVAL: (EvalParams,),
    JobKind.COMPRESS: (CompressParams,),
}

PARAMS: dict[JobKind, TypeAdapter[Any]] = {
    JobKind.INFER: TypeAdapter(InferParams),
    JobKind.TRAIN: TypeAdapter(TrainParams),
    JobKind.FINETUNE: TypeAdapter(FinetuneParams),
    JobKind.EVAL: TypeAdapter(EvalParams),
    JobKind.COMPRESS: TypeAdapter(CompressParams),
}


def parse_params(kind: JobKind | str, params: str | bytes | Mapping[str, Any]) -> JobParams:
    """Validate ``params`` (JSON text or a decoded mapping) for ``kind``; return the params model.

    Raises:
        InvalidJobKindError: ``kind`` names no kind.
        InvalidJobParamsError: malformed JSON or a schema violation (the pydantic error list is
            in ``errors``; the message names the first field).
    """
    kind = JobKind.parse(kind)
    adapter = PARAMS[kind]
    try:
        if isinstance(params, str | bytes):
            parsed: JobParams = adapter.validate_json(params)
        else:
            parsed = adapter.validate_python(dict(params))
    except ValidationError as exc:
        errors = json.loads(exc.json(include_url=False, include_input=False))
        first = errors[0] if errors else {}
        where = ".".join(str(part) for part in first.get("loc", ())) or "params"
        raise InvalidJobParamsError(
            f"invalid {kind.name} params: {where}: {first.get('msg', 'invalid')}", errors
        ) from None
    return parsed


def check_kind(kind: JobKind, params: JobParams) -> None:
    """Refuse params parsed for another kind than ``kind``.

    Raises:
        InvalidJobParamsError: ``params`` are not ``kind``'s.
    """
    if not isinstance(params, PARAM_TYPES[kind]):
        raise InvalidJobParamsError(f"{type(params).__name__} are not {kind.name} params")


# --- INFER task from the model ---------------------------------------------------------------

INFER_TASKS = ("chat", "generate", "embed", "classify")
#: The input field each INFER task reads.
TASK_INPUT = {"chat": "messages", "generate": "prompt", "embed": "texts", "classify": "texts"}
#: INFER tasks a model can do, by its manifest's task (Hugging Face pipeline names).
TASKS_OF_MODEL: dict[str, tuple[str, ...]] = {
    "feature-extraction": ("embed",),
    "text-classification": ("classify",),
    "text-generation": ("chat", "generate"),
}


def default_task(model_task: str, doc: Any, model: str = "the model") -> str:
    """The INFER task for a job that names none: the only one the model's manifest allows, or,
    for a text-generation model, the one whose input field the input document holds.

    Args:
        model_task: the ``task`` of the model version's ``anchorml.json``.
        doc: the decoded input document.
        model: how to name the model in the error.

    Raises:
        InvalidJobParamsError: the task is ambiguous or the model does none.
    """
    candidates = TASKS_OF_MODEL.get(model_task, ())
    if len(candidates) > 1 and isinstance(doc, dict):
        fitting = [task for task in candidates if TASK_INPUT[task] in doc]
        candidates = tuple(fitting) if len(fitting) == 1 else candidates
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        shapes = " or ".join(f"{t} (input with {TASK_INPUT[t]!r})" for t in candidates)
        why = f"{model} is {model_task}, which fits {shapes}"
    else:
        why = f"{model} is {model_task!r}, which no INFER task runs"
    raise InvalidJobParamsError(
        f"INFER params need a 'task' ({', '.join(INFER_TASKS)}): {why}",
        [{"loc": ["task"], "msg": "Field required", "type": "missing"}],
    )
