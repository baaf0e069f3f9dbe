"""The only way anchorml code opens a model directory.

Contract with the layers around it: before a directory reaches this module the store/packaging
layer has verified every file against the sha256 and size in the version's manifest
(``anchorml.json``), so the bytes are the ones the registry anchored. This module does not re-hash;
it answers a different question — *could loading these bytes run code?* — and refuses before any
deserializer sees them:

1. pickle-based weights, by name (``*.bin``, ``*.pt``, ``*.pth``, ``*.pkl``, ``*.pickle``,
   ``*.ckpt``, ...) and by content in every other file: the pickle protocol 2-5 magic, a complete
   protocol 0/1 opcode stream (walked with :mod:`pickletools`, which never executes anything), or a
   ZIP archive holding a pickle (the ``torch.save`` format);
2. ``*.safetensors`` files whose header does not parse or whose offsets run past the file;
3. code: ``*.py`` (and compiled or native code) anywhere in the tree, ``auto_map`` /
   ``custom_pipelines`` in a JSON config, a sentence-transformers ``modules.json`` naming a class
   outside ``sentence_transformers``;
4. symlinks that leave the directory.

The loaders then call ``from_pretrained`` with ``trust_remote_code=False``,
``use_safetensors=True`` and ``local_files_only=True``; callers pass local paths only.

Int8 layout (written by the COMPRESS executor, read back here by dequantize-on-load): the
directory holds ``model.int8.safetensors`` *instead of* ``model.safetensors`` — a plain
``from_pretrained`` then fails loudly instead of reading int8 codes as floats. Its metadata has
``anchorml_quant = "int8-channel-v1"`` and ``dtype`` (the torch dtype name weights are restored to).
For each quantized weight ``W`` it holds ``W`` as int8 codes in [-127, 127] and
``W + ".int8_scale"`` as float32, broadcastable to ``W`` (``[out, 1]`` for ``nn.Linear``,
``[1, out]`` for GPT-2's ``Conv1D``); restored weight = ``codes.float() * scale``. Every other
tensor is stored unchanged; tied weights are stored once, under their source name.
"""

from __future__ import annotations

import json
import os
import pickletools
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from registry.errors import ModelError, UnsafeModelError

if TYPE_CHECKING:
    import torch
    from peft import PeftModel
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

CONFIG_FILE = "config.json"
ADAPTER_CONFIG_FILE = "adapter_config.json"
SAFETENSORS_FILE = "model.safetensors"
INT8_WEIGHTS_FILE = "model.int8.safetensors"
INT8_FORMAT = "int8-channel-v1"
INT8_SCALE_SUFFIX = ".int8_scale"

PICKLE_SUFFIXES = frozenset(
    {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill", ".npy", ".npz"}
)
CODE_SUFFIXES = frozenset({".py", ".pyc", ".pyo", ".pyw", ".pyd", ".so", ".dll", ".dylib"})
REMOTE_CODE_KEYS = frozenset({"auto_map", "custom_pipelines"})
_CONFIG_JSONS = frozenset({CONFIG_FILE, ADAPTER_CONFIG_FILE, "tokenizer_config.json"})
_MAX_JSON_BYTES = 64 << 20
_MAX_SAFETENSORS_HEADER = 100 << 20
_MAX_PICKLE_OPS = 1_000_000


# --- checks ----------------------------------------------------------------------------------


def check_model_dir(path: str | os.PathLike[str]) -> None:
    """Refuse a model directory that could run code when loaded.

    Args:
        path: a local directory in Hugging Face layout (or a PEFT adapter directory).

    Raises:
        UnsafeModelError: a file carries pickle data, code or remote-code config; the message
            names the file (relative to ``path``).
        ModelError: ``path`` is not a directory, or it has neither ``config.json`` nor
            ``adapter_config.json``, or a config file is not valid JSON.
    """
    root = Path(path)
    if not root.is_dir():
        raise ModelError(f"model directory {root} does not exist or is not a directory")
    for file in _walk(root):
        _check_file(root, file)
    if not (root / CONFIG_FILE).is_file() and not (root / ADAPTER_CONFIG_FILE).is_file():
        raise ModelError(f"model directory {root} has no {CONFIG_FILE}")


def _walk(root: Path) -> Iterator[Path]:
    """Yield every file under ``root`` in sorted order; refuse symlinks that escape it."""
    resolved_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in [*sorted(filenames), *dirnames]:
            entry = Path(dirpath) / name
            if entry.is_symlink():
                target = entry.resolve()
                if not target.is_relative_to(resolved_root):
                    raise UnsafeModelError(
                        f"{entry.relative_to(root)} is a symlink leaving the model directory"
                    )
                if target.is_dir():
                    raise UnsafeModelError(f"{entry.relative_to(root)} is a directory symlink")
            if name in filenames:
                yield entry


def _check_file(root: Path, file: Path) -> None:
    rel = file.relative_to(root).as_posix()
    suffix = file.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise UnsafeModelError(f"{rel}: pickle-based weight files are refused ({suffix})")
    if suffix in CODE_SUFFIXES:
        raise UnsafeModelError(f"{rel}: code files are refused in a model directory")
    if suffix == ".safetensors":
        _check_safetensors(file, rel)
        return
    with file.open("rb") as fh:
        head = fh.read(8)
        fh.seek(0)
        if _is_pickle(fh, head):
            raise UnsafeModelError(f"{rel}: file content is a pickle")
    if head.startswith(b"PK\x03\x04"):
        _check_zip(file, rel)
    if suffix == ".json":
        _check_json(file, rel)


def _is_pickle(stream: IO[bytes], head: bytes) -> bool:
    """True if ``stream`` holds a pickle. Opcodes are only decoded, never executed."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    # Protocols 0 and 1 have no magic number: a file that decodes as a complete opcode stream
    # (up to STOP) is a pickle. Text and binary formats fail on their first bytes.
    try:
        for count, (opcode, _arg, _pos) in enumerate(pickletools.genops(stream)):
            if opcode.name == "STOP":
                return count > 0
            if count >= _MAX_PICKLE_OPS:
                return True
    except Exception:  # noqa: BLE001 - any decoding failure means "not a pickle"
        return False
    return False


def _check_zip(file: Path, rel: str) -> None:
    try:
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return
    for name in names:
        member_suffix = Path(name).suffix.lower()
        if member_suffix in PICKLE_SUFFIXES or member_suffix in CODE_SUFFIXES:
            raise UnsafeModelError(f"{rel}: archive member {name} is pickle or code")


def _check_safetensors(file: Path, rel: str) -> None:
    size = file.stat().st_size
    with file.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise UnsafeModelError(f"{rel}: not a safetensors file (truncated header)")
        header_len = int.from_bytes(raw, "little")
        if header_len == 0 or header_len > min(size - 8, _MAX_SAFETENSORS_HEADER):
            kind = "a pickle" if raw[0] == 0x80 else "not a safetensors file"
            raise UnsafeModelError(f"{rel}: {kind} (bad header length)")
        try:
            header = json.loads(fh.read(header_len).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise UnsafeModelError(f"{rel}: safetensors header does not parse") from exc
    if not isinstance(header, dict):
        raise UnsafeModelError(f"{rel}: safetensors header is not an object")
    data_len = size - 8 - header_len
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise UnsafeModelError(f"{rel}: safetensors metadata must map strings to strings")
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (
            not isinstance(info, dict)
            or not isinstance(info.get("dtype"), str)
            or not isinstance(info.get("shape"), list)
            or not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_len
        ):
            raise UnsafeModelError(f"{rel}: safetensors entry {name!r} is malformed")


def _check_json(file: Path, rel: str) -> None:
    if file.name == "tokenizer.json":
        return  # read by `tokenizers`, which has no remote-code hook
    if file.stat().st_size > _MAX_JSON_BYTES:
        raise ModelError(f"{rel}: JSON file larger than {_MAX_JSON_BYTES} bytes")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        if file.name in _CONFIG_JSONS:
            raise ModelError(f"{rel}: not valid JSON") from exc
        return  # the library that reads it fails on its own; it cannot carry remote code
    if file.name == "modules.json" and isinstance(doc, list):
        for module in doc:
            kind = module.get("type", "") if isinstance(module, dict) else ""
            if not isinstance(kind, str) or not kind.startswith("sentence_transformers."):
                raise UnsafeModelError(f"{rel}: module type {kind!r} is not sentence_transformers")
    if not isinstance(doc, dict):
        return
    scopes = [doc, *(v for k, v in doc.items() if k.endswith("_config") and isinstance(v, dict))]
    for scope in scopes:
        found = REMOTE_CODE_KEYS.intersection(scope)
        if found:
            raise UnsafeModelError(f"{rel}: remote code is refused ({sorted(found)[0]})")


# --- loaders ---------------------------------------------------------------------------------


def is_adapter_dir(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a PEFT adapter directory (adapter config, no full model config)."""
    root = Path(path)
    return (root / ADAPTER_CONFIG_FILE).is_file() and not (root / CONFIG_FILE).is_file()


def _full_model_dir(path: str | os.PathLike[str]) -> Path:
    root = Path(path)
    check_model_dir(root)
    if is_adapter_dir(root):
        raise ModelError(f"{root} is a LoRA adapter: load its base model, then load_adapter()")
    return root


def load_config(path: str | os.PathLike[str]) -> PretrainedConfig:
    """Load ``config.json`` of a checked model directory."""
    from transformers import AutoConfig

    root = _full_model_dir(path)
    config: PretrainedConfig = AutoConfig.from_pretrained(
        str(root), trust_remote_code=False, local_files_only=True
    )
    return config


def load_tokenizer(path: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """Load the tokenizer of a checked model (or adapter) directory."""
    from transformers import AutoTokenizer

    root = Path(path)
    check_model_dir(root)
    tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(
        str(root), trust_remote_code=False, local_files_only=True
    )
    return tokenizer


def load_causal_lm(
    path: str | os.PathLike[str], *, dtype: torch.dtype | None = None
) -> PreTrainedModel:
    """Load a causal LM (``AutoModelForCausalLM``) in eval mode; ``dtype=None``: as stored."""
    from transformers import AutoModelForCausalLM

    return _load(AutoModelForCausalLM, _full_model_dir(path), dtype)


def load_sequence_classifier(
    path: str | os.PathLike[str],
    *,
    dtype: torch.dtype | None = None,
    labels: Sequence[str] | None = None,
    seed: int = 0,
) -> PreTrainedModel:
    """Load ``AutoModelForSequenceClassification``.

    Args:
        path: the model directory.
        dtype: compute dtype; ``None`` keeps the stored one.
        labels: if given, (re)build the classification head for these labels (index = id);
            the new head is initialised from ``seed``. Lets an encoder become a classifier.
        seed: RNG seed for a newly initialised head.
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    root = _full_model_dir(path)
    if labels is None:
        return _load(AutoModelForSequenceClassification, root, dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _load(
            AutoModelForSequenceClassification,
            root,
            dtype,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            ignore_mismatched_sizes=True,
        )


def load_encoder(
    path: str | os.PathLike[str], *, dtype: torch.dtype | None = None
) -> PreTrainedModel:
    """Load the bare encoder (``AutoModel``), e.g. for sentence embeddings."""
    from transformers import AutoModel

    return _load(AutoModel, _full_model_dir(path), dtype)


def load_adapter(
    base: PreTrainedModel, path: str | os.PathLike[str], *, trainable: bool = False
) -> PeftModel:
    """Attach a checked LoRA adapter directory (``adapter_model.safetensors``) to ``base``."""
    from peft import PeftModel

    root = Path(path)
    check_model_dir(root)
    if not (root / "adapter_model.safetensors").is_file():
        raise ModelError(f"{root} has no adapter_model.safetensors")
    return PeftModel.from_pretrained(base, str(root), is_trainable=trainable)


def _load(auto_cls: Any, root: Path, dtype: torch.dtype | None, **kwargs: Any) -> PreTrainedModel:
    if (root / INT8_WEIGHTS_FILE).is_file():
        return _load_int8(auto_cls, root, dtype, **kwargs)
    try:
        model: PreTrainedModel = auto_cls.from_pretrained(
            str(root),
            trust_remote_code=False,
            use_safetensors=True,
            local_files_only=True,
            dtype=dtype if dtype is not None else "auto",
            **kwargs,
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load model from {root}: {exc}") from exc
    model.train(False)
    return model


def _load_int8(
    auto_cls: Any, root: Path, dtype: torch.dtype | None, **kwargs: Any
) -> PreTrainedModel:
    """Build the model from its config and load dequantized int8 weights (see module doc)."""
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig
    from transformers.initialization import no_init_weights

    if (root / SAFETENSORS_FILE).exists():
        raise ModelError(f"{root} holds both {SAFETENSORS_FILE} and {INT8_WEIGHTS_FILE}")
    kwargs.pop("ignore_mismatched_sizes", None)
    config = AutoConfig.from_pretrained(
        str(root), trust_remote_code=False, local_files_only=True, **kwargs
    )
    state: dict[str, torch.Tensor] = {}
    with safe_open(str(root / INT8_WEIGHTS_FILE), framework="pt") as reader:
        meta = reader.metadata() or {}
        if meta.get("anchorml_quant") != INT8_FORMAT:
            raise ModelError(
                f"{INT8_WEIGHTS_FILE}: unknown quantization {meta.get('anchorml_quant')}"
            )
        target = getattr(torch, meta.get("dtype", "float32"), None)
        if not isinstance(target, torch.dtype):
            raise ModelError(f"{INT8_WEIGHTS_FILE}: unknown dtype {meta.get('dtype')}")
        keys = set(reader.keys())
        for key in sorted(keys):
            if key.endswith(INT8_SCALE_SUFFIX):
                continue
            tensor = reader.get_tensor(key)
            scale_key = key + INT8_SCALE_SUFFIX
            if scale_key in keys:
                tensor = (tensor.to(torch.float32) * reader.get_tensor(scale_key)).to(target)
            state[key] = tensor
    with no_init_weights():
        model: PreTrainedModel = auto_cls.from_config(
            config, trust_remote_code=False, dtype=dtype or target
        )
    tied = set(model.get_expanded_tied_weights_keys(all_submodels=True))
    result = model.load_state_dict(state, strict=False)
    untied = set(result.missing_keys) - tied
    if untied or result.unexpected_keys:
        raise ModelError(
            f"{INT8_WEIGHTS_FILE} does not match the config: missing {sorted(untied)[:3]}, "
            f"unexpected {sorted(result.unexpected_keys)[:3]}"
        )
    model.tie_weights()
    model.train(False)
    return model
