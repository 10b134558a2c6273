"""Output paths checked before a command does any work, so a bad one fails in one line."""

from __future__ import annotations

from pathlib import Path


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
