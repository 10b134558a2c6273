"""Output paths checked before a command does any work, so a bad one fails in one line, and
records written so that a reader never sees half of one."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def check_output_file(flag: str, value: str, suffix: str | None = None) -> Path:
    """`value` as a file path that can be written: with `suffix` (the exact name printed afterwards
    is the one written), not a folder, and no existing file where a parent folder must be."""
    path = Path(value)
    if suffix is not None and path.suffix != suffix:
        raise ValueError(f"{flag}={value!r} is invalid; allowed: a file name ending in {suffix}")
    if path.is_dir():
        raise ValueError(f"{flag}={value!r} is a folder; allowed: a file path")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ValueError(f"{flag}={value!r} is invalid: {str(blocking)!r} is a file, not a folder")
    return path


@contextlib.contextmanager
def replaced_whole(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A handle on a file beside `path` that replaces `path` only once written and closed: a run
    killed mid-write, or a reader on another node, finds the former file or the new one, never a
    truncated one (which the next run could not parse)."""
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode) as handle:
            yield handle
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, payload: Any) -> None:
    """`payload` as indented JSON at `path`, replaced whole (`replaced_whole`)."""
    with replaced_whole(path) as handle:
        json.dump(payload, handle, indent=2)
