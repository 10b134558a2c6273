"""The metric curve of one run, on disk next to its checkpoints, whatever loggers the run uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L

from gan_modules.callbacks.metrics import GenerativeMetrics
from gan_modules.paths import replaced_whole

HISTORY_FILE = "metrics_history.jsonl"


class MetricsHistory(GenerativeMetrics):
    """`GenerativeMetrics` that also appends each evaluation to `<root>/metrics_history.jsonl`.

    The bench draws metric-vs-generator-iteration curves from this file, so they exist with any
    logger (W&B offline, CSV, none). A resumed run appends; `read_history` keeps the last entry of
    each step.
    """

    config_key = "curves"  # a bench grid's `curves:` block sets its options

    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        results = super().run(trainer, pl_module)
        if trainer.is_global_zero:
            path = Path(trainer.default_root_dir) / HISTORY_FILE
            former = path.read_text() if path.is_file() else ""
            with replaced_whole(path) as f:  # appended by a whole rewrite: a kill never leaves half a line
                f.write(former + json.dumps({"step": trainer.global_step, **results}) + "\n")
        return results


def read_history(root: str | Path) -> list[dict[str, Any]]:
    """The evaluations of a run folder, one per generator iteration, in step order."""
    path = Path(root) / HISTORY_FILE
    if not path.is_file():
        return []
    by_step: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            by_step[int(entry["step"])] = entry
    return [by_step[s] for s in sorted(by_step)]
