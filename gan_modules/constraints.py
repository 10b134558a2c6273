"""Ways to make the critic (approximately) Lipschitz by constraining its weights."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


@torch.no_grad()
def clip_weights(module: nn.Module, c: float) -> None:
    """WGAN weight clipping (Arjovsky et al. 2017, Algorithm 1, line 7): w <- clip(w, -c, c)."""
    for p in module.parameters():
        p.clamp_(-c, c)


WEIGHT_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def apply_spectral_norm(
    module: nn.Module, n_power_iterations: int = 1, layers: tuple[type[nn.Module], ...] = (*WEIGHT_LAYERS, nn.Embedding)
) -> nn.Module:
    """SNGAN (Miyato et al. 2018): divide every Linear/Conv weight by its largest singular value.

    One power iteration per training-mode forward pass (Algorithm 1 does one per update; the
    authors' Chainer layers, like torch's parametrization, iterate on every training forward), with
    u kept as the buffer `parametrizations.weight.0._u` across steps, hence in every checkpoint. In
    eval mode u is frozen, so evaluation does not change the critic. torch warms u up with 15
    iterations when the layer is wrapped. Conv weights are normalised as the (C_out, C_in*k*k)
    matrix, the paper's practical choice (Sec. 2.1). Minibatch discrimination's kernel tensor is a
    parameter, not a layer, and is left alone. A projection critic's class embedding is normalised
    too, as the (num_classes, F) matrix (Miyato & Koyama 2018's code: `SNEmbedID`); `layers` names
    the kinds of layer normalised.
    """
    for child in list(module.modules()):
        if isinstance(child, layers):
            spectral_norm(child, n_power_iterations=n_power_iterations)
    return module
