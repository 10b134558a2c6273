"""Weight clipping and spectral normalisation, checked on real Trainer runs and against hand-made
power iterations and measured Lipschitz constants."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from datamodules import Toy2DDataModule
from gan_modules.checkpoints import load_module
from gan_modules.compose import preset
from gan_modules.trainers import bare_trainer

TINY_G = {"arch": "mlp", "hidden": [16]}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)  # network initialisations use the global RNG: independent of test order


def fit(module, steps, callbacks=(), root=None):
    trainer = bare_trainer(steps, callbacks, default_root_dir=root)
    trainer.fit(module, Toy2DDataModule("ring8", size=1024, batch_size=64))
    return trainer


class ClipWatcher(L.Callback):
    """Largest |w| right after each critic optimizer step (before clipping) and whenever the critic
    is evaluated next (the following critic step or the generator step), i.e. after clipping."""

    def __init__(self) -> None:
        self.after_update: list[float] = []
        self.when_used: list[float] = []

    @staticmethod
    def _max_abs(module: nn.Module) -> float:
        return max(p.detach().abs().max().item() for p in module.parameters())

    def on_train_start(self, trainer, pl_module):
        d_opt = trainer.optimizers[0]
        d_opt.register_step_post_hook(lambda *_: self.after_update.append(self._max_abs(pl_module.critic)))
        pl_module.critic.register_forward_pre_hook(lambda net, _: self.when_used.append(self._max_abs(net)))


def test_every_critic_parameter_is_clipped_after_every_critic_step():
    c = 0.01
    module = preset("wgan", constraint={"name": "clip", "c": c}, n_critic=5, lr_d=1e-2, lr_g=1e-3, z_dim=2,
                    data_shape=(2,), generator=TINY_G, critic={"arch": "mlp", "hidden": [16, 16]})  # fmt: skip
    assert max(p.abs().max().item() for p in module.critic.parameters()) <= c  # Algorithm 1 starts clipped
    before = [p.detach().clone() for p in module.critic.parameters()]
    watcher = ClipWatcher()
    fit(module, 4, [watcher])
    assert len(watcher.after_update) == 20  # 4 generator x 5 critic steps
    assert len(watcher.when_used) >= 20
    assert max(watcher.after_update) > c  # RMSProp does leave the box...
    assert max(*watcher.when_used, ClipWatcher._max_abs(module.critic)) <= c  # ...and is back in before any use
    after = torch.cat([p.detach().flatten() for p in module.critic.parameters()])
    assert (after != torch.cat([b.flatten() for b in before])).float().mean() > 0.2  # the critic trained
    at_bound = torch.cat([(p.abs() == c).flatten() for p in module.critic.parameters()]).float().mean()
    assert at_bound > 0.2  # clipping is active, not vacuous


def sn_layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if parametrize.is_parametrized(m, "weight")]


def test_one_power_iteration_per_training_forward_with_persistent_u():
    """Miyato 2018, Algorithm 1: v <- W^T u / ||W^T u||, u <- W v / ||W v||, sigma = u^T W v."""
    module = preset("sngan", z_dim=2, data_shape=(2,), generator=TINY_G, critic={"arch": "mlp", "hidden": [6, 5]})
    layer = sn_layers(module.critic)[1]
    sn = layer.parametrizations.weight[0]
    w = layer.parametrizations.weight.original.detach()
    u_old = sn._u.clone()
    module.critic.train()
    module.critic(torch.randn(4, 2))
    v = F.normalize(w.T @ u_old, dim=0)
    u = F.normalize(w @ v, dim=0)
    assert torch.allclose(sn._u, u, atol=1e-6)  # exactly one iteration, continued from the stored u
    assert torch.allclose(layer.weight, w / (u @ w @ v), atol=1e-6)
    u_now = sn._u.clone()
    module.critic.eval()
    module.critic(torch.randn(4, 2))
    assert torch.equal(sn._u, u_now)  # evaluation leaves u alone


def test_spectral_norm_on_every_critic_layer_of_each_architecture():
    for spec, shape in (
        ({"arch": "mlp", "hidden": [8, 8]}, (2,)),
        ({"arch": "dcgan", "width": 8}, (1, 16, 16)),
        ({"arch": "resnet", "width": 8}, (3, 16, 16)),
    ):
        module = preset("sngan", z_dim=4, data_shape=shape, generator={"arch": "mlp", "hidden": [8]}, critic=spec)
        weights = [m for m in module.critic.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        assert len(weights) >= 3
        assert all(parametrize.is_parametrized(m, "weight") for m in weights), spec["arch"]
        assert not any(parametrize.is_parametrized(m, "weight") for m in module.generator.modules())


def lipschitz_estimate(critic: nn.Module, steps: int = 150) -> float:
    """Largest |f(x) - f(y)| / |x - y| over random pairs, then gradient ascent on that ratio from
    the 64 worst pairs (adversarial search), and the largest input-gradient norm seen."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(4096, 2, generator=gen) * 3, torch.randn(4096, 2, generator=gen) * 3

    def ratio(a, b):
        return (critic(a) - critic(b)).abs() / (a - b).norm(dim=1).clamp_min(1e-6)

    with torch.no_grad():
        best = ratio(x, y).max().item()
        idx = ratio(x, y).topk(64).indices
    a, b = x[idx].clone().requires_grad_(True), y[idx].clone().requires_grad_(True)
    opt = torch.optim.Adam([a, b], lr=0.05)
    for _ in range(steps):
        r = ratio(a, b)
        best = max(best, r.max().item())
        opt.zero_grad()
        (-r.sum()).backward()
        opt.step()
    pts = torch.cat([x, a.detach(), b.detach()]).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(pts).sum(), pts)
    return max(best, grad.norm(dim=1).max().item())


def test_sn_critic_is_1_lipschitz_after_training_and_u_survives_a_checkpoint(tmp_path):
    module = preset("sngan",
        loss="hinge", lr_d=2e-3, lr_g=1e-3, betas=(0.0, 0.9), z_dim=2, data_shape=(2,), generator=TINY_G,
        critic={"arch": "mlp", "hidden": [32, 32]},
    )  # fmt: skip
    u_init = [layer.parametrizations.weight[0]._u.clone() for layer in sn_layers(module.critic)]
    trainer = fit(module, 60)
    module.critic.eval()
    linears = sn_layers(module.critic)
    for layer in linears:  # each normalised weight's true largest singular value, by SVD:
        # one power iteration can only underestimate sigma (u^T W v <= sigma), never overshoot
        assert torch.linalg.matrix_norm(layer.weight.detach(), ord=2) > 0.999
    assert lipschitz_estimate(module.critic) <= 1.0 + 0.02

    # the estimator is sharp where the bound is tight: an SN linear critic has Lipschitz constant 1
    linear = preset("sngan", z_dim=2, data_shape=(2,), generator=TINY_G, critic={"arch": "mlp", "hidden": []})
    with torch.no_grad():
        linear.critic.head.parametrizations.weight.original.mul_(7.0)
        linear.critic.train()(torch.zeros(1, 2))
    assert lipschitz_estimate(linear.critic.eval(), steps=20) == pytest.approx(1.0, abs=1e-3)

    keys = [k for k in module.state_dict() if k.startswith("critic.") and k.endswith("._u")]
    assert len(keys) == len(linears) == 3
    for layer, u0 in zip(linears, u_init, strict=True):
        if len(u0) > 1:  # the 1-row head's u is just a sign
            assert not torch.allclose(layer.parametrizations.weight[0]._u, u0)  # u moved with training
    path = tmp_path / "sn.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_module(path)
    for key in keys:
        assert torch.equal(loaded.state_dict()[key], module.state_dict()[key])
    probe = torch.randn(32, 2)
    with torch.no_grad():
        assert torch.equal(loaded.critic(probe), module.critic(probe))
