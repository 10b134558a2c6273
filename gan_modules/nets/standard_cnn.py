"""SNGAN's "standard CNN" (Miyato et al. 2018, App. B, Table 3), the nets of its Table 1 settings A-F.

Critic (M x M x 3 input): 3x3 s1 conv 64, 4x4 s2 conv 64, 3x3 s1 conv 128, 4x4 s2 conv 128, 3x3 s1
conv 256, 4x4 s2 conv 256, 3x3 s1 conv 512, each followed by leaky ReLU (slope 0.1, Table 3's
caption), then dense -> 1 on the flattened M/8 x M/8 x 512 map. Generator: z -> dense M/8 x M/8 x 512,
4x4 s2 deconv 256, 128, 64 each with BN and ReLU, 3x3 s1 conv 3, tanh (M/8 = 4 for CIFAR-10, 6 for
STL-10). The table lists no activation after the generator's dense layer; the authors' chainer code
(pfnet-research/chainer-gan-lib, common/net.py `DCGANGenerator`) batch-normalises its 4*4*512 outputs
per unit and applies ReLU there, which is followed here. That code's `SNDCGANDiscriminator` doubles
the width at each stride-2 conv (64, 128, 128, 256, 256, 512, 512) and uses chainer's default leaky
slope 0.2; the widths and slope here are the paper's table.
"""

from __future__ import annotations

import torch
from torch import nn

from gan_modules.nets.base import Critic, Generator
from gan_modules.nets.conditional import LabelledSequential

# (kernel, stride, channels as a multiple of `width`), Table 3 (b)
CRITIC_LAYERS = ((3, 1, 1), (4, 2, 1), (3, 1, 2), (4, 2, 2), (3, 1, 4), (4, 2, 4), (3, 1, 8))


def bottom_width(size: int) -> int:
    """M / 8, the generator's starting and the critic's final resolution, or a clear error."""
    if size % 8 or size < 8:
        raise ValueError(
            f"standard_cnn cannot handle {size}x{size} images; allowed sizes are multiples of 8 "
            "(32 for CIFAR-10, 48 for STL-10); set data.image_size to one of them"
        )
    return size // 8


class StandardCNNGenerator(Generator):
    def __init__(self, z_dim: int, data_shape: tuple[int, ...], width: int = 64, num_classes: int = 0) -> None:
        super().__init__(z_dim, data_shape, num_classes)
        base, ch = bottom_width(data_shape[-1]), 8 * width
        self.project = LabelledSequential(
            nn.Linear(z_dim, ch * base * base),
            self.norm(ch * base * base, nn.BatchNorm1d),
            nn.ReLU(),
            nn.Unflatten(1, (ch, base, base)),
        )
        layers: list[nn.Module] = []
        for _ in range(3):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1), self.norm(ch // 2, nn.BatchNorm2d), nn.ReLU()]
            ch //= 2
        layers += [nn.Conv2d(ch, data_shape[0], 3, 1, 1), nn.Tanh()]
        self.blocks = LabelledSequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.blocks(self.project(z, y), y)


class StandardCNNCritic(Critic):
    def __init__(
        self, data_shape: tuple[int, ...], width: int = 64, slope: float = 0.1, minibatch_kernels: int = 0
    ) -> None:
        super().__init__(data_shape)
        base = bottom_width(data_shape[-1])
        layers: list[nn.Module] = []
        ch_in = data_shape[0]
        for kernel, stride, mult in CRITIC_LAYERS:
            layers += [nn.Conv2d(ch_in, mult * width, kernel, stride, 1), nn.LeakyReLU(slope)]
            ch_in = mult * width
        layers.append(nn.Flatten())
        self.body = nn.Sequential(*layers)
        self.set_head(ch_in * base * base, minibatch_kernels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
