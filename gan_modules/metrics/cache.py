"""On-disk cache of real-data features, verified against a full key before every reuse.

The file name says what it holds (dataset, split, size, shape, extractor, sample count); the file
also stores the full key, including a hash of the exact real images used and of the extractor's
weights. A file whose stored key differs from the one requested (data changed on disk, other
weights, other subset seed, an older format) is reported and recomputed, never reused.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from gan_modules.metrics.paths import cache_root
from gan_modules.paths import replaced_whole

FORMAT = 1


def default_stats_dir() -> Path:
    return cache_root() / "stats"


def cache_file_name(key: dict[str, Any]) -> str:
    shape = "x".join(str(d) for d in key["data"].get("shape", []))
    parts = [key["data"]["dataset"], key["data"]["split"], str(key["data"]["size"]), shape, key["extractor"]]
    name = "-".join([*parts, f"n{key['num_real']}"])
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".pt"


def _differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    keys = sorted(set(stored) | set(wanted))
    return [
        f"{k}: cached {stored.get(k)!r} != wanted {wanted.get(k)!r}" for k in keys if stored.get(k) != wanted.get(k)
    ]


class FeatureCache:
    """Real features keyed by protocol; `load` returns (features or None, what happened)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else default_stats_dir()

    def path(self, key: dict[str, Any]) -> Path:
        return self.directory / cache_file_name(key)

    def load(self, key: dict[str, Any]) -> tuple[dict[str, torch.Tensor] | None, str]:
        key = {"format": FORMAT, **key}
        path = self.path(key)
        if not path.is_file():
            return None, f"no cached real features at {path}"
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            stored, features = payload["key"], payload["features"]
        except Exception as err:  # a truncated or foreign file is a miss, said out loud
            return None, f"cached real features at {path} are unreadable ({type(err).__name__}); recomputing"
        diff = _differences(stored, key)
        if diff:
            return None, f"cached real features at {path} do not match ({'; '.join(diff)}); recomputing"
        return features, f"using cached real features {path}"

    def save(self, key: dict[str, Any], features: dict[str, torch.Tensor]) -> Path:
        """Atomic write (temp file + rename), safe when several nodes share the cache folder."""
        key = {"format": FORMAT, **key}
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"key": key, "features": {k: v.detach().float().cpu().contiguous() for k, v in features.items()}}
        with replaced_whole(path, "wb") as handle:
            torch.save(payload, handle)
        return path
