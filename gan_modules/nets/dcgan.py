"""DCGAN-style convolutional networks (Radford et al. 2016) for 8..64 px images.

The generator starts from a 4x4 (or 7x7, for 28 px MNIST) map and doubles the resolution with
stride-2 transposed convolutions; the critic mirrors it with stride-2 convolutions. The critic's
normalisation is a choice because it matters per loss: batch norm (DCGAN) breaks the per-sample
gradient penalty of WGAN-GP, which recommends layer norm or none (Gulrajani 2017, Sec. 4).
"""

from __future__ import annotations

import torch
from torch import nn

from gan_modules.nets.base import Critic, Generator
from gan_modules.nets.conditional import LabelledSequential

NORMS = ("batch", "layer", "none")


def resolution_plan(size: int, arch: str) -> tuple[int, int]:
    """(start resolution, number of 2x stages) that produce `size`, or a clear error."""
    for base in (4, 7):
        stages, s = 0, base
        while s < size:
            s, stages = s * 2, stages + 1
        if s == size and stages >= 1:
            return base, stages
    raise ValueError(
        f"{arch} cannot produce {size}x{size} images; allowed sizes are 4*2^k or 7*2^k (8, 14, 16, 28, 32, 64, ...); "
        "set data.image_size to one of them"
    )


def _critic_norm(norm: str, channels: int, size: int) -> nn.Module:
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r} is unknown; allowed: {', '.join(NORMS)}")
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "layer":
        return nn.GroupNorm(1, channels)  # layer norm over (C, H, W), per sample
    return nn.Identity()


class DCGANGenerator(Generator):
    def __init__(self, z_dim: int, data_shape: tuple[int, ...], width: int = 64, num_classes: int = 0) -> None:
        super().__init__(z_dim, data_shape, num_classes)
        channels, size = data_shape[0], data_shape[-1]
        base, stages = resolution_plan(size, "dcgan")
        ch = width * 2 ** (stages - 1)
        self.project = LabelledSequential(
            nn.Linear(z_dim, ch * base * base),
            nn.Unflatten(1, (ch, base, base)),
            self.norm(ch, nn.BatchNorm2d),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        for _ in range(stages - 1):
            blocks += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1), self.norm(ch // 2, nn.BatchNorm2d), nn.ReLU()]
            ch //= 2
        blocks += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.blocks = LabelledSequential(*blocks)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.blocks(self.project(z, y), y)


class DCGANCritic(Critic):
    def __init__(
        self,
        data_shape: tuple[int, ...],
        width: int = 64,
        norm: str = "none",
        dropout: float = 0.0,
        minibatch_kernels: int = 0,
    ) -> None:
        super().__init__(data_shape)
        channels, size = data_shape[0], data_shape[-1]
        base, stages = resolution_plan(size, "dcgan")
        layers: list[nn.Module] = []
        ch_in, ch, res = channels, width, size
        for i in range(stages):
            res //= 2
            layers.append(nn.Conv2d(ch_in, ch, 4, 2, 1))
            if i > 0:  # DCGAN: no normalisation on the first layer
                layers.append(_critic_norm(norm, ch, res))
            layers.append(nn.LeakyReLU(0.2))
            if dropout:
                layers.append(nn.Dropout(dropout))
            ch_in, ch = ch, ch * 2
        layers.append(nn.Flatten())
        self.body = nn.Sequential(*layers)
        self.set_head(ch_in * base * base, minibatch_kernels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
