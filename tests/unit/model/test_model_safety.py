"""A2: malicious model directories are refused with a typed error; payloads never run.

Payload pickles are crafted with ``pickle.dumps`` (which only records ``__reduce__``'s answer)
and are never loaded by the tests: if any code under test unpickled one, ``Path.touch`` would
create the marker file, which every test asserts is absent.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANCHORML_TORCH_THREADS", "1")  # 2 shared cores: avoid oversubscription

from registry.dev import demo  # noqa: E402
from registry.errors import ModelError, UnsafeModelError  # noqa: E402
from registry.model import safety  # noqa: E402


class Payload:
    """Unpickling this calls ``Path.touch(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


@pytest.fixture()
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a pickle payload was executed"


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    """A minimal, valid model directory (config + a real safetensors file)."""
    import torch
    from safetensors.torch import save_file

    root = tmp_path / "model"
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    save_file({"w": torch.zeros(2, 2)}, str(root / "model.safetensors"))
    return root


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.export_minilm(tmp_path_factory.mktemp("safety") / "minilm")


def test_valid_dir_passes(model_dir: Path) -> None:
    safety.check_model_dir(model_dir)


def test_real_export_passes(minilm: Path) -> None:
    safety.check_model_dir(minilm)  # vocab.txt, tokenizer.json, README, sentence-transformers files


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.ckpt", "x.pkl"])
def test_pickle_weights_refused_by_name(
    model_dir: Path, marker: Path, name: str, protocol: int
) -> None:
    (model_dir / name).write_bytes(pickle.dumps(Payload(marker), protocol=protocol))
    with pytest.raises(UnsafeModelError, match=name.replace(".", r"\.")):
        safety.check_model_dir(model_dir)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("name", ["notes.txt", "generation_config.json", "weights.data"])
def test_pickle_content_refused_whatever_the_name(
    model_dir: Path, marker: Path, name: str, protocol: int
) -> None:
    (model_dir / name).write_bytes(pickle.dumps(Payload(marker), protocol=protocol))
    with pytest.raises(UnsafeModelError, match=rf"{name}: file content is a pickle"):
        safety.check_model_dir(model_dir)


@pytest.mark.parametrize("protocol", [2, 4])
def test_pickle_disguised_as_safetensors_refused(
    model_dir: Path, marker: Path, protocol: int
) -> None:
    (model_dir / "model.safetensors").write_bytes(pickle.dumps(Payload(marker), protocol=protocol))
    with pytest.raises(UnsafeModelError, match=r"model\.safetensors: a pickle"):
        safety.check_model_dir(model_dir)


def test_torch_zip_archive_with_pickle_refused(model_dir: Path, marker: Path) -> None:
    with zipfile.ZipFile(model_dir / "weights.safetensors.zip", "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(Payload(marker), protocol=2))
        archive.writestr("archive/version", "3\n")
    with pytest.raises(UnsafeModelError, match=r"archive member archive/data\.pkl"):
        safety.check_model_dir(model_dir)


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b"\x01\x02", "truncated header"),
        (struct.pack("<Q", 10**9) + b"{}", "bad header length"),
        (struct.pack("<Q", 5) + b"nope!", "header does not parse"),
        (struct.pack("<Q", 2) + b"[]", "not an object"),
    ],
)
def test_malformed_safetensors_refused(model_dir: Path, blob: bytes, reason: str) -> None:
    (model_dir / "model.safetensors").write_bytes(blob)
    with pytest.raises(UnsafeModelError, match=reason):
        safety.check_model_dir(model_dir)


def test_safetensors_offsets_past_end_refused(model_dir: Path) -> None:
    header = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'
    (model_dir / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0")
    with pytest.raises(UnsafeModelError, match="entry 'w' is malformed"):
        safety.check_model_dir(model_dir)


@pytest.mark.parametrize("name", ["modeling_evil.py", "sub/tokenization_x.py", "native.so"])
def test_code_files_refused(model_dir: Path, name: str) -> None:
    (model_dir / name).parent.mkdir(exist_ok=True)
    (model_dir / name).write_text("import os\n")
    with pytest.raises(UnsafeModelError, match=f"{name}: code files are refused"):
        safety.check_model_dir(model_dir)


@pytest.mark.parametrize("file", ["config.json", "tokenizer_config.json", "processor_config.json"])
def test_auto_map_refused(model_dir: Path, file: str) -> None:
    doc = {"model_type": "gpt2", "auto_map": {"AutoModel": "modeling_evil.EvilModel"}}
    (model_dir / file).write_text(json.dumps(doc))
    with pytest.raises(UnsafeModelError, match=rf"{file}: remote code is refused \(auto_map\)"):
        safety.check_model_dir(model_dir)


def test_auto_map_in_sub_config_refused(model_dir: Path) -> None:
    doc = {"model_type": "llava", "text_config": {"auto_map": {"AutoModel": "x.Y"}}}
    (model_dir / "config.json").write_text(json.dumps(doc))
    with pytest.raises(UnsafeModelError, match="remote code is refused"):
        safety.check_model_dir(model_dir)


def test_sentence_transformers_foreign_module_refused(model_dir: Path) -> None:
    modules = [{"idx": 0, "name": "0", "path": "", "type": "evil_pkg.Module"}]
    (model_dir / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(UnsafeModelError, match="'evil_pkg.Module' is not sentence_transformers"):
        safety.check_model_dir(model_dir)


def test_symlink_leaving_dir_refused(model_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (model_dir / "vocab.txt").symlink_to(outside)
    with pytest.raises(UnsafeModelError, match="vocab.txt is a symlink leaving"):
        safety.check_model_dir(model_dir)


def test_missing_config_is_model_error_not_unsafe(model_dir: Path) -> None:
    (model_dir / "config.json").unlink()
    with pytest.raises(ModelError, match="has no config.json") as info:
        safety.check_model_dir(model_dir)
    assert type(info.value) is ModelError


def test_invalid_config_json_is_model_error(model_dir: Path) -> None:
    (model_dir / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="config.json: not valid JSON"):
        safety.check_model_dir(model_dir)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        safety.check_model_dir(tmp_path / "absent")


def test_loaders_refuse_before_deserializing(minilm: Path, tmp_path: Path, marker: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(minilm, bad)
    (bad / "model.safetensors").unlink()
    (bad / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(marker), protocol=2))
    for loader in (
        safety.load_encoder,
        safety.load_causal_lm,
        safety.load_sequence_classifier,
        safety.load_tokenizer,
        safety.load_config,
    ):
        with pytest.raises(UnsafeModelError, match="pytorch_model.bin"):
            loader(bad)


def test_loader_refuses_remote_code_config(minilm: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(minilm, bad)
    config = json.loads((bad / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsafeModelError, match=r"config\.json: remote code"):
        safety.load_encoder(bad)


def test_adapter_dir_needs_its_base(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    safety.check_model_dir(tmp_path)
    assert safety.is_adapter_dir(tmp_path)
    with pytest.raises(ModelError, match="is a LoRA adapter"):
        safety.load_causal_lm(tmp_path)


def test_encoder_loads_in_eval_mode(minilm: Path) -> None:
    model = safety.load_encoder(minilm)
    assert not model.training
    assert type(model).__name__ == "BertModel"
