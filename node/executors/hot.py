"""Models kept loaded between INFER jobs.

Loading even a tiny model costs far more than running it on one short input (transformers builds
the module tree, reads the safetensors, ties the weights), so a worker that runs many INFER jobs
on one version reuses what it loaded for the previous job. The directories a worker runs from
are verified model-cache entries named by their CID, whose files never change; the key also
carries every top-level file's size and mtime, so a directory rewritten in place is loaded
afresh.

Objects are checked out for one job (:func:`session`) and put back when it succeeds: two jobs
running at once on one model never share a tokenizer or model (fast tokenizers must not be used
from two threads); the second simply loads its own copy. Outside a session :func:`load` just
loads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
#: Loaded objects kept between jobs (a text generator, an encoder or a classifier: one each).
MAX_ENTRIES = 4

_pool: OrderedDict[tuple[Hashable, ...], Any] = OrderedDict()
_pool_lock = threading.Lock()
_taken: ContextVar[list[tuple[tuple[Hashable, ...], Any]] | None] = ContextVar(
    "hot_taken", default=None
)


def _stamp(model_dir: Path) -> tuple[Hashable, ...]:
    files = []
    for path in model_dir.iterdir():
        if path.is_file():
            st = path.stat()
            files.append((path.name, st.st_size, st.st_mtime_ns))
    return (str(model_dir.resolve()), tuple(sorted(files)))


def load(model_dir: Path, what: Hashable, loader: Callable[[], T]) -> T:
    """``loader()``'s result for ``model_dir`` — reused from an earlier job when one is kept.

    Args:
        model_dir: the model directory ``loader`` reads.
        what: which object of it, with every argument that shapes it (e.g. ``"tokenizer"``).
        loader: loads the object.
    """
    taken = _taken.get()
    if taken is None:
        return loader()
    key = (what, _stamp(Path(model_dir)))
    with _pool_lock:
        value = _pool.pop(key, None)
    if value is None:
        value = loader()
    taken.append((key, value))
    return value  # type: ignore[no-any-return]


@contextmanager
def session() -> Iterator[None]:
    """One job: what :func:`load` hands out inside is kept for later jobs if the job succeeds."""
    taken: list[tuple[tuple[Hashable, ...], Any]] = []
    token = _taken.set(taken)
    try:
        yield
    finally:
        _taken.reset(token)
    with _pool_lock:
        for key, value in taken:
            _pool[key] = value
            _pool.move_to_end(key)
        while len(_pool) > MAX_ENTRIES:
            _pool.popitem(last=False)


def clear() -> None:
    """Drop every kept object."""
    with _pool_lock:
        _pool.clear()
