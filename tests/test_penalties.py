"""Gradient penalties against central finite differences on small float64 critics, and the points
they are evaluated at against the papers' constructions (recorded with forward pre-hooks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gan_modules import penalties
from gan_modules.compose import preset
from gan_modules.draws import GlobalDraws
from gan_modules.nets import Critic, build_critic

GEN = torch.Generator().manual_seed(0)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)  # network initialisations use the global RNG: independent of test order


def small_critic(data_shape=(3,), activation="tanh") -> nn.Module:
    torch.manual_seed(1)
    return build_critic({"arch": "mlp", "hidden": [7, 5], "activation": activation}, data_shape).double()


def fd_input_grad_norms(critic, x: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """||grad_x D(x)|| per sample by central differences over every input coordinate."""
    flat = x.flatten(1)
    grads = torch.zeros_like(flat)
    with torch.no_grad():
        for k in range(flat.shape[1]):
            step = torch.zeros_like(flat)
            step[:, k] = h
            up, down = critic((flat + step).view_as(x)), critic((flat - step).view_as(x))
            grads[:, k] = (up - down) / (2 * h)
    return grads.norm(dim=1)


def fd_param_grad(loss_fn, params: list[torch.Tensor], h: float = 1e-6) -> torch.Tensor:
    out = []
    for p in params:
        flat = p.data.view(-1)  # edit in place outside autograd; the loss itself may need autograd
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + h
            up = loss_fn().item()
            flat[i] = old - h
            down = loss_fn().item()
            flat[i] = old
            out.append((up - down) / (2 * h))
    return torch.tensor(out, dtype=torch.float64)


def test_input_gradient_norm_matches_finite_differences_over_all_non_batch_dims():
    critic = small_critic(data_shape=(2, 2, 3))  # image-like: the norm runs over C, H, W together
    x = torch.randn(5, 2, 2, 3, generator=GEN, dtype=torch.float64)
    got = penalties.input_gradient_norm(critic, x)
    assert got.shape == (5,)
    assert torch.allclose(got, fd_input_grad_norms(critic, x), rtol=1e-6)


@pytest.mark.parametrize("one_sided", [False, True])
def test_gradient_penalty_value_and_parameter_gradient_match_finite_differences(one_sided):
    critic = small_critic()
    with torch.no_grad():  # make some norms exceed 1, so the one-sided form is not trivially zero
        critic.head.weight.mul_(8.0)
    real = torch.randn(6, 3, generator=GEN, dtype=torch.float64)
    fake = torch.randn(6, 3, generator=GEN, dtype=torch.float64) + 2
    eps = torch.rand(6, generator=GEN, dtype=torch.float64)
    x_hat = eps[:, None] * real + (1 - eps[:, None]) * fake  # Gulrajani 2017, Alg. 1, line 6
    norms = fd_input_grad_norms(critic, x_hat)
    assert bool((norms > 1).any()) and bool((norms < 1).any())
    excess = (norms - 1).clamp(min=0) if one_sided else norms - 1
    penalty = penalties.gradient_penalty(critic, real, fake, eps, one_sided)
    assert penalty.item() == pytest.approx(excess.pow(2).mean().item(), rel=1e-6)

    params = list(critic.parameters())
    # the double-backward path training relies on (the head's bias cannot change input gradients)
    grads = torch.autograd.grad(penalty, params, allow_unused=True)
    got = torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for g, p in zip(grads, params, strict=True)])
    expected = fd_param_grad(lambda: penalties.gradient_penalty(critic, real, fake, eps, one_sided), params)
    assert expected.abs().max() > 1e-2
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-7)


def test_one_sided_penalty_is_zero_when_all_norms_are_below_one():
    critic = nn.Linear(4, 1, bias=True).double()
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.3, 0.0, -0.4, 0.0]]))  # ||grad|| = 0.5 everywhere
    real, fake = torch.randn(8, 4, dtype=torch.float64), torch.randn(8, 4, dtype=torch.float64)
    eps = torch.rand(8, dtype=torch.float64)
    assert penalties.gradient_penalty(critic, real, fake, eps, one_sided=True).item() == 0.0
    assert penalties.gradient_penalty(critic, real, fake, eps, one_sided=False).item() == pytest.approx(0.25)
    with torch.no_grad():
        critic.weight.mul_(4.0)  # ||grad|| = 2: both forms give (2 - 1)^2
    for one_sided in (True, False):
        assert penalties.gradient_penalty(critic, real, fake, eps, one_sided).item() == pytest.approx(1.0)


class InputRecorder:
    """Forward pre-hook on the critic: every batch the critic is evaluated at."""

    def __init__(self, module: nn.Module) -> None:
        self.inputs: list[torch.Tensor] = []
        module.register_forward_pre_hook(lambda _m, args: self.inputs.append(args[0].detach().clone()))


TINY = {"z_dim": 2, "data_shape": (2,), "generator": {"arch": "mlp", "hidden": [8]}}


def test_wgan_gp_interpolates_lie_on_the_segments_with_one_eps_per_sample():
    module = preset("wgan_gp", critic={"arch": "mlp", "hidden": [8]}, **TINY)
    recorder = InputRecorder(module.critic)
    real, fake = torch.randn(64, 2, generator=GEN), torch.randn(64, 2, generator=GEN) + 3
    module.critic_loss(real, fake)
    assert len(recorder.inputs) == 3  # real, fake, interpolates
    x_hat = recorder.inputs[2]
    # x_hat = fake + t (real - fake): solve for t per sample (least squares over coordinates)
    d = real - fake
    t = ((x_hat - fake) * d).sum(1) / d.pow(2).sum(1)
    assert torch.allclose(fake + t[:, None] * d, x_hat, atol=1e-5)  # on the line through x and x~
    assert bool(((t >= 0) & (t <= 1)).all())  # between them
    assert t.unique().numel() == 64  # a separate draw per sample
    assert 0.3 < t.mean().item() < 0.7  # U[0, 1]


def test_dragan_penalty_points_are_near_the_data_as_in_the_reference_code():
    module = preset("dragan", critic={"arch": "mlp", "hidden": [8]}, **TINY)
    recorder = InputRecorder(module.critic)
    real, fake = torch.randn(256, 2, generator=GEN), torch.randn(256, 2, generator=GEN) + 5
    replay = GlobalDraws(module.draws.seed)  # the same random stream, drawn by hand
    replay.calls = module.draws.calls
    module.critic_loss(real, fake)
    noise, alpha = replay.draw("uniform", (256, 2), real.device), replay.draw("uniform", (256,), real.device)
    # Kodali 2017 reference notebook: x_p = x + 0.5 * np.std(x) * np.random.random(x.shape) (np.std: ddof 0,
    # one scalar over the batch; np.random.random: U[0, 1)); x_hat = x + alpha (x_p - x)
    std = float(np.std(real.numpy()))
    expected = real + alpha[:, None] * (0.5 * std * noise)
    assert torch.allclose(recorder.inputs[2], expected, atol=1e-6)
    offset = recorder.inputs[2] - real
    assert bool((offset >= 0).all()) and bool((offset < 0.5 * std).all())


def test_dragan_penalty_matches_finite_differences():
    critic = small_critic()
    real = torch.randn(6, 3, generator=GEN, dtype=torch.float64)
    noise, alpha = torch.rand(6, 3, generator=GEN, dtype=torch.float64), torch.rand(6, generator=GEN).double()
    x_hat = real + alpha[:, None] * 0.5 * float(np.std(real.numpy())) * noise  # numpy's std, ddof 0
    expected = (fd_input_grad_norms(critic, x_hat) - 1).pow(2).mean()
    assert penalties.dragan_penalty(critic, real, noise, alpha).item() == pytest.approx(expected.item(), rel=1e-6)


def test_r1_penalty_matches_finite_differences():
    critic = small_critic()
    real = torch.randn(6, 3, generator=GEN, dtype=torch.float64)
    expected = fd_input_grad_norms(critic, real).pow(2).mean()
    assert penalties.r1_penalty(critic, real).item() == pytest.approx(expected.item(), rel=1e-6)


class ScriptedCritic(Critic):
    """A critic whose two stochastic passes return given features: the CT formula in isolation."""

    def __init__(self, passes: list[torch.Tensor]) -> None:
        super().__init__((3,))
        self.passes = list(passes)
        self.head = nn.Linear(3, 1).double()
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))
            self.head.bias.fill_(0.1)

    def features(self, real: torch.Tensor) -> torch.Tensor:
        return self.passes.pop(0)


@pytest.mark.parametrize("distance", ["squared", "euclidean"])
@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_consistency_term_formula(distance, margin):
    f1 = torch.tensor([[1.0, 0.0, 2.0], [0.5, 0.5, 0.5]], dtype=torch.float64)
    f2 = torch.tensor([[1.0, 1.0, 0.0], [0.5, 0.5, 0.5]], dtype=torch.float64)
    # scores: w = [1, -2, 0.5], b = 0.1 -> [2.1, 0.35] and [-0.9, 0.35]
    if distance == "squared":  # (3)^2 + 0.1 * mean([0, 1, 4]) ; identical second sample -> 0
        d = [9.0 + 0.1 * 5 / 3, 0.0]
    else:  # |3| + 0.1 * sqrt(5)
        d = [3.0 + 0.1 * 5**0.5, 0.0]
    expected = sum(max(0.0, di - margin) for di in d) / 2
    got = penalties.consistency_term(ScriptedCritic([f1, f2]), torch.zeros(2, 3), margin, 0.1, distance)
    assert got.item() == pytest.approx(expected)


def test_consistency_term_needs_dropout_and_vanishes_without_randomness():
    real = torch.randn(16, 2, generator=GEN)
    module = preset("wgan_ct", critic={"arch": "mlp", "hidden": [8], "dropout": 0.5}, **TINY)
    assert penalties.consistency_term(module.critic, real).item() > 0  # two different dropout masks
    module.critic.eval()
    assert penalties.consistency_term(module.critic, real).item() == 0.0  # same network twice
    with pytest.raises(
        ValueError, match=r"^model.critic.dropout=0.0 is invalid with model.regularizers=consistency_term"
    ):
        preset("wgan_ct", critic={"arch": "mlp", "hidden": [8]}, **TINY)
    ct = [{"name": "consistency_term", "distance": "l1"}]
    with pytest.raises(ValueError, match=r"^model.regularizers.distance='l1' is unknown; allowed: squared, euclidean$"):
        preset("wgan_ct", regularizers=ct, critic={"arch": "mlp", "dropout": 0.5}, **TINY)
