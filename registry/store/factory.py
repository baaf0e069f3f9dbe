"""Choosing a content store from a one-string spec (``ANCHORML_STORE`` or ``--store``)."""

from __future__ import annotations

import os
from pathlib import Path

from registry.errors import ConfigError
from registry.store.base import ContentStore

STORE_ENV = "ANCHORML_STORE"
DATA_DIR_ENV = "ANCHORML_DATA_DIR"


def default_store_spec() -> str:
    """``$ANCHORML_STORE``, else ``$ANCHORML_DATA_DIR/store`` (data dir ``~/.anchorml``)."""
    spec = os.environ.get(STORE_ENV, "").strip()
    if spec:
        return spec
    data_dir = os.environ.get(DATA_DIR_ENV, "").strip() or "~/.anchorml"
    return str(Path(data_dir).expanduser() / "store")


def open_store(spec: str | os.PathLike[str] | None = None) -> ContentStore:
    """Open the content store a spec names.

    Args:
        spec: an ``http(s)://`` URL of an IPFS RPC API → :class:`KuboStore`; a filesystem path
            (or ``file://`` URL) → :class:`EmbeddedStore`. ``None`` → :func:`default_store_spec`.

    Raises:
        ConfigError: an empty spec or an unsupported URL scheme.
        StoreUnavailableError: the store directory cannot be created.
    """
    text = os.fspath(spec) if spec is not None else default_store_spec()
    text = text.strip()
    if not text:
        raise ConfigError(f"empty content store spec (set {STORE_ENV} to a path or an API URL)")
    lowered = text.lower()
    if lowered.startswith(("http://", "https://")):
        from registry.store.kubo import KuboStore

        return KuboStore(text)
    if lowered.startswith("file://"):
        text = text[len("file://") :]
    elif "://" in text:
        raise ConfigError(
            f"unsupported content store {text!r}: use a directory or an http(s) IPFS API URL"
        )
    from registry.store.embedded import EmbeddedStore

    return EmbeddedStore(text)
