"""The job protocol: the kinds, their params schemas, the input and output encoding, and errors.

Requesters (the CLI, the gateway, scripts) and workers both speak it through this face:

- :class:`JobKind` — the one enum of kinds, numbered as the JobBoard contract;
- :func:`parse_params` and the params models — one schema per kind (INFER: per task);
- :func:`check_job` / :func:`check_input` — what a job must hold before it is posted;
- :func:`submit`, :func:`wait_settled`, :func:`fetch_result` — post, follow, fetch verified;
- :func:`publish_params` / :func:`fetch_params` and the input decoders — the content encoding;
- :class:`JobError` and its subclasses — the caller's faults, each with a stable ``code``.
"""

from registry.jobs.errors import (
    InvalidJobInputError,
    InvalidJobKindError,
    InvalidJobParamsError,
    JobError,
)
from registry.jobs.io import (
    MAX_INPUT_BYTES,
    canonical_params,
    chat_messages,
    check_input,
    check_verify_input,
    decode_json,
    decode_jsonl,
    decode_text,
    fetch_params,
    fetch_result,
    infer_document,
    input_texts,
    prompt_text,
    publish_params,
    read_input,
    read_json,
    read_jsonl,
    read_text,
)
from registry.jobs.kinds import LABELS, JobKind, KindName
from registry.jobs.params import (
    MAX_NEW_TOKENS_CAP,
    ChatParams,
    ClassifyParams,
    CompressParams,
    EmbedParams,
    EvalParams,
    FinetuneParams,
    GenerateParams,
    InferParams,
    JobParams,
    LoraParams,
    TrainParams,
    VerifyParams,
    check_kind,
    default_task,
    parse_params,
)
from registry.jobs.requester import (
    CheckedJob,
    JobNotFinalizedError,
    JobWaitTimeoutError,
    Submitted,
    check_job,
    submit,
    wait_settled,
)

__all__ = [
    "LABELS",
    "MAX_INPUT_BYTES",
    "MAX_NEW_TOKENS_CAP",
    "ChatParams",
    "CheckedJob",
    "ClassifyParams",
    "CompressParams",
    "EmbedParams",
    "EvalParams",
    "FinetuneParams",
    "GenerateParams",
    "InferParams",
    "InvalidJobInputError",
    "InvalidJobKindError",
    "InvalidJobParamsError",
    "JobError",
    "JobKind",
    "JobNotFinalizedError",
    "JobParams",
    "JobWaitTimeoutError",
    "KindName",
    "LoraParams",
    "Submitted",
    "TrainParams",
    "VerifyParams",
    "canonical_params",
    "chat_messages",
    "check_input",
    "check_verify_input",
    "check_job",
    "check_kind",
    "decode_json",
    "decode_jsonl",
    "decode_text",
    "default_task",
    "fetch_params",
    "fetch_result",
    "infer_document",
    "input_texts",
    "parse_params",
    "prompt_text",
    "publish_params",
    "read_input",
    "read_json",
    "read_jsonl",
    "read_text",
    "submit",
    "wait_settled",
]
