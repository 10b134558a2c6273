"""LSGAN (Mao et al. 2017): least-squares targets a (fake), b (real), c (what G wants D to say)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from gan_modules import losses
from gan_modules.engine import AdversarialModule, Logs, _check


class LSGAN(AdversarialModule):
    """Mao et al. 2017, Eq. 2. Defaults: the 0-1 coding a=0, b=1, c=1 (Eq. 9; the authors' code uses it).
    a=-1, b=1, c=0 satisfies b - c = 1 and b - a = 2, under which minimising Eq. 2 minimises the Pearson
    chi^2 divergence between p_data + p_g and 2 p_g (Sec. 3.2, Eq. 8)."""

    def __init__(self, a: float = 0.0, b: float = 1.0, c: float = 1.0, **kwargs: Any) -> None:
        _check(a != b, "model.a", a, f"a value different from model.b={b} (the fake and real targets must differ)")
        super().__init__(**kwargs)
        self.a, self.b, self.c = a, b, c

    def critic_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        return losses.least_squares_critic_loss(self.critic(real), self.critic(fake), self.a, self.b), {}

    def generator_loss(self, fake: Tensor, real: Tensor) -> tuple[Tensor, Logs]:
        return losses.least_squares_generator_loss(self.critic(fake), self.c), {}
