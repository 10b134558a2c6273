"""Every variant trains on ring8 (real Lightning fits), and the tricks do what their papers say,
checked against hand computations: EMA, TTUR, feature matching, minibatch discrimination, EBGAN
pretraining."""

from __future__ import annotations

import copy
import math

import lightning as L
import pytest
import torch

from datamodules import Toy2DDataModule
from gan_modules import EBGAN, FGAN, GAN, LSGAN, NSGAN, SNGAN, VARIANTS, WGAN, WGANGP, LossSensitiveGAN
from gan_modules.losses import DIVERGENCES
from gan_modules.metrics.toy import exact_emd
from gan_modules.nets import MinibatchDiscrimination, build_critic
from gan_modules.nets.standing_stats import recompute_batchnorm_stats
from gan_modules.trainers import bare_trainer

MLP = {"arch": "mlp", "hidden": [64, 64]}
# Small-budget settings that make every variant move fast on ring8. They depart from the papers'
# defaults only in step sizes/weights (see configs/<variant>/ring8.yaml for those): Adam (0, 0.9)
# at 1e-3 avoids the beta1 = 0.5 oscillations a 150-step run cannot average out; lambda_GP = 0.1 is
# the toy value of WGAN-GP's gan_toy.py; DRAGAN gets TTUR and lambda = 1 (lambda = 10 converges too,
# in ~2x the steps); Loss-Sensitive GAN uses real_weight 0.1 (the paper's lambda = 10).
FAST = {"lr_g": 1e-3, "lr_d": 1e-3, "betas": (0.0, 0.9)}
RING8_SETTINGS: dict[str, tuple[dict, int]] = {
    "gan": ({}, 150),
    "ns_gan": ({}, 150),
    "lsgan": ({"a": -1.0, "b": 1.0, "c": 0.0}, 150),
    "wgan": ({"lr_g": 2e-3, "lr_d": 2e-3, "optimizer": "rmsprop", "n_critic": 5, "clip": 0.01}, 80),
    "wgan_gp": ({"gp_weight": 0.1, "n_critic": 2}, 80),
    "dragan": ({"lr_g": 2e-4, "lr_d": 2e-3, "penalty_weight": 1.0}, 150),
    "wgan_ct": ({"gp_weight": 0.1, "n_critic": 2, "critic": {**MLP, "dropout": 0.1}}, 80),
    "sngan": ({"loss": "hinge"}, 150),
    "ebgan": ({"margin": 0.5, "critic": {"hidden": [64, 64], "code_dim": 8}}, 150),
    "loss_sensitive_gan": ({"real_weight": 0.1}, 150),
    "fgan": ({"divergence": "js"}, 150),
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)  # network initialisations use the global RNG: independent of test order


def fit(module, steps: int | None = None, callbacks=(), dm=None, **trainer_kwargs):
    trainer = bare_trainer(
        -1 if steps is None else steps,
        callbacks,
        **trainer_kwargs,
    )
    trainer.fit(module, dm or Toy2DDataModule("ring8", size=4096, batch_size=128))
    return trainer


def ring8_run(name: str) -> tuple[float, float]:
    """EMD (exact, POT) between 500 generated and 500 real points, before and after training."""
    overrides, steps = RING8_SETTINGS[name]
    kwargs = {**FAST, "critic": MLP, **overrides}
    torch.manual_seed(0)
    module = VARIANTS[name](z_dim=2, data_shape=(2,), generator=MLP, **kwargs)
    dm = Toy2DDataModule("ring8", size=4096, batch_size=128)
    real = dm.real_samples(500, seed=1)
    before = exact_emd(module.sample(500, seed=2), real)
    fit(module, steps, dm=dm)
    after = module.sample(500, seed=2)
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert torch.isfinite(after).all()
    return before, exact_emd(after, real)


def test_every_variant_has_ring8_settings():
    assert set(RING8_SETTINGS) == set(VARIANTS)


@pytest.mark.parametrize("name", sorted(RING8_SETTINGS))
def test_variant_trains_on_ring8_towards_the_data(name):
    before, after = ring8_run(name)
    # the initial generator is a small blob near the centre (EMD ~0.9); a generator collapsed on one
    # mode scores ~1.26, so a 20% drop means the samples really spread towards the ring
    assert after < 0.8 * before, (name, before, after)


@pytest.mark.parametrize("divergence", sorted(DIVERGENCES))
def test_every_f_divergence_trains_without_nan(divergence):
    module = FGAN(divergence=divergence, z_dim=2, data_shape=(2,), generator=MLP, critic=MLP, **FAST)
    fit(module, 30)  # the engine raises NonFiniteLossError on a NaN/Inf loss
    assert all(torch.isfinite(p).all() for p in module.parameters())


# ------------------------------------------------------------------------------------------ tricks
TINY = {"z_dim": 2, "data_shape": (2,), "generator": {"arch": "mlp", "hidden": [16]}}


def flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_ttur_gives_each_network_its_own_learning_rate():
    """Heusel et al. 2017: separate rates. Adam's first update moves every parameter with a
    non-negligible gradient by exactly lr * sign(g), so each network's step size reveals its rate."""
    module = NSGAN(lr_d=4e-4, lr_g=1e-4, critic={"arch": "mlp", "hidden": [16]}, **TINY)
    d0, g0 = flat(module.critic), flat(module.generator)
    trainer = fit(module, 1)  # one critic step and one generator step
    d_opt, g_opt = trainer.optimizers
    assert {id(p) for p in d_opt.param_groups[0]["params"]} == {id(p) for p in module.critic.parameters()}
    assert {id(p) for p in g_opt.param_groups[0]["params"]} == {id(p) for p in module.generator.parameters()}
    assert (d_opt.param_groups[0]["lr"], g_opt.param_groups[0]["lr"]) == (4e-4, 1e-4)
    for delta, lr in (((flat(module.critic) - d0).abs(), 4e-4), ((flat(module.generator) - g0).abs(), 1e-4)):
        moved = delta[delta > 0]
        assert delta.max().item() == pytest.approx(lr, rel=1e-3)
        assert (moved > 0.9 * lr).float().mean() > 0.9


class GeneratorSnapshots(L.Callback):
    """The generator's weights after each generator step."""

    def __init__(self) -> None:
        self.snapshots: list[list[torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, *_):
        if trainer.global_step > len(self.snapshots):
            self.snapshots.append([p.detach().clone() for p in pl_module.generator.parameters()])


def test_ema_generator_is_the_exponential_moving_average_of_the_generator():
    module = NSGAN(ema_decay=0.9, critic={"arch": "mlp", "hidden": [16]}, **TINY)
    ema = [p.detach().clone() for p in module.generator.parameters()]  # starts as a copy
    snaps = GeneratorSnapshots()
    fit(module, 6, [snaps])
    assert len(snaps.snapshots) == 6
    for snapshot in snaps.snapshots:
        ema = [0.9 * e + 0.1 * p for e, p in zip(ema, snapshot, strict=True)]
    for mine, theirs in zip(ema, module.generator_ema.parameters(), strict=True):
        assert torch.allclose(mine, theirs, atol=1e-7)
    assert not torch.allclose(flat(module.generator_ema), flat(module.generator))
    z = torch.randn(8, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(module.sample(8, seed=3), module.generator_ema(z))  # sampling uses the EMA


def test_feature_matching_loss_and_its_gradient_reaches_the_generator():
    module = GAN(feature_matching=True, critic={"arch": "mlp", "hidden": [16]}, **TINY)
    real, z = torch.randn(32, 2), torch.randn(32, 2)
    fake = module.generator(z)
    loss, _ = module.generator_loss(fake, real)
    expected = (module.critic.features(real).mean(0) - module.critic.features(fake).mean(0)).pow(2).sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    grads = torch.autograd.grad(loss, list(module.generator.parameters()))
    assert all(g.abs().sum() > 0 for g in grads)
    g0 = flat(module.generator)
    fit(module, 3)
    assert not torch.equal(flat(module.generator), g0)


def test_minibatch_discrimination_matches_a_naive_loop():
    """Salimans et al. 2016, Sec. 3.2: o(x_i)_b = sum_{j != i} exp(-||M_{i,b} - M_{j,b}||_1)."""
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(in_features=6, num_kernels=4, kernel_dim=3).double()
    f = torch.randn(5, 6, dtype=torch.float64)
    m = (f @ layer.T).view(5, 4, 3)
    expected = torch.zeros(5, 4, dtype=torch.float64)
    for i in range(5):
        for b in range(4):
            for j in range(5):
                if j != i:
                    expected[i, b] += math.exp(-(m[i, b] - m[j, b]).abs().sum().item())
    out = layer(f)
    assert torch.equal(out[:, :6], f)
    assert torch.allclose(out[:, 6:], expected, rtol=1e-12)


def test_minibatch_discrimination_makes_a_score_depend_on_the_rest_of_the_batch():
    critic = build_critic({"arch": "mlp", "hidden": [8], "minibatch_kernels": 5}, (2,))
    x = torch.randn(6, 2)
    other = x.clone()
    other[1:] += 3.0
    assert not torch.allclose(critic(x)[0], critic(other)[0])
    plain = build_critic({"arch": "mlp", "hidden": [8]}, (2,))
    assert torch.allclose(plain(x)[0], plain(other)[0])
    module = NSGAN(critic={"arch": "mlp", "hidden": [16], "minibatch_kernels": 5}, **TINY)
    fit(module, 3)  # trains end to end


def test_label_smoothing_reaches_the_critic_loss():
    module = GAN(real_label=0.9, critic={"arch": "mlp", "hidden": [16]}, **TINY)
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    s_real, s_fake = module.critic(real), module.critic(fake)
    expected = (
        -(0.9 * torch.log(torch.sigmoid(s_real)) + 0.1 * torch.log(1 - torch.sigmoid(s_real))).mean()
        - torch.log(1 - torch.sigmoid(s_fake)).mean()
    )
    assert module.critic_loss(real, fake)[0].item() == pytest.approx(expected.item(), rel=1e-5)


def test_wgan_critic_scores_are_raw():
    module = WGAN(critic={"arch": "mlp", "hidden": [16]}, **TINY)
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    expected = module.critic(fake).mean() - module.critic(real).mean()  # no sigmoid anywhere
    assert module.critic_loss(real, fake)[0].item() == pytest.approx(expected.item(), rel=1e-6)
    assert (module.hparams.optimizer, module.hparams.lr_d, module.hparams.n_critic, module.clip) == (
        "rmsprop",
        5e-5,
        5,
        0.01,
    )  # Arjovsky et al. 2017, Algorithm 1 defaults
    gp = WGANGP(critic={"arch": "mlp", "hidden": [16]}, **TINY)
    assert (gp.gp_weight, gp.hparams.lr_d, tuple(gp.hparams.betas), gp.hparams.n_critic) == (10.0, 1e-4, (0, 0.9), 5)


def test_ebgan_pretraining_lowers_real_reconstruction_error_without_generator_steps():
    module = EBGAN(pretrain_steps=60, lr_d=2e-3, critic={"hidden": [32, 32], "code_dim": 4}, **TINY)
    dm = Toy2DDataModule("ring8", size=2048, batch_size=64)
    real = dm.real_samples(512, seed=5)
    with torch.no_grad():
        before = module.critic(real).mean().item()
    g0 = flat(module.generator)
    trainer = fit(module, dm=dm, max_epochs=1, limit_train_batches=60)
    with torch.no_grad():
        after = module.critic(real).mean().item()
    assert after < 0.3 * before
    assert trainer.global_step == 0 and torch.equal(flat(module.generator), g0)
    assert int(module.pretrain_done) == 60 == module.real_batches_consumed
    trainer = fit(module, 3, dm=dm)  # adversarial training follows; pretraining is not repeated
    assert trainer.global_step == 3 and int(module.pretrain_done) == 60
    assert module.real_batches_consumed == 63


def test_lsgan_loss_sensitive_and_sngan_defaults_are_the_papers():
    assert (LSGAN(**TINY).a, LSGAN(**TINY).b, LSGAN(**TINY).c) == (0.0, 1.0, 1.0)  # Mao 2017, Eq. 9
    ls = LossSensitiveGAN(**TINY)
    assert (ls.real_weight, ls.delta_scale) == (1.0, 1.0)
    assert SNGAN(**TINY)._critic_loss.__name__ == "hinge_critic_loss"
    assert EBGAN(**TINY).pt_weight == 0.1  # Zhao et al. 2017, Sec. 2.4 experiments


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (GAN, {"real_label": 0.3}, "model.real_label=0.3 is invalid; allowed: a float in (0.5, 1]"),
        (LSGAN, {"a": 1.0, "b": 1.0}, "model.a=1.0 is invalid; allowed: a value different from model.b=1.0"),
        (WGAN, {"clip": 0.0}, "model.clip=0.0 is invalid; allowed: a float > 0"),
        (WGANGP, {"gp_weight": -1.0}, "model.gp_weight=-1.0 is invalid; allowed: a float >= 0"),
        (SNGAN, {"loss": "bce"}, "model.loss='bce' is unknown; allowed: minimax, non_saturating"),
        (EBGAN, {"critic": {"arch": "mlp"}}, "model.critic.arch='mlp' is invalid; allowed: autoencoder"),
        (EBGAN, {"margin": 0.0}, "model.margin=0.0 is invalid; allowed: a float > 0"),
        (LossSensitiveGAN, {"delta_scale": 0.0}, "model.delta_scale=0.0 is invalid; allowed: a float > 0"),
        (LossSensitiveGAN, {"loss_activation": "exp"}, "model.loss_activation='exp' is invalid; allowed: relu"),
        (FGAN, {"divergence": "tv"}, "model.divergence='tv' is unknown; allowed: kl, reverse_kl"),
    ],
)
def test_bad_settings_fail_with_one_line_naming_the_key(cls, kwargs, message):
    with pytest.raises(ValueError) as err:
        cls(**{**TINY, **kwargs})
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_standing_stats_equal_the_analytic_moments_of_a_linear_layer_on_gaussian_noise(monkeypatch):
    # BatchNorm after Linear(z) with z ~ N(0, I): the input has mean b and variance sum_j W_ij^2
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    gen = torch.Generator().manual_seed(1)
    recompute_batchnorm_stats(net, lambda n: torch.randn(n, 4, generator=gen), batches=64, batch_size=512)
    bn, lin = net[1], net[0]
    variance = lin.weight.detach().pow(2).sum(1)
    # 32,768 draws: standard errors ~ sqrt(var / N) for the mean and ~ var * sqrt(2 / N) for the variance
    assert torch.allclose(bn.running_mean, lin.bias.detach(), atol=5 * (variance / 32768).sqrt().max())
    assert torch.allclose(bn.running_var, variance, rtol=5 * (2 / 32768) ** 0.5)
    assert "forward" not in vars(bn)  # the temporary batch-statistics forward is gone

    # SyncBatchNorm (DDP's sync_batchnorm) gets the same statistics without any collective: with a
    # process group "initialised" its own forward would sync, so this fails if that forward were called
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(net))  # shares nothing with net
    synced[1].reset_running_stats()
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)  # as under DDP
    with pytest.raises(ValueError):
        synced.train()(torch.randn(8, 4))  # SyncBatchNorm's own forward would sync (and needs a GPU)
    gen.manual_seed(1)
    recompute_batchnorm_stats(synced, lambda n: torch.randn(n, 4, generator=gen), batches=64, batch_size=512)
    assert torch.equal(synced[1].running_mean, bn.running_mean) and torch.equal(synced[1].running_var, bn.running_var)


def test_ema_generator_with_batchnorm_samples_with_its_own_standing_statistics():
    nets = {"generator": {"arch": "mlp", "hidden": [16], "batch_norm": True}, "critic": {"arch": "mlp", "hidden": [16]}}
    module = NSGAN(ema_decay=0.9, z_dim=2, **nets)
    fit(module, 6)
    raw_stats = [b.clone() for b in module.generator.buffers()]
    first = module.sample(64, seed=3)
    layers = [m for m in module.generator_ema.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    # the EMA's statistics are the moments of its own first layer on fresh noise, not the raw generator's
    first_linear = next(m for m in module.generator_ema.modules() if isinstance(m, torch.nn.Linear))
    z = torch.randn(8192, 2, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        pre = first_linear(z)
    assert torch.allclose(layers[0].running_mean, pre.mean(0), atol=0.05 * pre.std(0).max())
    assert not torch.allclose(layers[0].running_mean, next(module.generator.buffers()))
    assert all(torch.equal(a, b) for a, b in zip(raw_stats, module.generator.buffers(), strict=True))
    assert torch.equal(module.sample(64, seed=3), first)  # deterministic, computed once per iteration
