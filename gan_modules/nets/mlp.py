"""Fully connected networks: the 2D-toy nets of WGAN-GP / PacGAN and the MLP image baseline."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from gan_modules.nets.base import Critic, Generator
from gan_modules.nets.conditional import LabelledSequential

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation={name!r} is unknown; allowed: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLPGenerator(Generator):
    """z -> hidden layers -> data; images end in tanh ([-1, 1]), points are linear (data units).

    With labels every hidden layer is conditioned (`Generator.norm`), also without `batch_norm`.
    """

    def __init__(
        self,
        z_dim: int,
        data_shape: tuple[int, ...],
        hidden: Sequence[int] = (512, 512, 512),
        activation: str = "relu",
        batch_norm: bool = False,
        num_classes: int = 0,
    ) -> None:
        super().__init__(z_dim, data_shape, num_classes)
        layers: list[nn.Module] = []
        width = z_dim
        for h in hidden:
            layers += [nn.Linear(width, h)]
            if batch_norm or num_classes:
                layers += [self.norm(h, nn.BatchNorm1d if batch_norm else None)]
            layers += [_activation(activation)]
            width = h
        layers.append(nn.Linear(width, math.prod(data_shape)))
        if len(data_shape) == 3:
            layers.append(nn.Tanh())
        self.net = LabelledSequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z, y).view(-1, *self.data_shape)


class MLPCritic(Critic):
    """data -> hidden layers -> score; `dropout` after each layer serves WGAN-CT's two passes."""

    def __init__(
        self,
        data_shape: tuple[int, ...],
        hidden: Sequence[int] = (512, 512, 512),
        activation: str = "relu",
        dropout: float = 0.0,
        minibatch_kernels: int = 0,
    ) -> None:
        super().__init__(data_shape)
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(data_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), _activation(activation)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        self.body = nn.Sequential(*layers)
        self.set_head(width, minibatch_kernels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
