"""A callback for the DDP tests: each rank dumps what it holds, so the test can compare ranks and runs.

Used as `--trainer.callbacks+=ddp_probe.RankDump` with `tests/scripts` on PYTHONPATH; writes
`<default_root_dir>/rank_dump/rank<r>.pt` with the weights and buffers at the start and the end,
and the (all-reduced) critic gradients of the first three critic optimiser steps (with a lazy
regulariser every 2 critic steps the third is the first Dreg phase).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().cpu() for k, v in module.state_dict().items()}


class RankDump(L.Callback):
    def __init__(self) -> None:
        self.dump: dict[str, Any] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.dump = {"start": _snapshot(pl_module), "world_size": trainer.world_size, "rank": trainer.global_rank}

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        grads = self.dump.setdefault("critic_grads", [])
        if len(grads) < 3 and optimizer is trainer.optimizers[0]:
            # a parameter R1 does not reach (the head's bias: the input gradient ignores it) has no gradient
            grads.append({
                name: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone().cpu()
                for name, p in pl_module.critic.named_parameters()
            })  # fmt: skip

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.dump["end"] = _snapshot(pl_module)
        folder = Path(trainer.default_root_dir) / "rank_dump"
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.dump, folder / f"rank{trainer.global_rank}.pt")
