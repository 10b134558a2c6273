"""f-GAN (Nowozin et al. 2016): variational estimation and minimisation of any f-divergence."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from gan_modules import losses
from gan_modules.engine import AdversarialModule, Logs


class FGAN(AdversarialModule):
    """`divergence`: kl, reverse_kl, pearson, squared_hellinger, js, gan (Table 2).
    `alternative_generator_loss`: maximise E_Q[g_f(V(G(z)))] (Sec. 3.2) instead of the saddle form."""

    def __init__(self, divergence: str = "js", alternative_generator_loss: bool = True, **kwargs: Any) -> None:
        chosen = losses.get_divergence(divergence)  # validate before building anything
        super().__init__(**kwargs)
        self.divergence, self.alternative = chosen, alternative_generator_loss

    def critic_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        loss = losses.fgan_critic_loss(self.critic(real), self.critic(fake), self.divergence)
        return loss, {"train/divergence_estimate": -loss.detach()}

    def generator_loss(self, fake: Tensor, real: Tensor) -> tuple[Tensor, Logs]:
        return losses.fgan_generator_loss(self.critic(fake), self.divergence, self.alternative), {}
