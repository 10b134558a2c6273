"""A reader of W&B's offline run log (`run-<id>.wandb`), for the tests that read runs back.

wandb (0.31) ships no public reader of the offline log (its `wandb sync --view` prints records), so
this parses the LevelDB-style log and wandb's own protobuf records (`wandb.proto`).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _records(path: Path) -> Iterator[bytes]:
    """Payloads of a W&B transaction log: a 7-byte header (":W&B", magic, version), then LevelDB's
    log format: 32 KiB blocks of chunks (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last)."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run log")
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # block trailer padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zero padding: the rest of this block is empty
            pos += left
            continue
        payload, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):
            yield pending


_BLOCK = 32 * 1024


@dataclass
class OfflineRun:
    """What an offline W&B run folder recorded, read back without network or W&B account."""

    run_id: str
    group: str
    tags: list[str]
    config: dict[str, Any]
    history: list[dict[str, Any]]  # one dict per logged row, keys as logged ("train/critic_loss", ...)
    files: list[Path]  # media and other files saved with the run
    artifacts: list[str]  # "name:type" of each logged artifact (e.g. the best checkpoint, type "model")


def read_offline_run(run_dir: str | Path) -> OfflineRun:
    """Parse `<run_dir>/run-<id>.wandb` (the file `wandb sync` uploads) into config, history and files."""
    from wandb.proto import wandb_internal_pb2

    run_dir = Path(run_dir)
    (log_file,) = run_dir.glob("run-*.wandb")
    run = OfflineRun(run_id="", group="", tags=[], config={}, history=[], files=[], artifacts=[])
    for payload in _records(log_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.group, run.tags = record.run.run_id, record.run.run_group, list(record.run.tags)
            items = record.run.config.update
        elif kind == "config":
            items = record.config.update
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                keys = list(item.nested_key) or [item.key]
                target = row
                for key in keys[:-1]:
                    target = target.setdefault(key, {})
                target[keys[-1]] = json.loads(item.value_json)
            run.history.append(row)
            continue
        elif kind == "files":
            run.files += [run_dir / "files" / f.path for f in record.files.files]
            continue
        elif kind == "artifact":
            run.artifacts.append(f"{record.artifact.name}:{record.artifact.type}")
            continue
        else:
            continue
        for item in items:
            if not item.key.startswith("_"):
                run.config[item.key] = json.loads(item.value_json)
    return run
