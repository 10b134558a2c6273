"""Where gan-lab keeps files it computes once and reuses: real-data features and trained evaluators."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CACHE_ENV = "GAN_LAB_CACHE"


def cache_root() -> Path:
    """`$GAN_LAB_CACHE`, else `~/.cache/gan-lab` (read at call time so tests and jobs can redirect it)."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/gan-lab").expanduser()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
