"""Shared plumbing of the lecture experiments: sizes, critic training loops, grids and figures.

The experiments train critics against *fixed* real and fake point clouds, so each claim is seen
in isolation from generator dynamics. The loops only schedule steps: every objective comes from
`gan_modules.losses` / `gan_modules.penalties`, every constraint from `gan_modules.constraints`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor, nn

from gan_modules import penalties
from gan_modules.trainers import bare_trainer

SIZES = ("small", "full")
DEFAULT_OUT = "runs/lecture"

CriticObjective = Callable[[nn.Module, Tensor, Tensor], Tensor]


@contextmanager
def one_thread() -> Iterator[None]:
    """Run tiny nets on one intra-op thread: for 2D MLPs thread hand-offs cost more than the maths
    (about 10x slower with 2 threads on a loaded 2-core machine); the caller's setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit(module: L.LightningModule, datamodule: L.LightningDataModule, **trainer_kwargs: Any) -> L.Trainer:
    """A real Lightning fit on CPU without the run bookkeeping the experiments do not use (logger,
    checkpoints, progress bar, validation) and without Lightning's start-up chatter."""
    log = logging.getLogger("lightning.pytorch")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        trainer = bare_trainer(**trainer_kwargs)
        trainer.fit(module, datamodule=datamodule)
    finally:
        log.setLevel(level)
    return trainer


def check_size(size: str) -> None:
    if size not in SIZES:
        raise ValueError(f"size={size!r} is invalid; allowed: {', '.join(SIZES)}")


def pick(sizes: dict[str, dict[str, Any]], size: str) -> dict[str, Any]:
    """The parameter set of one size, after validating the size name."""
    check_size(size)
    return sizes[size]


def batches(pool: Tensor, batch_size: int, gen: torch.Generator) -> Tensor:
    """One minibatch drawn with replacement from a fixed point cloud."""
    return pool[torch.randint(len(pool), (batch_size,), generator=gen)]


def train_critic(
    critic: nn.Module,
    objective: CriticObjective,
    real: Tensor,
    fake: Tensor,
    steps: int,
    batch_size: int,
    seed: int,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.5, 0.9),
    after_step: Callable[[], None] | None = None,
    every: int = 0,
    probe: Callable[[int], None] | None = None,
) -> nn.Module:
    """Minimise `objective(critic, real_batch, fake_batch)` with Adam on minibatches of fixed pools.

    `after_step` runs after every update (weight clipping); `probe(step)` every `every` steps and
    once before training (measurements during training, e.g. gradient norms at the fakes).
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(critic.parameters(), lr=lr, betas=betas)
    critic.train()
    for step in range(steps):
        if probe is not None and every and step % every == 0:
            probe(step)
        loss = objective(critic, batches(real, batch_size, gen), batches(fake, batch_size, gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if after_step is not None:
            after_step()
    if probe is not None and every:
        probe(steps)
    return critic


def gradient_penalty_objective(loss: Callable[[Tensor, Tensor], Tensor], weight: float, seed: int) -> CriticObjective:
    """loss(critic(real), critic(fake)) + weight * WGAN-GP penalty, interpolation weights from `seed`."""
    gen = torch.Generator().manual_seed(seed + 1)

    def objective(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        eps = torch.rand(len(real), generator=gen)
        return loss(critic(real), critic(fake)) + weight * penalties.gradient_penalty(critic, real, fake, eps)

    return objective


def plain_objective(loss: Callable[[Tensor, Tensor], Tensor]) -> CriticObjective:
    return lambda critic, real, fake: loss(critic(real), critic(fake))


def gradient_norms(critic: nn.Module, x: Tensor, chunk: int = 8192) -> Tensor:
    """||grad_x critic(x)|| per point, evaluated in eval mode (no dropout, frozen spectral-norm u)."""
    was_training = critic.training
    critic.eval()
    out = torch.cat([penalties.input_gradient_norm(critic, part).detach() for part in x.split(chunk)])
    critic.train(was_training)
    return out


def plane_grid(xlim: tuple[float, float], ylim: tuple[float, float], n: int) -> tuple[Tensor, Tensor, Tensor]:
    """An n x n grid over the plane: (X, Y, points (n*n, 2))."""
    xs, ys = torch.linspace(*xlim, n), torch.linspace(*ylim, n)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    return gx, gy, torch.stack([gx.flatten(), gy.flatten()], 1)


def new_figure(ncols: int, nrows: int = 1, width: float = 4.6, height: float = 4.0) -> tuple[Figure, Sequence[Any]]:
    """A Figure on the Agg canvas (no pyplot, so no global backend switch for the caller); axes in
    row-major order."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).flatten().tolist()
    return fig, axes


def save_figure(fig: Figure, out_dir: str | Path, name: str) -> Path:
    path = Path(out_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A fixed-width table: floats with 4 significant digits."""

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cells = [list(header), *[[fmt(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(title)
    for r in cells:
        print("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
