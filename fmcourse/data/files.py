"""Files on disk: atomic writes and checksums, shared by downloads, tokenizers and checkpoints."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target`` in one step.

    A reader never sees a half-written file: the content is written under a temporary name in the
    same folder and renamed with ``os.replace`` (atomic on POSIX and Windows). If the block raises,
    the temporary file is removed and ``target`` is left as it was.

        with atomic_path("model.safetensors") as tmp:
            save_file(tensors, tmp)
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name, not a file made by mkstemp: the writer creates it, so it gets the usual
    # permissions (mkstemp's are owner-only, and os.replace would keep them).
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """The SHA-256 digest of a file's bytes, as 64 lowercase hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
