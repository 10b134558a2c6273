"""Sample grids from the fixed evaluation noise: PNG files plus every attached logger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import make_grid, save_image


def save_image_grid(images: torch.Tensor, path: Path, upscale: int = 1, per_row: int | None = None) -> Path:
    """[-1, 1] images -> one PNG grid of `per_row` columns (default: square), optionally upscaled with
    nearest neighbours for tiny images."""
    grid = make_grid(
        images.detach().cpu().float(),
        nrow=per_row or int(np.ceil(np.sqrt(len(images)))),
        normalize=True,
        value_range=(-1, 1),
        pad_value=1,
    )
    if upscale > 1:
        grid = grid.repeat_interleave(upscale, 1).repeat_interleave(upscale, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, path)
    return path


@torch.no_grad()
def save_scatter(
    samples: torch.Tensor, real: torch.Tensor, critic: torch.nn.Module | None, path: Path, title: str = ""
) -> Path:
    """2D data: generated points over real points, on the critic's contour map."""
    s, r = samples.detach().cpu().numpy(), real.detach().cpu().numpy()
    both = np.concatenate([s, r])
    both = both[np.isfinite(both).all(1)]  # a NaN point (bad data, skipped NaN steps) must not break the plot
    lo, hi = both.min(0) - 0.5, both.max(0) + 0.5
    fig, ax = plt.subplots(figsize=(5, 5))
    if critic is not None:
        xs, ys = np.meshgrid(np.linspace(lo[0], hi[0], 100), np.linspace(lo[1], hi[1], 100))
        grid = torch.tensor(np.stack([xs.ravel(), ys.ravel()], 1), dtype=torch.float32)
        device = next(critic.parameters()).device
        was_training = critic.training
        critic.eval()
        zs = critic(grid.to(device)).float().cpu().numpy().reshape(xs.shape)
        critic.train(was_training)
        ax.contourf(xs, ys, zs, levels=20, cmap="coolwarm", alpha=0.5)
    ax.scatter(r[:, 0], r[:, 1], s=2, c="k", alpha=0.3, label="real")
    ax.scatter(s[:, 0], s[:, 1], s=3, c="tab:green", alpha=0.6, label="generated")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_title(title)
    ax.legend(loc="upper right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


class ImageGrid(L.Callback):
    """Draw the fixed-noise samples at the start, every `every_n_steps` generator iterations and at
    the end; a class-conditional model's grid has one row per class.

    Files go to `<default_root_dir>/samples/step_XXXXXXX.png` and `latest.png`; W&B and
    TensorBoard loggers also receive the image, a CSV logger a copy in `<log_dir>/samples/`.
    Rank zero only.
    """

    config_key = "image_grid"  # its `gan-lab fit` key, in errors and the CLI

    def __init__(self, every_n_steps: int = 500, upscale: int = 4) -> None:
        if every_n_steps < 1:
            raise ValueError(f"{self.config_key}.every_n_steps={every_n_steps} is invalid; allowed: an integer >= 1")
        self.every_n_steps, self.upscale = every_n_steps, upscale
        self._last_step = -1
        self.last_path: Path | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0:
            self.draw(trainer, pl_module)  # the untrained generator, for reading later grids against
        else:  # a resumed run already drew the grid of the step it resumes at; do not overwrite it
            self._last_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any) -> None:
        step = trainer.global_step
        if step != self._last_step and step % self.every_n_steps == 0:
            self.draw(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step != self._last_step:
            self.draw(trainer, pl_module)

    @rank_zero_only
    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = self._last_step = trainer.global_step
        folder = Path(trainer.default_root_dir) / "samples"
        classes = getattr(pl_module, "num_classes", 0)
        per_class = len(pl_module.fixed_noise) // classes if classes else 0
        if per_class:  # one row per class: the first K x m fixed noise vectors, row k at label k
            samples = pl_module.sample(classes * per_class, labels=torch.arange(classes).repeat_interleave(per_class))
        else:
            samples = pl_module.sample()
        if samples.dim() == 2:
            real = trainer.datamodule.real_samples(2000)
            # a packed critic scores packs of points, so it has no value at a point to draw
            critic = pl_module.critic if pl_module.hparams.get("critic", {}).get("pack", 1) == 1 else None
            path = save_scatter(samples, real, critic, folder / f"step_{step:07d}.png", f"generator iteration {step}")
        else:
            path = save_image_grid(samples, folder / f"step_{step:07d}.png", self.upscale, per_class or None)
        (folder / "latest.png").write_bytes(path.read_bytes())
        self.last_path = path
        self._send_to_loggers(trainer, path, step)

    @staticmethod
    def _send_to_loggers(trainer: L.Trainer, path: Path, step: int) -> None:
        from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger

        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("samples", [str(path)], step=step)
            elif isinstance(logger, TensorBoardLogger):
                image = plt.imread(path)[..., :3]
                logger.experiment.add_image("samples", np.transpose(image, (2, 0, 1)), step)
            elif isinstance(logger, CSVLogger):  # a CSV run folder keeps its grids as PNG files beside metrics.csv
                folder = Path(logger.log_dir) / "samples"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / path.name).write_bytes(path.read_bytes())
