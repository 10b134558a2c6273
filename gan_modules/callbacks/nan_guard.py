"""Stop (or skip) a step whose gradients are NaN/Inf, before the update reaches the weights.

The check runs in `on_before_optimizer_step`, i.e. after DDP's all-reduce (and AMP unscaling):
the averaged gradients are identical on every rank, so every rank takes the same decision without
any extra communication, even when only one rank's batch produced the NaN. Checking the *loss*
instead would need a collective: a rank that skipped while another stepped would deadlock DDP.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from gan_modules.engine import NonFiniteLossError, uses_grad_scaler

Policy = Literal["stop", "skip"]


def _grads_finite(optimizer: torch.optim.Optimizer) -> bool:
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return True
    return bool(torch.stack(torch._foreach_norm(grads)).isfinite().all())


class NonFiniteGuard(L.Callback):
    """`policy="stop"` raises `NonFiniteLossError` naming the network, the generator iteration and
    its loss; nothing is applied and no checkpoint is written, so `last.ckpt` stays the last good
    state. `policy="skip"` drops that network's update instead, counts it
    (`train/skipped_steps`, checkpointed) and carries on.
    """

    config_key = "nan_guard"  # its `gan-lab fit` key, in errors and the CLI

    def __init__(self, policy: Policy = "stop") -> None:
        if policy not in ("stop", "skip"):
            raise ValueError(f"{self.config_key}.policy={policy!r} is invalid; allowed: stop, skip")
        self.policy = policy
        self.skipped = {"critic": 0, "generator": 0}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # the engine's own post-step loss check stops the run; in skip mode that is our job
        pl_module.stop_on_nonfinite = self.policy == "stop"

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        # under fp16 AMP, inf gradients are the GradScaler's normal overflow signal; it skips those steps itself
        if uses_grad_scaler(trainer) or _grads_finite(optimizer):
            return
        which = "critic" if optimizer is trainer.optimizers[0] else "generator"
        loss = pl_module.step_losses.get(which)
        value = float(loss) if loss is not None else float("nan")
        iteration = trainer.global_step
        if self.policy == "stop":
            raise NonFiniteLossError(
                f"{which} loss is {value} (non-finite gradient) at generator iteration {iteration}; "
                "stopping before the update, the last checkpoint on disk is from before it"
            )
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = None  # optimizers leave parameters without a gradient untouched
        self.skipped[which] += 1
        rank_zero_warn(f"skipped a {which} step at generator iteration {iteration}: {which} loss is {value}")
        pl_module.log_metrics({"train/skipped_steps": sum(self.skipped.values())}, prog_bar=False)

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": dict(self.skipped)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped.update(state_dict.get("skipped", {}))
