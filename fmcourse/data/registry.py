"""Downloads the course may use, pinned by SHA-256, cached, retried, and never needed to run.

    path = fetch("tiny_shakespeare")      # ~/.cache/fmcourse/tiny_shakespeare.txt, checked

The hash is checked after every download and on every cache hit: a file that does not match is
rejected and removed, never used. Without a network the error names the offline corpora.
"""

from __future__ import annotations

import shutil
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fmcourse import env
from fmcourse.data.files import atomic_path, sha256_file

OFFLINE_ALTERNATIVES = (
    "offline, use fmcourse.data.pydoc_text() (real English: Python's own documentation), "
    "fmcourse.data.MarkovChain (synthetic text whose entropy rate is known), "
    "or a UTF-8 text file of your own with fmcourse.data.read_text(path)"
)


@dataclass(frozen=True)
class Download:
    """A file on the web, pinned by the SHA-256 and size of its bytes."""

    name: str
    url: str
    sha256: str
    size: int  # bytes
    filename: str  # its name in the cache folder
    description: str  # what it is, where it comes from, its licence


REGISTRY: dict[str, Download] = {
    entry.name: entry
    for entry in [
        Download(
            name="tiny_shakespeare",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            size=1_115_394,
            filename="tiny_shakespeare.txt",
            description="About 40,000 lines from Shakespeare's plays (public domain), "
            "as collected for char-rnn by Andrej Karpathy.",
        ),
    ]
}


class ChecksumError(ValueError):
    """A downloaded or cached file whose bytes are not the ones the registry pins."""


def _entry(entry: str | Download) -> Download:
    if isinstance(entry, Download):
        return entry
    if entry not in REGISTRY:
        raise ValueError(f"no download named {entry!r}; the registry has: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[entry]


def _download(entry: Download, target: Path, timeout: float) -> None:
    """Stream ``entry.url`` into ``target`` atomically; raise ChecksumError, keeping nothing, on a bad hash."""
    with atomic_path(target) as tmp:
        with urllib.request.urlopen(entry.url, timeout=timeout) as response, open(tmp, "wb") as file:
            shutil.copyfileobj(response, file)
        found = sha256_file(tmp)
        if found != entry.sha256:
            raise ChecksumError(
                f"{entry.url} gave {tmp.stat().st_size} bytes with sha256 {found}, but the registry pins "
                f"{entry.size} bytes with sha256 {entry.sha256}: the file was changed or corrupted, "
                f"so it was rejected and not kept"
            )


def fetch(entry: str | Download, *, cache: str | Path | None = None, retries: int = 3,
          timeout: float = 30.0, backoff: float = 1.0) -> Path:
    """The path of a verified local copy of a registry file, downloading it when needed.

    ``entry`` is a name in ``REGISTRY`` or a ``Download``. The copy lives in ``cache`` (default
    ``env.cache_dir()``, i.e. ``$FMCOURSE_CACHE``). A cached copy whose SHA-256 differs is deleted
    and downloaded again. Downloads are tried ``retries`` times, waiting ``backoff * 2**k`` seconds
    between tries. Raises ``ChecksumError`` (a ValueError) when the bytes never match the pinned
    hash, ``ConnectionError`` (naming the offline corpora) when the file cannot be fetched.
    """
    entry = _entry(entry)
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    target = Path(cache if cache is not None else env.cache_dir()) / entry.filename
    if target.exists():
        if sha256_file(target) == entry.sha256:
            return target
        target.unlink()  # tampered with or truncated: never use it
    failure: Exception | None = None
    for attempt in range(retries):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _download(entry, target, timeout)
            return target
        except (ChecksumError, OSError) as error:  # OSError covers URLError, timeouts, refused connections
            failure = error
    if isinstance(failure, ChecksumError):
        raise failure
    raise ConnectionError(
        f"could not download {entry.name!r} from {entry.url} ({retries} tries; last error: {failure}); "
        f"{OFFLINE_ALTERNATIVES}"
    ) from failure
