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


def unpack_samples(x: torch.Tensor, pack: int) -> torch.Tensor:
    """(N / m, m * C, ...) -> (N, C, ...): the inverse of `pack_samples`."""
    return x.reshape(len(x) * pack, x.shape[1] // pack, *x.shape[2:])


class PackedCritic(InputTransformCritic):
    """Scores packs of `pack` samples with `inner`, a critic built for `packed_shape(...)` inputs: its
    scores, features (feature matching, WGAN-CT) and EBGAN energies are those of each pack."""

    def __init__(self, inner: nn.Module, pack: int) -> None:
        super().__init__(inner)
        self.pack = pack

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return pack_samples(x, self.pack)


class PackSpaceCritic(InputTransformCritic):
    """A critic that packs its samples itself (`PackedCritic`, possibly wrapped), read on packs.

    Terms defined on the critic's inputs must see what the critic sees, a pack: WGAN-GP's
    interpolates lie on lines between a real and a fake pack (one weight per pack) and its norm is of
    the gradient w.r.t. the whole pack; R1's norm likewise; LS-GAN's margin is the distance between
    packs. Read per sample, a penalty would drive each of the m parts of a pack's gradient to norm 1,
    i.e. the pack's to sqrt(m) (R1: 1/m of the pack's squared norm).
    """

    def __init__(self, critic: nn.Module, pack: int) -> None:
        super().__init__(critic)
        self.pack = pack

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return unpack_samples(x, self.pack)


def pack_space(
    critic: nn.Module, pack: int, real: torch.Tensor, fake: torch.Tensor
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """(critic, real, fake) as terms on the critic's inputs read them: packs of `pack` samples and
    the critic on packs; unchanged for pack 1."""
    if pack == 1:
        return critic, real, fake
    return PackSpaceCritic(critic, pack), pack_samples(real, pack), pack_samples(fake, pack)
