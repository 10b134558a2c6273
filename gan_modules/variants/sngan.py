"""SNGAN (Miyato et al. 2018): spectral normalisation on every critic layer, any loss (hinge default)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from gan_modules.engine import AdversarialModule, Logs
from gan_modules.losses import get_loss_pair
from gan_modules.nets import build_critic


class SNGAN(AdversarialModule):
    def __init__(self, loss: str = "hinge", **kwargs: Any) -> None:
        critic_loss, generator_loss = get_loss_pair(loss)  # validate before building anything
        super().__init__(**kwargs)
        self._critic_loss, self._generator_loss = critic_loss, generator_loss

    def build_critic(self, spec: dict[str, Any]) -> nn.Module:
        return build_critic({**spec, "spectral_norm": True}, self.data_shape)

    def critic_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        return self._critic_loss(self.critic(real), self.critic(fake)), {}

    def generator_loss(self, fake: Tensor, real: Tensor) -> tuple[Tensor, Logs]:
        return self._generator_loss(self.critic(fake)), {}
