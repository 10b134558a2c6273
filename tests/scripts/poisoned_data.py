"""A toy datamodule with one NaN row, to drive the non-finite guard with real data (tests only)."""

from __future__ import annotations

from typing import Any

import torch

from datamodules import Toy2DDataModule


class PoisonedRing(Toy2DDataModule):
    """ring8 whose row `poison_index` is NaN: the critic step on the global batch holding it gets NaN."""

    def __init__(self, poison_index: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poison_index = poison_index

    def load(self) -> torch.Tensor:
        data = super().load()
        data[self.poison_index] = float("nan")
        return data
