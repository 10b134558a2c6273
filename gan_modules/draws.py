"""Random draws defined on the global batch and sliced per rank.

A noise vector or interpolation weight is a function of (seed, draw number) only, drawn for the
whole global batch; rank r keeps rows [r*n, (r+1)*n). One process with batch B and N processes with
batch B/N therefore use identical randomness, and a resumed run continues the same sequence
(the draw counter is checkpointed).
"""

from __future__ import annotations

import torch


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
        """`kind` is "normal" (N(0, 1)) or "uniform" (U[0, 1)); returns this rank's slice."""
        n = local_shape[0]
        shape = (n * world_size, *local_shape[1:])
        gen = self._generator(device)
        full = (
            torch.randn(shape, generator=gen, device=device)
            if kind == "normal"
            else torch.rand(shape, generator=gen, device=device)
        )
        return full[rank * n : (rank + 1) * n]

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "calls": self.calls}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed, self.calls = int(state["seed"]), int(state["calls"])
