"""Atomic file writes: a reader never sees a half-written output."""

from __future__ import annotations

import fnmatch
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

TEMP_SUFFIX = ".tmp"
TEMP_PATTERN = f".*{TEMP_SUFFIX}"
"""The names of :func:`atomic_write`'s temp files (``.<name>.<random>.tmp``, beside the target)."""


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return Path(path)


def is_temp(path: Path) -> bool:
    """Whether ``path`` is named like :func:`atomic_write`'s temp files."""
    return fnmatch.fnmatchcase(path.name, TEMP_PATTERN)


def remove_stale_temps(folder: Path, recursive: bool = False) -> list[Path]:
    """Delete the temp files that writes cut short by a kill left in ``folder`` (and its subfolders when
    ``recursive``); other files stay. Returns the removed paths. Call it only when no write there is under way."""
    stale = [p for p in (folder.rglob if recursive else folder.glob)(TEMP_PATTERN) if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
