"""Validated job parameters, one schema per job kind (INFER has one per task).

Every schema forbids unknown fields and bounds what would let one job hog a worker
(``max_new_tokens``, steps, batch sizes, sequence lengths). The JSON a job carries on chain (by
hash) is validated by :func:`node.executors.run_job` against :data:`PARAMS`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

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


InferParams = Annotated[
    ChatParams | GenerateParams | EmbedParams | ClassifyParams, Field(discriminator="task")
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


PARAMS: dict[str, TypeAdapter[Any]] = {
    "INFER": TypeAdapter(InferParams),
    "TRAIN": TypeAdapter(TrainParams),
    "FINETUNE": TypeAdapter(FinetuneParams),
    "EVAL": TypeAdapter(EvalParams),
    "COMPRESS": TypeAdapter(CompressParams),
}
