"""Job inputs, params and results as content — the conventions requesters and workers share.

* **params**: canonical JSON (sorted keys, compact) of at most 256 KiB, stored as one raw block.
  Its CIDv1 digest *is* ``sha256(params)``, so the ``paramsHash`` on chain both commits to the
  params and names the block a worker fetches (verified by hash on read).
* **input**: one UnixFS file of at most 32 MiB; the job names its CID. What it holds depends on
  the kind (:func:`check_input`): INFER a JSON object whose field the task reads (``messages``,
  ``prompt`` or ``texts``), FINETUNE JSON Lines, TRAIN / EVAL / COMPRESS UTF-8 text (or JSON
  Lines for a classifier). The decoders here are the ones the executors read inputs with.
* **result**: for INFER/EVAL a ``result.json`` file (output sha256 = sha256 of its bytes); for
  TRAIN/FINETUNE/COMPRESS a model directory whose ``anchorml.json`` sha256 is the output hash
  (the same value the registry stores for the version).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import ConfigError, CorruptContentError, StoreError
from registry.jobs.errors import InvalidJobInputError
from registry.jobs.kinds import JobKind
from registry.jobs.params import (
    ChatParams,
    ClassifyParams,
    EmbedParams,
    GenerateParams,
    JobParams,
    VerifyParams,
    check_kind,
)

if TYPE_CHECKING:
    from registry.store.base import ContentStore

MAX_PARAMS_BYTES = 262_144
MAX_INPUT_BYTES = 32 << 20
MAX_TEXTS = 1024
MAX_MESSAGES = 256
#: The fields of a receipt re-execution's input.
VERIFY_FIELDS = ("receipt", "request", "response")
ROLES = frozenset({"system", "user", "assistant"})
RAW_CODEC = 0x55


# --- params ----------------------------------------------------------------------------------


def canonical_params(params: Mapping[str, Any]) -> bytes:
    """Canonical JSON bytes of ``params``."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def publish_params(store: ContentStore, params: Mapping[str, Any]) -> bytes:
    """Store ``params`` as one raw block; return its sha256 (the on-chain ``paramsHash``).

    Raises:
        ConfigError: the params exceed 256 KiB.
    """
    raw = canonical_params(params)
    if len(raw) > MAX_PARAMS_BYTES:
        raise ConfigError(f"job params are {len(raw)} bytes; the limit is {MAX_PARAMS_BYTES}")
    cid = store.put_block(raw, RAW_CODEC)
    digest = hashlib.sha256(raw).digest()
    if cid.digest != digest:
        raise StoreError("store returned a CID that does not match the params")
    return digest


def fetch_params(store: ContentStore, params_hash: bytes) -> bytes:
    """The params bytes named by ``params_hash`` (verified against it)."""
    from registry.store.cid import CID

    raw = store.get_block(CID.from_digest(RAW_CODEC, params_hash))
    if hashlib.sha256(raw).digest() != params_hash:
        raise CorruptContentError("job params do not match their hash")
    return raw


# --- input -----------------------------------------------------------------------------------


def read_input(path: Path, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of an input file of at most ``limit`` bytes.

    Raises:
        InvalidJobInputError: absent, a directory, unreadable or too large.
    """
    try:
        if path.is_dir():
            raise InvalidJobInputError(f"input {path.name} is a directory; a job reads one file")
        size = path.stat().st_size
        if size > limit:
            raise InvalidJobInputError(f"input is {size} bytes; the limit is {limit}")
        return path.read_bytes()
    except OSError as exc:
        raise InvalidJobInputError(f"cannot read input {path.name}: {exc.strerror}") from exc


def decode_text(data: bytes) -> str:
    """A UTF-8 text input."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJobInputError(f"input is not UTF-8 text (byte {exc.start})") from exc


def decode_json(data: bytes) -> Any:
    """A JSON input document."""
    try:
        return json.loads(decode_text(data))
    except ValueError as exc:
        if isinstance(exc, InvalidJobInputError):
            raise
        raise InvalidJobInputError(f"input is not valid JSON: {exc}") from exc


def decode_jsonl(data: bytes) -> list[dict[str, Any]]:
    """JSON Lines (one object per non-blank line)."""
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(decode_text(data).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise InvalidJobInputError(f"input line {number} is not valid JSON") from exc
        if not isinstance(row, dict):
            raise InvalidJobInputError(f"input line {number} is not a JSON object")
        rows.append(row)
    if not rows:
        raise InvalidJobInputError("input has no rows")
    return rows


def read_text(path: Path, limit: int = MAX_INPUT_BYTES) -> str:
    """Read a UTF-8 text input."""
    return decode_text(read_input(path, limit))


def read_json(path: Path, limit: int = MAX_INPUT_BYTES) -> Any:
    """Read a JSON input document."""
    return decode_json(read_input(path, limit))


def read_jsonl(path: Path, limit: int = MAX_INPUT_BYTES) -> list[dict[str, Any]]:
    """Read JSON Lines (one object per non-blank line)."""
    return decode_jsonl(read_input(path, limit))


def infer_document(data: bytes) -> dict[str, Any]:
    """An INFER input: one JSON object."""
    doc = decode_json(data)
    if not isinstance(doc, dict):
        raise InvalidJobInputError("INFER input must be a JSON object")
    return doc


def chat_messages(doc: Mapping[str, Any]) -> list[dict[str, str]]:
    """The ``messages`` of a chat input, checked (roles, string contents, no other keys)."""
    messages = doc.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
        raise InvalidJobInputError(f"'messages' must be a list of 1 to {MAX_MESSAGES} messages")
    clean: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        if (
            not isinstance(message, dict)
            or message.get("role") not in ROLES
            or not isinstance(message.get("content"), str)
            or set(message) - {"role", "content"}
        ):
            raise InvalidJobInputError(
                f"messages[{i}] must be {{'role': system|user|assistant, 'content': str}}"
            )
        clean.append({"role": message["role"], "content": message["content"]})
    return clean


def prompt_text(doc: Mapping[str, Any]) -> str:
    """The ``prompt`` of a text-completion input."""
    prompt = doc.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidJobInputError("'prompt' must be a string")
    return prompt


def input_texts(doc: Mapping[str, Any]) -> list[str]:
    """The ``texts`` of an embedding or classification input."""
    texts = doc.get("texts")
    if (
        not isinstance(texts, list)
        or not 1 <= len(texts) <= MAX_TEXTS
        or not all(isinstance(t, str) for t in texts)
    ):
        raise InvalidJobInputError(f"'texts' must be a list of 1 to {MAX_TEXTS} strings")
    return texts


def check_verify_input(doc: Mapping[str, Any]) -> None:
    """The input of a receipt re-execution: exactly ``receipt``, ``request`` and ``response``,
    each a JSON object."""
    if set(doc) != set(VERIFY_FIELDS) or not all(isinstance(doc[k], dict) for k in VERIFY_FIELDS):
        raise InvalidJobInputError(
            "a verify input is {" + ", ".join(repr(k) for k in VERIFY_FIELDS) + "}: three objects"
        )


def check_input(kind: JobKind, params: JobParams, data: bytes) -> None:
    """Check an input's encoding against the job's kind and params (what can be checked without
    the model: whether the model's context or labels fit is the worker's to say).

    Raises:
        InvalidJobInputError: the input does not fit.
        InvalidJobParamsError: ``params`` are not ``kind``'s.
    """
    check_kind(kind, params)
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidJobInputError(f"input is {len(data)} bytes; the limit is {MAX_INPUT_BYTES}")
    if kind is JobKind.INFER:
        doc = infer_document(data)
        if isinstance(params, ChatParams):
            chat_messages(doc)
        elif isinstance(params, GenerateParams):
            prompt_text(doc)
        elif isinstance(params, EmbedParams | ClassifyParams):
            input_texts(doc)
        elif isinstance(params, VerifyParams):
            check_verify_input(doc)
    elif kind is JobKind.FINETUNE:
        decode_jsonl(data)
    else:
        decode_text(data)


# --- result ----------------------------------------------------------------------------------


def fetch_result(store: ContentStore, output: Any, out: Path) -> Path:
    """Download a job's output to ``out`` (verified block by block) and check its sha256.

    For a single-file result the file's sha256 must equal the on-chain output hash; for a model
    the manifest's sha256 must.
    """
    from registry.model.manifest import MANIFEST_NAME

    path = store.get(output.content.to_cid(), out)
    target = path / MANIFEST_NAME if path.is_dir() else path
    if hashlib.sha256(target.read_bytes()).digest() != output.sha256:
        raise CorruptContentError(
            f"result {output.content.to_cid()} does not match its on-chain sha256"
        )
    return path
