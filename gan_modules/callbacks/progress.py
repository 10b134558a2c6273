"""A progress bar that counts generator iterations, the unit of `trainer.max_steps`."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class GeneratorProgressBar(TQDMProgressBar):
    """Lightning's bar counts batches, which are not generator iterations during WGAN's warm-up
    (`model.wgan_warmup`: 100 critic steps each) or the critic's pretraining
    (`model.critic_pretrain_steps`); this one shows global_step / max_steps."""

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        super().on_train_epoch_start(trainer)
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        self.train_progress_bar.reset(total=total)
        self.train_progress_bar.n = trainer.global_step
        self.train_progress_bar.set_description("generator iterations")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any) -> None:
        bar = self.train_progress_bar
        if trainer.global_step != bar.n and (
            trainer.global_step % self.refresh_rate == 0 or trainer.global_step == bar.total
        ):
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            bar.refresh()
