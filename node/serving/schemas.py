"""Request and response bodies of the OpenAI-compatible endpoints, in OpenAI's shapes.

Requests accept the fields OpenAI's clients send and ignore unknown ones (clients add fields
over time). Parameters that would change the answer but are not implemented (``n > 1``,
``logprobs``, tools) are refused with ``unsupported_parameter`` by the handlers rather than
silently ignored. Numbers are bounded where a huge value could only be a mistake; ``max_tokens``
is deliberately *not* bounded here, so an absurd value gets the specific
``max_tokens_too_large`` error instead of a generic validation message.

An answer's ``anchorml`` field is its receipt: ``{"receipt", "request"}`` signed by the server
that answered (direct answers, :mod:`node.serving.receipts`; a stream's last chunk), or the
on-chain job's record (``mode: onchain``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_INPUTS = 2048
MAX_STOP = 4

Role = Literal["system", "developer", "user", "assistant"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(BaseModel):
    """A text part of a message's content (``{"type": "text", "text": ...}``)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message of a conversation."""

    model_config = ConfigDict(extra="ignore")

    role: Role
    content: str | Annotated[list[TextPart], Field(max_length=256)] | None = None
    name: str | None = Field(default=None, max_length=64)

    def text(self) -> str:
        """The message content as one string."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    """``stream_options``: ``include_usage`` adds a final chunk with token counts."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class _Sampling(_Request):
    model: str = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(default=None, ge=1, description="capped by the server")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, description="0/absent: greedy")
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int | None = Field(default=None, ge=1, le=128)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logprobs: bool | None = None
    user: str | None = Field(default=None, max_length=256)

    def stop_list(self) -> list[str]:
        """``stop`` as a list (empty strings dropped)."""
        if self.stop is None:
            return []
        items = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        return [s for s in items if s]


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None

    def requested_max_tokens(self) -> int | None:
        """``max_completion_tokens`` (newer clients) or ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    """``POST /v1/completions`` (legacy text completion)."""

    prompt: str | list[str] = Field(max_length=MAX_INPUTS)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1, le=20)

    def requested_max_tokens(self) -> int | None:
        """``max_tokens`` (OpenAI's default for completions is 16; ours is the server's)."""
        return self.max_tokens


class EmbeddingRequest(_Request):
    """``POST /v1/embeddings``."""

    model: str = Field(min_length=1, max_length=256)
    input: str | Annotated[list[str], Field(min_length=1, max_length=MAX_INPUTS)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=65_536)
    user: str | None = Field(default=None, max_length=256)

    def texts(self) -> list[str]:
        """``input`` as a list."""
        return [self.input] if isinstance(self.input, str) else list(self.input)


class ClassificationRequest(_Request):
    """``POST /v1/classifications`` (anchorml extension: sequence classification)."""

    model: str = Field(min_length=1, max_length=256)
    input: str | Annotated[list[str], Field(min_length=1, max_length=MAX_INPUTS)]

    def texts(self) -> list[str]:
        """``input`` as a list."""
        return [self.input] if isinstance(self.input, str) else list(self.input)


# --- responses -------------------------------------------------------------------------------


class Usage(BaseModel):
    """Token counts."""

    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class AssistantMessage(BaseModel):
    """The generated message."""

    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    """One choice of a chat completion."""

    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    """A chat completion (``object: chat.completion``)."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None
    anchorml: dict[str, Any] | None = None


class Delta(BaseModel):
    """A streamed piece of the assistant message."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    """One choice of a streamed chunk."""

    index: int
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """An SSE event of a streamed chat completion."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    anchorml: dict[str, Any] | None = None


class CompletionChoice(BaseModel):
    """One choice of a text completion (also the shape of a streamed one)."""

    index: int
    text: str
    finish_reason: Literal["stop", "length"] | None
    logprobs: None = None


class Completion(BaseModel):
    """A text completion (``object: text_completion``); streamed chunks share the shape."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    anchorml: dict[str, Any] | None = None


class Embedding(BaseModel):
    """One embedding: floats, or base64 of little-endian float32."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingList(BaseModel):
    """The embeddings response."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage
    anchorml: dict[str, Any] | None = None


class Classification(BaseModel):
    """One text's predicted label with the probability of every label."""

    index: int
    label: str
    score: float
    scores: dict[str, float]


class ClassificationList(BaseModel):
    """The classifications response."""

    object: Literal["list"] = "list"
    data: list[Classification]
    model: str
    usage: Usage
    anchorml: dict[str, Any] | None = None


class ModelCard(BaseModel):
    """One entry of ``/v1/models``."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    """OpenAI's error object."""

    message: str
    type: str
    code: str
    param: str | None = None


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {...}}``."""

    error: ErrorDetail
