"""Loss-Sensitive GAN (Qi 2017): a learned loss L with a data-dependent margin Delta(x, G(z))."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from gan_modules import losses
from gan_modules.engine import AdversarialModule, Logs, _check


class LossSensitiveGAN(AdversarialModule):
    """L(x) = softplus(critic score) >= 0: the objective E L(x) + lambda E[...]_+ is unbounded below
    for an unconstrained L (a constant shift lowers it forever), so L is kept non-negative.
    Delta = delta_scale * mean|x - G(z)| pairs each real sample with one fake (Eq. 5)."""

    def __init__(self, slack_weight: float = 1.0, delta_scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check(slack_weight > 0, "model.slack_weight", slack_weight, "a float > 0")
        _check(delta_scale >= 0, "model.delta_scale", delta_scale, "a float >= 0")
        self.slack_weight, self.delta_scale = slack_weight, delta_scale

    def learned_loss(self, x: Tensor) -> Tensor:
        return F.softplus(self.critic(x))

    def critic_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        delta = losses.l1_margin(real, fake, self.delta_scale)
        loss = losses.loss_sensitive_critic_loss(
            self.learned_loss(real), self.learned_loss(fake), delta, self.slack_weight
        )
        return loss, {"train/margin": delta.mean().detach()}

    def generator_loss(self, fake: Tensor, real: Tensor) -> tuple[Tensor, Logs]:
        return losses.loss_sensitive_generator_loss(self.learned_loss(fake)), {}
