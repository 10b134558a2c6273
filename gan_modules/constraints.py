"""Ways to make the critic (approximately) Lipschitz by constraining its weights."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gan_modules.nets.base import MinibatchDiscrimination


@torch.no_grad()
def clip_weights(module: nn.Module, c: float) -> None:
    """WGAN weight clipping (Arjovsky et al. 2017, Algorithm 1, line 7): w <- clip(w, -c, c)."""
    for p in module.parameters():
        p.clamp_(-c, c)


def apply_spectral_norm(module: nn.Module, n_power_iterations: int = 1) -> nn.Module:
    """SNGAN (Miyato et al. 2018): divide every Linear/Conv weight by its largest singular value.

    One power iteration per forward pass, with the vector u kept as a buffer across steps (and
    therefore checkpointed), exactly as in the paper's Algorithm 1. Conv weights are normalised as
    the (C_out, C_in*k*k) matrix, the paper's practical choice. Minibatch discrimination's kernel
    tensor is not a layer weight and is left alone.
    """
    for child in list(module.modules()):
        if isinstance(child, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)) and not isinstance(
            child, MinibatchDiscrimination
        ):
            spectral_norm(child, n_power_iterations=n_power_iterations)
    return module
