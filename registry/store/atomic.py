"""Atomic publication of downloaded files and directories.

Content is written under a unique temporary name in the target's own directory (same file
system, so the final ``rename`` is atomic) and moved into place only when the ``with`` block
succeeds. On any exception, including ``KeyboardInterrupt``, the temporary file or directory is
removed and the target is left exactly as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from registry.errors import StoreError


@contextmanager
def atomic_file(target: Path) -> Iterator[BinaryIO]:
    """Write ``target`` atomically; an existing file is replaced only on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Build a directory tree and rename it to ``target``, which must not exist.

    Raises:
        StoreError: ``target`` already exists (checked before and at the rename).
    """
    if target.exists():
        raise StoreError(f"{target} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, target)
        except OSError as exc:
            raise StoreError(f"cannot move download into {target}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
