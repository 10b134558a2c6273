"""The CIFAR-10 ResNets of WGAN-GP (Gulrajani 2017, App. F) and SNGAN (Miyato 2018, App. B.4).

Generator: z -> 4x4 map -> pre-activation residual blocks with nearest 2x upsampling -> BN, ReLU,
3x3 conv, tanh. Critic: an "optimized" first block (conv, ReLU, conv, pool), residual down blocks to
8x8, two residual blocks without pooling, ReLU, global pooling, linear. Widths: G 128 (WGAN-GP)
or 256 (SNGAN), D 128 in both papers. The global pooling differs between the two codes: WGAN-GP's
gan_cifar_resnet.py (and WGAN-CT's CT_gan_cifar_resnet.py) take the mean over the 8x8 map, SNGAN's
snresnet_32.py the sum; the linear head sees 64x larger features under the sum.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gan_modules.nets.base import Critic, Generator
from gan_modules.nets.conditional import Conditioned, LabelledSequential, call_with_labels
from gan_modules.nets.dcgan import resolution_plan

POOLINGS = ("sum", "mean")


class ResidualBlock(nn.Module):
    """A residual block: its two 3x3 convs are the residual branch (SNGAN initialises them with gain
    sqrt(2), `nets.init.glorot_init`), the rest is the shortcut."""

    conv1: nn.Conv2d
    conv2: nn.Conv2d

    def residual(self) -> tuple[nn.Conv2d, nn.Conv2d]:
        return self.conv1, self.conv2


class UpBlock(ResidualBlock, Conditioned):
    """`bn1`, `bn2`: the generator's normalisation layers (`Generator.norm`), conditional with labels."""

    def __init__(self, ch: int, bn1: nn.Module, bn2: nn.Module) -> None:
        super().__init__()
        self.bn1, self.conv1 = bn1, nn.Conv2d(ch, ch, 3, 1, 1)
        self.bn2, self.conv2 = bn2, nn.Conv2d(ch, ch, 3, 1, 1)
        self.skip = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.interpolate(F.relu(call_with_labels(self.bn1, x, y)), scale_factor=2)
        h = self.conv2(F.relu(call_with_labels(self.bn2, self.conv1(h), y)))
        return h + self.skip(F.interpolate(x, scale_factor=2))


class DownBlock(ResidualBlock):
    """Pre-activation residual block; `first` is the "optimized" block that sees raw pixels."""

    def __init__(self, ch_in: int, ch: int, down: bool, first: bool = False) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(ch_in, ch, 3, 1, 1), nn.Conv2d(ch, ch, 3, 1, 1)
        self.skip = nn.Conv2d(ch_in, ch, 1) if (ch_in != ch or down) else nn.Identity()
        self.down, self.first = down, first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = self.conv2(F.relu(h))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.first:  # optimized block: pool, then 1x1 conv on the shortcut
            s = self.skip(F.avg_pool2d(s, 2))
        else:
            s = self.skip(s)
            if self.down:
                s = F.avg_pool2d(s, 2)
        return h + s


class ResNetGenerator(Generator):
    """With labels the blocks' BatchNorms are conditional and the final one is not, as in the
    authors' conditional generator (pfnet-research/sngan_projection, gen_models/resnet.py: `b7`)."""

    def __init__(self, z_dim: int, data_shape: tuple[int, ...], width: int = 128, num_classes: int = 0) -> None:
        super().__init__(z_dim, data_shape, num_classes)
        base, stages = resolution_plan(data_shape[-1], "resnet")
        self.base, self.width = base, width
        self.linear = nn.Linear(z_dim, width * base * base)
        norm = lambda: self.norm(width, nn.BatchNorm2d)  # noqa: E731
        self.blocks = LabelledSequential(*[UpBlock(width, norm(), norm()) for _ in range(stages)])
        self.out = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, data_shape[0], 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.linear(z).view(-1, self.width, self.base, self.base)
        return self.out(self.blocks(h, y))


class ResNetCritic(Critic):
    """`dropout`: one rate, or one per residual block after the first, applied after that block (WGAN-CT's
    CIFAR critic, Wei et al. 2018 code: 0.2, 0.5, 0.5). `pooling`: "sum" (SNGAN) or "mean" (WGAN-GP,
    WGAN-CT) over the final map; the pooled vector is the `features` WGAN-CT's second term compares.
    `head_bias`: the linear head's bias; tflib's Linear (WGAN-GP, WGAN-CT) has one, SNGAN's `l5` has
    none (snresnet_32.py: `SNLinear(ch, 1, nobias=True)`)."""

    def __init__(
        self,
        data_shape: tuple[int, ...],
        width: int = 128,
        minibatch_kernels: int = 0,
        dropout: float | Sequence[float] = 0.0,
        pooling: str = "sum",
        head_bias: bool = True,
    ) -> None:
        super().__init__(data_shape)
        if pooling not in POOLINGS:
            raise ValueError(f"model.critic.pooling={pooling!r} is unknown; allowed: {', '.join(POOLINGS)}")
        self.pooling = pooling
        _, stages = resolution_plan(data_shape[-1], "resnet")
        blocks = [DownBlock(data_shape[0], width, down=True, first=True)]
        blocks += [DownBlock(width, width, down=True) for _ in range(max(stages - 2, 0))]
        blocks += [DownBlock(width, width, down=False) for _ in range(2)]
        rates = list(dropout) if isinstance(dropout, Sequence) else [dropout] * (len(blocks) - 1)
        if len(rates) != len(blocks) - 1:
            raise ValueError(
                f"model.critic.dropout={dropout!r} is invalid; allowed: one rate or {len(blocks) - 1} rates "
                "(one per residual block after the first)"
            )
        layers: list[nn.Module] = [blocks[0]]
        for block, rate in zip(blocks[1:], rates, strict=True):
            layers += [block, nn.Dropout(rate)] if rate else [block]
        self.blocks = nn.Sequential(*layers)
        self.set_head(width, minibatch_kernels, head_bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.blocks(x))
        return h.mean(dim=(2, 3)) if self.pooling == "mean" else h.sum(dim=(2, 3))
