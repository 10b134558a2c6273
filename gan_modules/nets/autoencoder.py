"""EBGAN's autoencoder discriminator (Zhao et al. 2017, Sec. 2.3).

The "critic" outputs an energy per sample, the mean squared reconstruction error ||Dec(Enc(x)) - x||^2,
and exposes the encoder's embedding for the pulling-away term.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from gan_modules.nets.dcgan import resolution_plan


class AutoencoderCritic(nn.Module):
    """Convolutional (images) or fully connected (points) autoencoder; forward gives energies."""

    def __init__(
        self, data_shape: tuple[int, ...], width: int = 64, code_dim: int = 64, hidden: Sequence[int] = (256, 256)
    ) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        if len(data_shape) == 3:
            self.encoder, self.decoder = self._conv(data_shape, width, code_dim)
        else:
            dims = [math.prod(data_shape), *hidden, code_dim]
            enc: list[nn.Module] = []
            for a, b in zip(dims[:-1], dims[1:], strict=True):
                enc += [nn.Linear(a, b), nn.ReLU()]
            dec: list[nn.Module] = []
            rev = dims[::-1]
            for a, b in zip(rev[:-1], rev[1:], strict=True):
                dec += [nn.Linear(a, b), nn.ReLU()]
            self.encoder, self.decoder = nn.Sequential(*enc[:-1]), nn.Sequential(*dec[:-1])

    @staticmethod
    def _conv(data_shape: tuple[int, ...], width: int, code_dim: int) -> tuple[nn.Module, nn.Module]:
        channels, size = data_shape[0], data_shape[-1]
        base, stages = resolution_plan(size, "autoencoder")
        enc: list[nn.Module] = []
        ch_in, ch = channels, width
        for _ in range(stages):
            enc += [nn.Conv2d(ch_in, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
            ch_in, ch = ch, ch * 2
        enc += [nn.Flatten(), nn.Linear(ch_in * base * base, code_dim)]
        dec: list[nn.Module] = [nn.Linear(code_dim, ch_in * base * base), nn.Unflatten(1, (ch_in, base, base))]
        for i in range(stages):
            out = channels if i == stages - 1 else ch_in // 2
            dec += [nn.ReLU(), nn.ConvTranspose2d(ch_in, out, 4, 2, 1)]
            ch_in = out
        return nn.Sequential(*enc), nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def energy_and_code(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encoder(x)
        recon = self.decoder(code).view_as(x)
        return (recon - x).pow(2).flatten(1).mean(1), code

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy_and_code(x)[0]
