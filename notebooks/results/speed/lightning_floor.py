"""Lightning's own cost per generator iteration, with no networks: the floor under the engine's
overhead. Made `lightning_floor.txt` on a 2-core x86 CPU:

    OMP_NUM_THREADS=1 python notebooks/results/speed/lightning_floor.py

Three loops over the 2D benchmark's data stream (grid25, batch 128), each on two 4-element
parameters with plain SGD at learning rate 0, so the arithmetic is negligible:
- `lightning, empty step`: Lightning's per-batch loop; the step only advances global_step;
- `lightning, engine's calls`: the engine's calls per iteration at n_critic 1: two `manual_backward`,
  the critic's update through the strategy, `toggle_optimizer` and the generator's
  `LightningOptimizer.step`;
- `plain`: the same backward passes and updates in a for loop over the same DataLoader.
"""

import logging
import statistics
import time
import warnings

import lightning as L
import torch

from datamodules import Toy2DDataModule
from gan_modules.bench.speed import engine_seconds_per_iteration
from gan_modules.runtime import flush_subnormal_floats

ITERATIONS, WARMUP, REPS = 3000, 100, 5


class Tiny(L.LightningModule):
    def __init__(self, engine_calls: bool) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.engine_calls = engine_calls
        self.p = torch.nn.Parameter(torch.zeros(4))
        self.q = torch.nn.Parameter(torch.zeros(4))

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [torch.optim.SGD([self.p], lr=0.0), torch.optim.SGD([self.q], lr=0.0)]

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        d_opt, g_opt = self.optimizers()
        if not self.engine_calls:
            g_opt.step()  # advances global_step only: q has no gradient
            return
        d_opt.zero_grad()
        self.manual_backward(self.p.sum())
        self.trainer.strategy.optimizer_step(d_opt.optimizer, lambda: None)
        self.toggle_optimizer(g_opt)
        g_opt.zero_grad()
        self.manual_backward(self.q.sum())
        g_opt.step()
        self.untoggle_optimizer(g_opt)


def data() -> Toy2DDataModule:
    dm = Toy2DDataModule("grid25", batch_size=128)
    dm.setup("fit")
    return dm


def lightning_ms(engine_calls: bool) -> float:
    # the clock `gan-lab speed` times the engine with: wall time between generator iterations
    return 1000 * engine_seconds_per_iteration(Tiny(engine_calls), data(), ITERATIONS, warmup=WARMUP)


def plain_ms() -> float:
    p, q = torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(4))
    d_opt, g_opt = torch.optim.SGD([p], lr=0.0), torch.optim.SGD([q], lr=0.0)
    batches = iter(data().train_dataloader())
    start = time.perf_counter()
    for _ in range(ITERATIONS):
        next(batches)
        d_opt.zero_grad()
        p.sum().backward()
        d_opt.step()
        g_opt.zero_grad()
        q.sum().backward()
        g_opt.step()
    return 1000 * (time.perf_counter() - start) / ITERATIONS


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    flush_subnormal_floats()
    torch.set_num_threads(1)
    times: dict[str, list[float]] = {"lightning, empty step": [], "lightning, engine's calls": [], "plain": []}
    for _ in range(REPS):  # interleaved
        times["lightning, empty step"].append(lightning_ms(False))
        times["lightning, engine's calls"].append(lightning_ms(True))
        times["plain"].append(plain_ms())
    for name, values in times.items():
        print(
            f"{name}: {statistics.median(values):.3f} ms per iteration (median of {REPS}: "
            f"{', '.join(f'{v:.3f}' for v in values)})"
        )
