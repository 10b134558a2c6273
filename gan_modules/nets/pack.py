"""PacGAN packing (Lin et al. 2018, "PacGAN: The power of two samples in generative adversarial networks").

The critic judges m samples at once, concatenated along channels (images) or features (points),
so a generator that collapses onto few modes shows it within each pack; m = 2 already gives
PacGAN its Stacked MNIST results (Table 2). Any critic of the zoo can be packed: it is built for
the packed input shape and wrapped, so it scores N / m packs for N samples.
"""

from __future__ import annotations

import torch
from torch import nn

from gan_modules.nets.base import InputTransformCritic


def packed_shape(data_shape: tuple[int, ...], pack: int) -> tuple[int, ...]:
    """The input shape of the inner critic: m times the channels (or features)."""
    return (pack * data_shape[0], *data_shape[1:])


def pack_samples(x: torch.Tensor, pack: int) -> torch.Tensor:
    """(N, C, ...) -> (N / m, m * C, ...): consecutive samples 0..m-1 form pack 0, and so on."""
    if len(x) % pack:
        raise ValueError(
            f"a batch of {len(x)} samples cannot be packed in groups of model.critic.pack={pack}; "
            "use batch sizes divisible by it"
        )
    return x.reshape(len(x) // pack, pack * x.shape[1], *x.shape[2:])


class PackedCritic(InputTransformCritic):
    """Scores packs of `pack` samples with `inner`, a critic built for `packed_shape(...)` inputs: its
    scores, features (feature matching, WGAN-CT) and EBGAN energies are those of each pack."""

    def __init__(self, inner: nn.Module, pack: int) -> None:
        super().__init__(inner)
        self.pack = pack

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return pack_samples(x, self.pack)
