"""Every preset trains on ring8 (real Lightning fits), composed objectives train on grid25 from
configuration alone (`gan-lab fit`), a lazy regulariser is the hand-computed update, refused
combinations fail in one line, and the tricks do what their papers say, checked against hand
computations: EMA, TTUR, feature matching, minibatch discrimination, EBGAN pretraining."""

from __future__ import annotations

import copy
import inspect
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import fit_yaml

from datamodules import Toy2DDataModule
from gan_modules import AdversarialModule
from gan_modules.checkpoints import load_module
from gan_modules.cli import main
from gan_modules.compose import preset, presets
from gan_modules.losses import DIVERGENCES
from gan_modules.metrics.toy import exact_emd
from gan_modules.nets import MinibatchDiscrimination, build_critic
from gan_modules.nets.standing_stats import recompute_batchnorm_stats
from gan_modules.objective import LOSSES
from gan_modules.trainers import bare_trainer

SCRIPTS = Path(__file__).parent / "scripts"
MLP = {"arch": "mlp", "hidden": [64, 64]}
GP = {"name": "gradient_penalty", "weight": 0.1}
# Small-budget settings that make every preset move fast on ring8. They depart from the papers'
# values only in step sizes/weights (see configs/model/<preset>.yaml for those): Adam (0, 0.9)
# at 1e-3 avoids the beta1 = 0.5 oscillations a 150-step run cannot average out; lambda_GP = 0.1 is
# the toy value of WGAN-GP's gan_toy.py; DRAGAN gets TTUR and lambda = 1 (lambda = 10 converges too,
# in ~2x the steps); Loss-Sensitive GAN uses real_weight 0.1 (the paper's lambda = 10) and
# delta_scale 1 (the former class's value; the preset's 2e-4 is for 64x64x3 images).
FAST = {"lr_g": 1e-3, "lr_d": 1e-3, "betas": (0.0, 0.9)}
RING8_SETTINGS: dict[str, tuple[dict, int]] = {
    "gan": ({}, 150),
    "ns_gan": ({}, 150),
    "lsgan": ({"loss": {"name": "least_squares", "a": -1.0, "b": 1.0, "c": 0.0}}, 150),
    "wgan": (
        {"lr_g": 2e-3, "lr_d": 2e-3, "optimizer": "rmsprop", "n_critic": 5, "constraint": {"name": "clip", "c": 0.01}},
        80,
    ),
    "wgan_gp": ({"regularizers": [GP], "n_critic": 2}, 80),
    "dragan": ({"lr_g": 2e-4, "lr_d": 2e-3, "regularizers": [{"name": "dragan", "weight": 1.0}]}, 150),
    "wgan_ct": (
        {
            "regularizers": [GP, {"name": "consistency_term", "weight": 2.0}],
            "n_critic": 2,
            "critic": {**MLP, "dropout": 0.1},
        },
        80,
    ),
    "sngan": ({"loss": "hinge"}, 150),
    "acgan": ({"num_classes": 8}, 150),  # conditional on ring8's 8 components
    "ebgan": (
        {
            "loss": {"name": "ebgan", "margin": 0.5},
            "critic": {"arch": "autoencoder", "hidden": [64, 64], "code_dim": 8},
        },
        150,
    ),
    "loss_sensitive_gan": (
        {"loss": {"name": "loss_sensitive", "real_weight": 0.1, "delta_scale": 1.0, "activation": "softplus"}},
        150,
    ),
    "fgan": ({"loss": {"name": "fgan", "divergence": "js"}}, 150),
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
    module = preset(name, z_dim=2, data_shape=(2,), generator=MLP, **kwargs)
    dm = Toy2DDataModule("ring8", size=4096, batch_size=128)
    real = dm.real_samples(500, seed=1)
    before = exact_emd(module.sample(500, seed=2), real)
    fit(module, steps, dm=dm)
    after = module.sample(500, seed=2)
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert torch.isfinite(after).all()
    return before, exact_emd(after, real)


def test_every_preset_has_ring8_settings():
    assert set(RING8_SETTINGS) == set(presets())


@pytest.mark.parametrize("name", sorted(RING8_SETTINGS))
def test_preset_trains_on_ring8_towards_the_data(name):
    before, after = ring8_run(name)
    # the initial generator is a small blob near the centre (EMD ~0.9); a generator collapsed on one
    # mode scores ~1.26, so a 20% drop means the samples really spread towards the ring
    assert after < 0.8 * before, (name, before, after)


@pytest.mark.parametrize("divergence", sorted(DIVERGENCES))
def test_every_f_divergence_trains_without_nan(divergence):
    loss = {"name": "fgan", "divergence": divergence}
    module = preset("fgan", loss=loss, z_dim=2, data_shape=(2,), generator=MLP, critic=MLP, **FAST)
    fit(module, 30)  # the engine raises NonFiniteLossError on a NaN/Inf loss
    assert all(torch.isfinite(p).all() for p in module.parameters())


# ------------------------------------------------------------------------------------------ tricks
TINY = {"z_dim": 2, "data_shape": (2,), "generator": {"arch": "mlp", "hidden": [16]}}


def flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_ttur_gives_each_network_its_own_learning_rate():
    """Heusel et al. 2017: separate rates. Adam's first update moves every parameter with a
    non-negligible gradient by exactly lr * sign(g), so each network's step size reveals its rate."""
    module = AdversarialModule(lr_d=4e-4, lr_g=1e-4, critic={"arch": "mlp", "hidden": [16]}, **TINY)
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
    module = AdversarialModule(ema_decay=0.9, critic={"arch": "mlp", "hidden": [16]}, **TINY)
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
    feature_matching = {"generator_terms": [{"name": "feature_matching"}], "generator_adversarial_weight": 0.0}
    module = AdversarialModule(loss="minimax", **feature_matching, critic={"arch": "mlp", "hidden": [16]}, **TINY)
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


@pytest.mark.parametrize("compiled", [False, True], ids=["cdist", "compiled"])
def test_minibatch_discrimination_matches_a_naive_loop(compiled):
    """Salimans et al. 2016, Sec. 3.2: o(x_i)_b = sum_{j != i} exp(-||M_{i,b} - M_{j,b}||_1), from
    aten's cdist or from the kernels torch.compile fuses (`minibatch_compile`)."""
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(in_features=6, num_kernels=4, kernel_dim=3, compiled=compiled).double()
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

    # its gradients w.r.t. the features and the tensor T against finite differences (both backwards
    # take the symmetrised gradient of the distances once)
    def with_weights(f: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, {"T": weights}, (f,))

    assert torch.autograd.gradcheck(with_weights, (f.requires_grad_(), layer.T.detach().clone().requires_grad_()))
    # under bf16 autocast the similarities are taken in float32 from the bf16 kernels, as autocast runs cdist
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = layer.float()(f.detach().float())
    m16 = (f.detach().bfloat16() @ layer.T.detach().bfloat16()).float().view(5, 4, 3)  # autocast's bf16 matmul
    by_hand = torch.exp(-(m16[:, None] - m16[None]).abs().sum(-1)).sum(1) - 1.0
    assert low.dtype == torch.float32
    torch.testing.assert_close(low[:, 6:], by_hand, rtol=1e-6, atol=1e-6)


def test_minibatch_discrimination_makes_a_score_depend_on_the_rest_of_the_batch():
    critic = build_critic({"arch": "mlp", "hidden": [8], "minibatch_kernels": 5}, (2,))
    x = torch.randn(6, 2)
    other = x.clone()
    other[1:] += 3.0
    assert not torch.allclose(critic(x)[0], critic(other)[0])
    plain = build_critic({"arch": "mlp", "hidden": [8]}, (2,))
    assert torch.allclose(plain(x)[0], plain(other)[0])
    module = AdversarialModule(critic={"arch": "mlp", "hidden": [16], "minibatch_kernels": 5}, **TINY)
    fit(module, 3)  # trains end to end


def test_minibatch_compile_trains_as_the_eager_layer_and_names_a_missing_compiler(monkeypatch):
    """`minibatch_compile: true` swaps the kernels, not the model: the same seed trains to the same
    weights as the cdist layer; without a C++ compiler the option is refused when the critic is built."""
    spec = {"arch": "mlp", "hidden": [16], "minibatch_kernels": 5}
    trained = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        module = AdversarialModule(critic={**spec, "minibatch_compile": compiled}, seed=0, **TINY)
        assert module.critic.minibatch.compiled is compiled
        initial = flat(module.critic)
        fit(module, 3)
        trained[compiled] = flat(module.critic)
        assert not torch.allclose(trained[compiled], initial, atol=1e-4)  # the steps moved it
    torch.testing.assert_close(trained[True], trained[False], rtol=1e-4, atol=1e-5)
    from torch._inductor import config

    monkeypatch.setattr(config.cpp, "cxx", (None, "no-such-compiler++"))
    with pytest.raises(ValueError, match=r"^model\.critic\.minibatch_compile=true needs the C\+\+ compiler") as err:
        build_critic({**spec, "minibatch_compile": True}, (2,))
    assert "no-such-compiler++" in str(err.value)
    assert str(err.value).endswith("allowed: false, or install g++ / set $CXX")


def test_label_smoothing_reaches_the_critic_loss():
    module = AdversarialModule(
        loss={"name": "minimax", "real_label": 0.9}, critic={"arch": "mlp", "hidden": [16]}, **TINY
    )
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    s_real, s_fake = module.critic(real), module.critic(fake)
    expected = (
        -(0.9 * torch.log(torch.sigmoid(s_real)) + 0.1 * torch.log(1 - torch.sigmoid(s_real))).mean()
        - torch.log(1 - torch.sigmoid(s_fake)).mean()
    )
    assert module.critic_loss(real, fake)[0].item() == pytest.approx(expected.item(), rel=1e-5)


def test_wgan_critic_scores_are_raw():
    module = preset("wgan", critic={"arch": "mlp", "hidden": [16]}, **TINY)
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    expected = module.critic(fake).mean() - module.critic(real).mean()  # no sigmoid anywhere
    assert module.critic_loss(real, fake)[0].item() == pytest.approx(expected.item(), rel=1e-6)
    hp = module.hparams
    assert (hp.optimizer, hp.lr_d, hp.n_critic, hp.constraint) == ("rmsprop", 5e-5, 5, {"name": "clip", "c": 0.01})
    # Arjovsky et al. 2017, Algorithm 1 values; WGAN-GP: Gulrajani et al. 2017, Algorithm 1 (lambda, lr,
    # n_critic) with beta1 0.5 of the authors' gan_toy.py / gan_mnist.py
    gp = preset("wgan_gp", critic={"arch": "mlp", "hidden": [16]}, **TINY).hparams
    assert (gp.regularizers[0]["weight"], gp.lr_d, tuple(gp.betas), gp.n_critic) == (10.0, 1e-4, (0.5, 0.9), 5)


def test_ebgan_pretraining_lowers_real_reconstruction_error_without_generator_steps():
    critic = {"arch": "autoencoder", "hidden": [32, 32], "code_dim": 4}
    module = preset("ebgan", critic_pretrain_steps=60, lr_d=2e-3, critic=critic, **TINY)
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
    assert module.real_batches_consumed == 60
    trainer = fit(module, 3, dm=dm)  # adversarial training follows; pretraining is not repeated
    assert trainer.global_step == 3
    assert module.real_batches_consumed == 63


def test_lsgan_loss_sensitive_sngan_and_ebgan_values_are_the_papers():
    lsgan = preset("lsgan", **TINY).hparams.loss
    assert (lsgan["a"], lsgan["b"], lsgan["c"]) == (0.0, 1.0, 1.0)  # Mao 2017, Eq. 9
    defaults = {k: v.default for k, v in inspect.signature(LOSSES.factory("loss_sensitive")).parameters.items()}
    assert (defaults["real_weight"], defaults["delta_scale"]) == (1.0, 1.0)  # Qi 2017's objective, lambda = 1
    assert preset("sngan", **TINY).hparams.loss == "hinge"  # Miyato et al. 2018, Eq. 16-17
    ebgan = preset("ebgan", **TINY).hparams
    assert ebgan.generator_terms == [{"name": "pulling_away", "weight": 0.1}]  # Zhao et al. 2017, Sec. 2.4


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        (
            "gan",
            {"loss": {"name": "minimax", "real_label": 0.3}},
            "model.loss.real_label=0.3 is invalid; allowed: a float in (0.5, 1]",
        ),
        (
            "lsgan",
            {"loss": {"name": "least_squares", "a": 1.0, "b": 1.0}},
            "model.loss.a=1.0 is invalid; allowed: a value different from model.loss.b=1.0",
        ),
        ("wgan", {"constraint": {"name": "clip", "c": 0.0}}, "model.constraint.c=0.0 is invalid; allowed: a float > 0"),
        (
            "wgan_gp",
            {"regularizers": [{"name": "gradient_penalty", "weight": -1.0}]},
            "model.regularizers.weight=-1.0 is invalid for gradient_penalty; allowed: a float >= 0",
        ),
        ("sngan", {"loss": "bce"}, "model.loss='bce' is unknown; allowed: minimax, non_saturating"),
        ("ebgan", {"loss": {"name": "ebgan", "margin": 0.0}}, "model.loss.margin=0.0 is invalid; allowed: a float > 0"),
        (
            "loss_sensitive_gan",
            {"loss": {"name": "loss_sensitive", "delta_scale": 0.0}},
            "model.loss.delta_scale=0.0 is invalid; allowed: a float > 0",
        ),
        (
            "loss_sensitive_gan",
            {"loss": {"name": "loss_sensitive", "activation": "exp"}},
            "model.loss.activation='exp' is unknown; allowed: relu",
        ),
        (
            "fgan",
            {"loss": {"name": "fgan", "divergence": "tv"}},
            "model.loss.divergence='tv' is unknown; allowed: kl, reverse_kl",
        ),
    ],
)
def test_bad_settings_fail_with_one_line_naming_the_key(name, kwargs, message):
    with pytest.raises(ValueError) as err:
        preset(name, **{**TINY, **kwargs})
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


DCGAN = {"arch": "dcgan", "width": 4}
REFUSED = {  # (module kwargs, the line's start): each names both settings that cannot go together
    "ebgan_mlp_critic": (
        {"loss": "ebgan", "critic": {"arch": "mlp"}},
        "model.loss=ebgan is invalid with model.critic.arch='mlp'; allowed: model.critic.arch=autoencoder",
    ),
    "pulling_away_mlp_critic": (
        {"generator_terms": [{"name": "pulling_away", "weight": 0.1}], "critic": {"arch": "mlp"}},
        "model.generator_terms=pulling_away is invalid with model.critic.arch='mlp'; allowed: "
        "model.critic.arch=autoencoder",
    ),
    "gradient_penalty_batch_norm": (
        {"regularizers": [{"name": "gradient_penalty", "weight": 10}], "critic": {**DCGAN, "norm": "batch"}},
        "model.regularizers=gradient_penalty is invalid with model.critic.norm='batch'",
    ),
    "r1_minibatch_discrimination": (
        {"regularizers": [{"name": "r1", "weight": 10}], "critic": {"arch": "mlp", "minibatch_kernels": 5}},
        "model.regularizers=r1 is invalid with model.critic.minibatch_kernels=5",
    ),
    "consistency_term_without_dropout": (
        {"regularizers": [{"name": "consistency_term", "weight": 2}], "critic": {"arch": "mlp"}},
        "model.critic.dropout=0.0 is invalid with model.regularizers=consistency_term; allowed: a float > 0",
    ),
    "two_lazy_intervals": (
        {"regularizers": [{"name": "r1", "weight": 5, "every": 16}, {"name": "r2", "weight": 5, "every": 8}]},
        "model.regularizers every=[8, 16] is invalid; allowed: one interval for all lazy regularisers",
    ),
    "pretraining_without_pretrain_loss": (
        {"loss": "hinge", "critic_pretrain_steps": 5},
        "model.critic_pretrain_steps=5 is invalid; allowed: 0 with model.loss='hinge'",
    ),
    "unknown_loss_option": (
        {"loss": {"name": "hinge", "foo": 1}},
        "model.loss.foo is not an option of the hinge loss; allowed: none",
    ),
    "unknown_loss_option_lists_the_options": (
        {"loss": {"name": "least_squares", "foo": 1}},
        "model.loss.foo is not an option of the least_squares loss; allowed: a, b, c",
    ),
    "unknown_regularizer": (
        {"regularizers": [{"name": "r3", "weight": 1}]},
        "model.regularizers='r3' is unknown; allowed: gradient_penalty, dragan, consistency_term, r1, r2",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_combination_fails_in_one_line_naming_both_settings(case):
    kwargs, message = REFUSED[case]
    shape = (1, 16, 16) if kwargs.get("critic", {}).get("arch") == "dcgan" else (2,)
    generator = DCGAN if len(shape) == 3 else {"arch": "mlp", "hidden": [8]}
    with pytest.raises(ValueError) as err:
        AdversarialModule(**{"data_shape": shape, "z_dim": 2, "generator": generator, **kwargs})
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_standing_stats_equal_the_analytic_moments_of_a_linear_layer_on_gaussian_noise(monkeypatch):
    # BatchNorm after Linear(z) with z ~ N(0, I): the input has mean b and variance sum_j W_ij^2
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    gen = torch.Generator().manual_seed(1)
    recompute_batchnorm_stats(net, lambda n: (torch.randn(n, 4, generator=gen),), batches=64, batch_size=512)
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
    recompute_batchnorm_stats(synced, lambda n: (torch.randn(n, 4, generator=gen),), batches=64, batch_size=512)
    assert torch.equal(synced[1].running_mean, bn.running_mean) and torch.equal(synced[1].running_var, bn.running_var)


def test_ema_generator_with_batchnorm_samples_with_its_own_standing_statistics():
    nets = {"generator": {"arch": "mlp", "hidden": [16], "batch_norm": True}, "critic": {"arch": "mlp", "hidden": [16]}}
    module = AdversarialModule(ema_decay=0.9, z_dim=2, **nets)
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


# ---------------------------------------------------------- composed objectives, from config alone
GRID25_OBJECTIVES = {
    # Miyato et al. 2018 with a gradient penalty on top (no former class composed these)
    "hinge_gp_sn": {
        "loss": "hinge",
        "regularizers": [{"name": "gradient_penalty", "weight": 1.0}],
        "constraint": "spectral_norm",
    },
    # lazy R1 as in StyleGAN2: gamma = 10 -> weight 5, every 16th critic step
    "ns_lazy_r1": {"loss": "non_saturating", "regularizers": [{"name": "r1", "weight": 5, "every": 16}]},
}


@pytest.mark.parametrize("objective", sorted(GRID25_OBJECTIVES))
def test_composed_objective_trains_on_grid25_from_configuration_alone(objective, tmp_path, monkeypatch):
    """A real `gan-lab fit` of a YAML config: the generator ends closer to grid25 (exact EMD, POT)
    than it started; its starting weights are those `ddp_probe.RankDump` saved at the start of training."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    root = tmp_path / "run"
    nets = {"generator": MLP, "critic": MLP, "z_dim": 2, "n_critic": 1, **FAST}
    config = fit_yaml(
        tmp_path,
        trainer={"max_steps": 300, "default_root_dir": str(root), "callbacks": [{"class_path": "ddp_probe.RankDump"}]},
        checkpoint={"every_n_train_steps": 300},
        image_grid={"every_n_steps": 300},
        model={"init_args": {**GRID25_OBJECTIVES[objective], **nets}},
        data={"init_args": {"dataset": "grid25", "size": 4096, "batch_size": 128}},
    )
    assert main(["fit", "--config", str(config)]) == 0
    last = root / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 300
    trained = load_module(last)
    start = copy.deepcopy(trained)
    start.load_state_dict(torch.load(root / "rank_dump" / "rank0.pt", weights_only=False)["start"])
    real = Toy2DDataModule("grid25", size=4096).real_samples(500, seed=1)
    before, after = exact_emd(start.sample(500, seed=2), real), exact_emd(trained.sample(500, seed=2), real)
    assert all(torch.isfinite(p).all() for p in trained.parameters())
    assert after < 0.7 * before, (objective, before, after)


# ------------------------------------------------------------------- a lazy regulariser, by hand
class CriticSteps(L.Callback):
    """Every critic optimiser step: the weights and gradients it started from and the weights after."""

    def __init__(self) -> None:
        self.steps: list[dict] = []

    def on_train_start(self, trainer, pl_module):
        opt = trainer.optimizers[0]
        snap = lambda: [p.detach().clone() for p in pl_module.critic.parameters()]  # noqa: E731

        # no gradient (None: R1 does not depend on the output bias) counts as zero; SGD leaves it alone
        def grads():
            return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in pl_module.critic.parameters()]

        opt.register_step_pre_hook(lambda *_: self.steps.append({"before": snap(), "grad": grads()}))
        opt.register_step_post_hook(lambda *_: self.steps[-1].update(after=snap()))


def hand_r1(critic: torch.nn.Module, real: torch.Tensor) -> torch.Tensor:
    """R1 = E ||grad_x D(x)||^2 on the real batch (Mescheder et al. 2018, Eq. 9), written out."""
    x = real.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.pow(2).sum(1).mean()


@pytest.mark.parametrize("k", [1, 3])
def test_lazy_regulariser_is_an_extra_critic_step_on_k_times_its_weight(k, monkeypatch):
    """every=k, weight w: after each k-th critic step one more SGD step on k * w * R1 of that step's
    real batch, at lr * k / (k + 1); no such step otherwise (k = 1: R1 is eager, inside the Dmain loss)."""
    w, lr, iterations = 2.0, 0.05, 7
    module = AdversarialModule(
        loss="non_saturating",
        regularizers=[{"name": "r1", "weight": w, "every": k}],
        optimizer="sgd",
        lr_d=lr,
        n_critic=1,
        critic={"arch": "mlp", "hidden": [8]},
        **TINY,
    )
    reals: list[torch.Tensor] = []
    critic_loss = module.critic_loss
    monkeypatch.setattr(
        module, "critic_loss", lambda real, fake, y: (reals.append(real.clone()), critic_loss(real, fake, y))[1]
    )
    steps = CriticSteps()
    fit(module, iterations, [steps], dm=Toy2DDataModule("ring8", size=512, batch_size=16))
    lazy = k > 1
    assert len(reals) == iterations
    assert len(steps.steps) == iterations + (iterations // k if lazy else 0)  # steps 3 and 6 have a Dreg phase
    effective_lr = lr * k / (k + 1) if lazy else lr
    i = 0
    for j, real in enumerate(reals, start=1):
        main_step = steps.steps[i]
        for before, grad, after in zip(main_step["before"], main_step["grad"], main_step["after"], strict=True):
            torch.testing.assert_close(after, before - effective_lr * grad)  # plain SGD, nothing else
        i += 1
        if not (lazy and j % k == 0):
            continue
        reg = steps.steps[i]  # the Dreg phase starts from the Dmain step's result
        assert all(torch.equal(a, b) for a, b in zip(main_step["after"], reg["before"], strict=True))
        twin = copy.deepcopy(module.critic)
        with torch.no_grad():
            for p, value in zip(twin.parameters(), reg["before"], strict=True):
                p.copy_(value)
        params = list(twin.parameters())
        expected = torch.autograd.grad(k * w * hand_r1(twin, real), params, allow_unused=True)
        expected = [torch.zeros_like(p) if g is None else g for p, g in zip(params, expected, strict=True)]
        for got, want, before, after in zip(reg["grad"], expected, reg["before"], reg["after"], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
            torch.testing.assert_close(after, before - effective_lr * want, rtol=1e-5, atol=1e-7)
        i += 1
    assert i == len(steps.steps)


def test_lazy_regulariser_scales_the_critic_adams_lr_and_betas():
    """stylegan2-ada-pytorch's mb_ratio r = k / (k + 1): lr * r and betas ** r, critic only."""
    lazy = AdversarialModule(
        regularizers=[{"name": "r1", "weight": 5, "every": 16}], lr_d=2e-4, lr_g=1e-4, betas=(0.5, 0.99), **TINY
    )
    d_opt, g_opt = lazy.configure_optimizers()
    r = 16 / 17
    assert d_opt.param_groups[0]["lr"] == pytest.approx(2e-4 * r, rel=1e-12)
    assert d_opt.param_groups[0]["betas"] == pytest.approx((0.5**r, 0.99**r), rel=1e-12)
    assert (g_opt.param_groups[0]["lr"], g_opt.param_groups[0]["betas"]) == (1e-4, (0.5, 0.99))
    eager = AdversarialModule(regularizers=[{"name": "r1", "weight": 5}], lr_d=2e-4, betas=(0.5, 0.99), **TINY)
    d_opt, _ = eager.configure_optimizers()
    assert (d_opt.param_groups[0]["lr"], d_opt.param_groups[0]["betas"]) == (2e-4, (0.5, 0.99))
