"""Checkpoints in a stable place, so the same command finds and resumes its own run."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` writing `last.ckpt` (and step-named ones) to `<default_root_dir>/checkpoints`.

    Lightning would put them under a new `version_N` logger folder on every start, where a
    restarted run could not find them. `every_n_train_steps` counts generator iterations.
    """

    config_key = "checkpoint"  # its `gan-lab fit` key, in errors and the CLI

    def __init__(
        self,
        every_n_train_steps: int = 500,
        save_top_k: int = -1,
        save_last: bool = True,
        filename: str = "step{step:07d}",
        auto_insert_metric_name: bool = False,
        **kwargs: Any,
    ) -> None:
        if every_n_train_steps < 1:
            raise ValueError(
                f"{self.config_key}.every_n_train_steps={every_n_train_steps} is invalid; allowed: an integer >= 1"
            )
        super().__init__(
            every_n_train_steps=every_n_train_steps,
            save_top_k=save_top_k,
            save_last=save_last,
            filename=filename,
            auto_insert_metric_name=auto_insert_metric_name,
            **kwargs,
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
        """Lightning 2.6 warns (15 lines) that under manual optimisation the checkpoint holds the weights
        after the optimiser step. That is the point here: step N's checkpoint is the state after N
        generator iterations, the state a resumed run continues from."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
            super().on_train_batch_end(trainer, pl_module, *args, **kwargs)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        # A resumed run starts at a step whose checkpoint exists; its first (critic-only) batches do not
        # advance global_step, and must not overwrite that checkpoint with a mid-iteration state.
        self._last_global_step_saved = trainer.global_step

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = str(Path(trainer.default_root_dir) / "checkpoints")
        super().setup(trainer, pl_module, stage)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Save the final generator iteration as well: with `max_steps` not a multiple of
        `every_n_train_steps`, `last.ckpt` would otherwise miss the run's last iterations."""
        super().on_train_end(trainer, pl_module)
        if trainer.fast_dev_run or self._last_global_step_saved >= trainer.global_step:
            return
        candidates = self._monitor_candidates(trainer)
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)

    def save_last_now(self, trainer: L.Trainer) -> Path | None:
        """Write `last.ckpt` for the current generator iteration unless it already holds it (an
        interrupt at a step boundary, `StepBoundarySignals`); its path, or None with `save_last` off."""
        if self._last_global_step_saved < trainer.global_step or not self.last_model_path:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        return Path(self.last_model_path) if self.save_last and self.last_model_path else None
