"""A bare Lightning Trainer for programmatic fits (lecture experiments, `gan-lab speed`, tests).

These fits want a real Trainer (the engine's manual optimisation, callbacks, strategies) but none of
a user run's bookkeeping: no logger, checkpoints, progress bar, model summary or validation. One
definition keeps them identical; any keyword overrides a default (e.g. `logger=`, `strategy=`).
"""

from __future__ import annotations

from typing import Any

import lightning as L

BARE_DEFAULTS: dict[str, Any] = {
    "accelerator": "cpu",
    "devices": 1,
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
    "limit_val_batches": 0,
}


def bare_trainer(max_steps: int = -1, callbacks: list[L.Callback] | tuple = (), **overrides: Any) -> L.Trainer:
    """`L.Trainer` with `BARE_DEFAULTS`, `max_steps` generator iterations and `callbacks`."""
    return L.Trainer(max_steps=max_steps, callbacks=list(callbacks), **{**BARE_DEFAULTS, **overrides})
