"""Text corpora and their preparation: where text comes from, how it is cleaned and split.

Three sources of real text, in order of preference (the synthetic one is ``MarkovChain``):

- ``pydoc_text()``: Python's own documentation (``pydoc_data.topics``), real English, always offline;
- ``read_text(path)``: any UTF-8 text file you bring;
- ``tiny_shakespeare()``: a public-domain download through the registry (needs a network once).
"""

from __future__ import annotations

import random
import re
import unicodedata
from pathlib import Path

from fmcourse.data.registry import fetch


def pydoc_text() -> str:
    """Python's built-in help topics (about 460 000 characters of English), joined in name order."""
    try:
        from pydoc_data.topics import topics
    except ImportError as error:  # some trimmed-down Python builds leave pydoc_data out
        raise RuntimeError(
            "this Python has no pydoc_data module (Python's documentation text); use a text file "
            "of your own with read_text(path), or the synthetic MarkovChain"
        ) from error
    return "\n\n".join(topics[name] for name in sorted(topics))


def read_text(path: str | Path) -> str:
    """The text of a UTF-8 file (a byte-order mark is dropped), with a clear error for anything else.

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` for a folder, an empty file
    (or one of whitespace only), a binary file (one with NUL bytes) or bytes that are not UTF-8.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no text file at {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file: give the path of a UTF-8 text file")
    data = path.read_bytes()
    if (nul := data.find(b"\x00")) >= 0:
        raise ValueError(
            f"{path} looks binary (a NUL byte at offset {nul}), not UTF-8 text; if it is UTF-16 text, "
            f"save it as UTF-8 first"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        bad = data[error.start:error.start + 1].hex()
        raise ValueError(
            f"{path} is not UTF-8: byte 0x{bad} at offset {error.start} cannot be decoded; convert it "
            f"first, e.g. `iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8.txt`"
        ) from None
    if not text.strip():
        raise ValueError(f"{path} is empty ({len(data)} bytes, no visible text): a corpus needs some text")
    return text


def tiny_shakespeare(**fetch_options) -> str:
    """Tiny Shakespeare (1.1 MB), downloaded and checked once, then read from the cache.

    ``fetch_options`` go to ``fetch`` (``cache``, ``retries``, ``timeout``). Offline, the error
    names the corpora that need no network.
    """
    return read_text(fetch("tiny_shakespeare", **fetch_options))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufeff]")  # control characters but \t and \n, and BOMs
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """Text in one canonical form, so the same words always become the same tokens.

    Unicode NFC (``"e\\u0301"`` and ``"é"`` become one character), line endings ``\\n``, control
    characters other than tab and newline removed, no spaces at the end of a line, at most one blank
    line in a row, no blank lines at the start or end.
    """
    if not isinstance(text, str):
        raise TypeError(f"clean_text expects a str, got {type(text).__name__}")
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _TRAILING_SPACE.sub("\n", text + "\n")
    return _BLANK_LINES.sub("\n\n", text).strip("\n").rstrip()


def train_val_split(text: str, val_fraction: float = 0.1, seed: int = 0) -> tuple[str, str]:
    """Split ``text`` into training and validation text by whole paragraphs, without leakage.

    The units are paragraphs (separated by a blank line), or lines when the text has fewer than 20
    paragraphs. Repeated units (a licence header, a refrain) are kept once, so no unit is in both
    parts; a seeded shuffle picks validation units until they hold ``val_fraction`` of the
    characters. Each part keeps the original order of its units. Returns ``(train, validation)``.
    """
    if not isinstance(text, str):
        raise TypeError(f"train_val_split expects a str, got {type(text).__name__}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    paragraphs = [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
    separator = "\n\n"
    if len(paragraphs) < 20:
        paragraphs, separator = [line for line in text.split("\n") if line.strip()], "\n"
    units = list(dict.fromkeys(paragraphs))  # first occurrences, in order
    if len(units) < 2:
        raise ValueError(f"cannot split text with {len(units)} distinct paragraph(s) or line(s); give more text")
    order = list(range(len(units)))
    random.Random(seed).shuffle(order)
    wanted, chosen, size = val_fraction * sum(map(len, units)), set(), 0
    for index in order[:-1]:  # at least one unit stays for training
        if size >= wanted:
            break
        chosen.add(index)
        size += len(units[index])
    train = separator.join(u for i, u in enumerate(units) if i not in chosen)
    validation = separator.join(u for i, u in enumerate(units) if i in chosen)
    return train, validation
