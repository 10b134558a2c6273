"""Random draws defined on the global batch and sliced per rank.

A noise vector or interpolation weight is a function of (seed, draw number) only, drawn for the
whole global batch; rank r keeps rows [r*n, (r+1)*n). One process with batch B and N processes with
batch B/N therefore use identical randomness, and a resumed run continues the same sequence
(the draw counter is checkpointed).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Draw = Callable[[tuple[int, ...], torch.Generator | None, torch.device | None], torch.Tensor]
DRAWS: dict[str, Draw] = {
    "normal": lambda shape, gen, device: torch.randn(shape, generator=gen, device=device),  # N(0, 1)
    "uniform": lambda shape, gen, device: torch.rand(shape, generator=gen, device=device),  # U[0, 1)
    "symmetric_uniform": lambda shape, gen, device: torch.rand(shape, generator=gen, device=device) * 2 - 1,  # U[-1, 1)
}
# The generator's noise prior (`model.z_prior`) -> its draw: N(0, I), or U[-1, 1)^d (Goodfellow et
# al. 2014's code, DCGAN: Radford et al. 2016).
Z_PRIORS = {"normal": "normal", "uniform": "symmetric_uniform"}


def draw(
    kind: str, shape: tuple[int, ...], generator: torch.Generator | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """One draw of `kind` (a key of DRAWS) from `generator` (None: torch's global one)."""
    return DRAWS[kind](shape, generator, device)


class GlobalDraws:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.calls = 0

    def _generator(self, device: torch.device) -> torch.Generator:
        gen = torch.Generator(device=device)
        gen.manual_seed((self.seed * 1_000_003 + self.calls) % (2**63))
        self.calls += 1
        return gen

    def draw(
        self, kind: str, local_shape: tuple[int, ...], device: torch.device, rank: int = 0, world_size: int = 1
    ) -> torch.Tensor:
        """`kind` is a key of DRAWS; returns this rank's slice."""
        n = local_shape[0]
        full = draw(kind, (n * world_size, *local_shape[1:]), self._generator(device), device)
        return full[rank * n : (rank + 1) * n]

    def draw_many(
        self,
        fn: Callable[[int, torch.Generator], dict[str, torch.Tensor]],
        n: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> dict[str, torch.Tensor]:
        """Several draws made together by `fn(global_n, generator)` (a CPU generator: small per-sample
        draws such as DiffAugment's), as one call of the stream; returns this rank's n rows of each."""
        full = fn(n * world_size, self._generator(torch.device("cpu")))
        return {k: v[rank * n : (rank + 1) * n] for k, v in full.items()}

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "calls": self.calls}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed, self.calls = int(state["seed"]), int(state["calls"])
