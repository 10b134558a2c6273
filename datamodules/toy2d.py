"""Generated 2D mixtures: the standard mode-collapse testbeds.

ring8 and grid25 use the constants of PacGAN (Lin et al. 2018, Sec. 5.1 / Table 1, following
VEEGAN, Srivastava et al. 2017): 8 Gaussians on a circle of radius 1 with std 0.01, and 25 Gaussians
at {-4,-2,0,2,4}^2 with std 0.05. swissroll follows the toy script of WGAN-GP (Gulrajani et al.
2017): sklearn's swiss roll (noise 0.25), 2D slice, divided by 7.5.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from datamodules.base import GANDataModule

TOY_DATASETS = ("ring8", "grid25", "swissroll")


def ring_modes(n: int = 8, radius: float = 1.0) -> torch.Tensor:
    angles = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    return torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], 1).float()


def grid_modes(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    coords = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    return torch.cartesian_prod(coords, coords)


MIXTURES: dict[str, tuple[torch.Tensor, float]] = {
    "ring8": (ring_modes(), 0.01),
    "grid25": (grid_modes(), 0.05),
}


def sample_mixture_with_components(name: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n points from a named 2D distribution, reproducible from `seed`, and the mixture component
    each point was drawn from (None for the swiss roll, which is no mixture)."""
    if name == "swissroll":
        from sklearn.datasets import make_swiss_roll

        points, _ = make_swiss_roll(n_samples=n, noise=0.25, random_state=seed)
        return torch.from_numpy(points[:, [0, 2]].astype(np.float32) / 7.5), None
    if name not in MIXTURES:
        raise ValueError(f"data.dataset={name!r} is unknown; allowed: {', '.join(TOY_DATASETS)}")
    modes, std = MIXTURES[name]
    gen = torch.Generator().manual_seed(seed)
    which = torch.randint(len(modes), (n,), generator=gen)
    return modes[which] + std * torch.randn(n, 2, generator=gen), which


def sample_mixture(name: str, n: int, seed: int) -> torch.Tensor:
    """n points from a named 2D distribution, reproducible from `seed`."""
    return sample_mixture_with_components(name, n, seed)[0]


class Toy2DDataModule(GANDataModule):
    """A fixed sample of `size` points from a 2D mixture (regenerated identically from `seed`); its
    labels are the mixture components (8 for ring8, 25 for grid25; the swiss roll has none)."""

    kind = "points"

    def __init__(self, dataset: str = "ring8", size: int = 100_000, batch_size: int = 256, seed: int = 0) -> None:
        if dataset not in TOY_DATASETS:
            raise ValueError(f"data.dataset={dataset!r} is unknown; allowed: {', '.join(TOY_DATASETS)}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"data.size={size!r} is invalid; allowed: an integer >= 1")
        super().__init__(batch_size=batch_size, seed=seed)
        self.name = dataset
        self.size = size
        self.num_classes = len(MIXTURES[dataset][0]) if dataset in MIXTURES else 0

    @property
    def data_shape(self) -> tuple[int, ...]:
        return (2,)

    @property
    def modes(self) -> torch.Tensor | None:
        """Mode centres for mode-coverage metrics (None for the swiss roll, which has no modes)."""
        return MIXTURES[self.name][0] if self.name in MIXTURES else None

    @property
    def mode_std(self) -> float | None:
        return MIXTURES[self.name][1] if self.name in MIXTURES else None

    def load(self) -> torch.Tensor:
        return sample_mixture(self.name, self.size, self.seed)

    def load_labels(self) -> torch.Tensor:
        return sample_mixture_with_components(self.name, self.size, self.seed)[1]
