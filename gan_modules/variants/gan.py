"""The original GAN (Goodfellow et al. 2014) and its non-saturating form, with the Improved
Techniques tricks (Salimans et al. 2016) that act on the loss: one-sided label smoothing and
feature matching. Minibatch discrimination is a critic option (`critic: {minibatch_kernels: 100}`)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from gan_modules import losses
from gan_modules.engine import AdversarialModule, Logs, _check


class GAN(AdversarialModule):
    """Minimax GAN: the generator minimises log(1 - D(G(z))), which saturates when D wins."""

    saturating = True

    def __init__(self, real_label: float = 1.0, feature_matching: bool = False, **kwargs: Any) -> None:
        _check(0.5 < real_label <= 1.0, "model.real_label", real_label, "a float in (0.5, 1] (e.g. 0.9 for smoothing)")
        super().__init__(**kwargs)
        self.real_label, self.feature_matching = real_label, feature_matching

    def critic_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        return losses.minimax_critic_loss(self.critic(real), self.critic(fake), self.real_label), {}

    def generator_loss(self, fake: Tensor, real: Tensor) -> tuple[Tensor, Logs]:
        if self.feature_matching:
            return losses.feature_matching_loss(self.critic.features(real), self.critic.features(fake)), {}
        scores = self.critic(fake)
        if self.saturating:
            return losses.minimax_generator_loss(scores), {}
        return losses.non_saturating_generator_loss(scores), {}


class NSGAN(GAN):
    """Non-saturating GAN: the generator minimises -log D(G(z)) (Goodfellow 2014, Sec. 3)."""

    saturating = False
