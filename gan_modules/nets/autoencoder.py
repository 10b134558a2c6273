"""EBGAN's autoencoder discriminator (Zhao et al. 2017, Sec. 2.3).

The "critic" outputs an energy per sample and exposes the encoder's embedding for the pulling-away
term. `energy`: "l2" is the paper's D(x) = ||Dec(Enc(x)) - x|| (Sec. 2.3), the Euclidean norm of the
reconstruction error; "mse" is its per-pixel mean square ||Dec(Enc(x)) - x||^2 / dim(x), on whose scale
the margin m must then be read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from gan_modules.nets.dcgan import resolution_plan

ENERGIES = ("mse", "l2")


class AutoencoderCritic(nn.Module):
    """Convolutional (images) or fully connected (points) autoencoder; forward gives energies."""

    def __init__(
        self,
        data_shape: tuple[int, ...],
        width: int = 64,
        code_dim: int = 64,
        hidden: Sequence[int] = (256, 256),
        energy: str = "mse",
    ) -> None:
        super().__init__()
        if energy not in ENERGIES:
            raise ValueError(f"model.critic.energy={energy!r} is unknown; allowed: {', '.join(ENERGIES)}")
        self.data_shape = tuple(data_shape)
        self.energy = energy
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
        error = (self.decoder(code).view_as(x) - x).flatten(1)
        return (error.norm(2, dim=1) if self.energy == "l2" else error.pow(2).mean(1)), code

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy_and_code(x)[0]
