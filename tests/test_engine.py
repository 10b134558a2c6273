"""The engine's schedule and bookkeeping, counted independently of Lightning's own counters."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from datamodules import Toy2DDataModule
from datamodules.stream import GlobalBatchStream
from gan_modules import AdversarialModule
from gan_modules.compose import preset
from gan_modules.draws import GlobalDraws
from gan_modules.nets import build_critic, build_generator
from gan_modules.trainers import bare_trainer

TINY = {"generator": {"arch": "mlp", "hidden": [8]}, "critic": {"arch": "mlp", "hidden": [8]}, "z_dim": 2}


class StepCounter(L.Callback):
    """Counts real optimizer.step() calls per optimizer with torch's own step hooks."""

    def __init__(self) -> None:
        self.counts = {"critic": 0, "generator": 0}
        self.lrs: list[float] = []
        self.clip_norms: list[float] = []

    def on_train_start(self, trainer, pl_module):
        d_opt, g_opt = (o.optimizer if hasattr(o, "optimizer") else o for o in trainer.optimizers)
        d_opt.register_step_post_hook(lambda *_: self._count("critic"))
        g_opt.register_step_post_hook(lambda *_: self._count("generator", g_opt))
        # post-hook: the gradients the update used (Lightning evaluates the closure, and with it
        # on_before_optimizer_step, inside optimizer.step, i.e. after any pre-hook)
        d_opt.register_step_post_hook(lambda opt, *_: self.clip_norms.append(_grad_norm(opt)))

    def _count(self, which, opt=None):
        self.counts[which] += 1
        if opt is not None:
            self.lrs.append(opt.param_groups[0]["lr"])


def _grad_norm(opt) -> float:
    grads = [p.grad.flatten() for g in opt.param_groups for p in g["params"] if p.grad is not None]
    return float(torch.cat(grads).norm())


def _fit(module, steps, callbacks=(), batch=16):
    trainer = bare_trainer(steps, callbacks)
    trainer.fit(module, Toy2DDataModule("ring8", size=512, batch_size=batch))
    return trainer


@pytest.mark.parametrize("n_critic, steps", [(1, 5), (3, 4), (5, 2)])
def test_max_steps_counts_generator_iterations_and_n_critic_critic_steps(n_critic, steps):
    counter = StepCounter()
    module = preset("wgan_gp", n_critic=n_critic, data_shape=(2,), **TINY)
    trainer = _fit(module, steps, [counter])
    assert counter.counts == {"critic": n_critic * steps, "generator": steps}
    assert trainer.global_step == steps
    assert module.real_batches_consumed == n_critic * steps


class BatchCounter(L.Callback):
    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_end(self, *_):
        self.batches += 1


@pytest.mark.parametrize("n_critic", [1, 3])
def test_critic_steps_take_the_streams_batches_in_order_one_lightning_batch_per_iteration(n_critic, monkeypatch):
    module = preset("wgan_gp", n_critic=n_critic, data_shape=(2,), **TINY)
    seen = []
    critic_loss = module.critic_loss
    monkeypatch.setattr(
        module, "critic_loss", lambda real, fake, y: (seen.append(real.clone()), critic_loss(real, fake, y))[1]
    )
    batches = BatchCounter()
    _fit(module, 4, [batches])
    dm = Toy2DDataModule("ring8", size=512, batch_size=16)
    stream = iter(GlobalBatchStream(dm.load(), 16, dm.seed))
    assert len(seen) == 4 * n_critic
    for real in seen:
        assert torch.equal(real, next(stream))
    assert batches.batches == 4  # Lightning's per-batch loop runs once per generator iteration


@pytest.mark.parametrize("k", [4, 5])
def test_iterations_per_batch_keeps_the_batches_noise_and_weights(k):
    """k generator iterations per Lightning batch train exactly what one per batch trains: the same
    real batches in the same order, the same noise, hence the same weights, EMA and schedule. With
    k = 5, 12 iterations end mid-batch, on max_steps."""

    def trained(per_batch: int):
        torch.manual_seed(0)
        module = preset("wgan_gp",
            n_critic=2, ema_decay=0.9, lr_decay="linear", z_prior="uniform", iterations_per_batch=per_batch,
            data_shape=(2,), **TINY,
        )  # fmt: skip
        batches, counter = BatchCounter(), StepCounter()
        trainer = _fit(module, 12, [batches, counter])
        return module, trainer, batches.batches, counter

    one, one_trainer, one_batches, one_counts = trained(1)
    many, many_trainer, many_batches, many_counts = trained(k)
    assert (one_batches, many_batches) == (12, -(-12 // k))
    assert one_trainer.global_step == many_trainer.global_step == 12
    assert one_counts.counts == many_counts.counts == {"critic": 24, "generator": 12}
    assert one_counts.lrs == many_counts.lrs
    assert one.real_batches_consumed == many.real_batches_consumed == 24
    torch.manual_seed(0)
    first = preset("wgan_gp", n_critic=2, data_shape=(2,), **TINY)
    assert not torch.equal(one.generator_ema.net[0].weight, first.generator.net[0].weight)  # training moved it
    for name, value in one.state_dict().items():
        assert torch.equal(value, many.state_dict()[name]), name


def test_iterations_per_batch_refuses_what_it_would_misalign():
    from gan_modules.bench.history import MetricsHistory
    from gan_modules.callbacks import ImageGrid, RunCheckpoint
    from gan_modules.engine import step_intervals

    module = preset("wgan_gp", iterations_per_batch=4, data_shape=(2,), **TINY)
    trainer = L.Trainer(
        accelerator="cpu", callbacks=[ImageGrid(every_n_steps=10)], logger=False, enable_checkpointing=False
    )
    message = r"^image_grid.every_n_steps=10 is invalid with model.iterations_per_batch=4; allowed: a multiple of 4"
    with pytest.raises(ValueError, match=message):
        module.check_trainer(trainer)
    trainer = L.Trainer(
        accelerator="cpu", callbacks=[ImageGrid(every_n_steps=12)], logger=False, enable_checkpointing=False
    )
    module.check_trainer(trainer)
    callbacks = [RunCheckpoint(every_n_train_steps=6), ImageGrid(every_n_steps=8), MetricsHistory(every_n_steps=12)]
    trainer = L.Trainer(accelerator="cpu", callbacks=callbacks, logger=False, enable_checkpointing=True)
    assert step_intervals(trainer) == {  # each under the key a user sets it by
        "checkpoint.every_n_train_steps": 6,
        "image_grid.every_n_steps": 8,
        "curves.every_n_steps": 12,
    }
    with pytest.raises(ValueError, match=r"^model.iterations_per_batch=0 is invalid; allowed: an integer >= 1"):
        preset("wgan_gp", iterations_per_batch=0, data_shape=(2,), **TINY)
    with pytest.raises(
        ValueError, match=r"^model.iterations_per_batch=2 is invalid; allowed: 1 with model.wgan_warmup"
    ):
        preset("wgan_gp", iterations_per_batch=2, wgan_warmup=True, data_shape=(2,), **TINY)
    with pytest.raises(
        ValueError, match=r"^model.iterations_per_batch=2 is invalid; allowed: 1 with model.critic_pretrain_steps"
    ):
        preset(
            "ebgan",
            iterations_per_batch=2,
            critic_pretrain_steps=3,
            data_shape=(2,),
            generator=TINY["generator"],
            critic={"arch": "autoencoder", "hidden": [8]},
        )


@pytest.mark.parametrize("n_critic", [5, 3])
def test_wgan_warmup_uses_100_critic_steps_early_on(n_critic):
    counter = StepCounter()
    module = preset("wgan_gp", n_critic=n_critic, wgan_warmup=True, data_shape=(2,), **TINY)
    _fit(module, 2, [counter])
    assert counter.counts == {"critic": 200, "generator": 2}  # iterations 0 and 1 are < 25
    assert module.real_batches_consumed == 200  # with n_critic 3 the last stacked batch is left unused


def test_linear_decay_reaches_zero_at_max_steps():
    counter = StepCounter()
    module = AdversarialModule(lr_g=1e-3, lr_d=1e-3, lr_decay="linear", data_shape=(2,), **TINY)
    _fit(module, 4, [counter])
    # lr used by generator step k (0-based) is lr0 * (1 - k / 4); it is stepped after each iteration
    assert counter.lrs == pytest.approx([1e-3 * (1 - k / 4) for k in range(4)])
    assert module.optimizers()[1].param_groups[0]["lr"] == pytest.approx(0.0)


def test_gradient_clipping_applies_before_the_critic_update():
    counter = StepCounter()
    module = AdversarialModule(grad_clip=1e-3, data_shape=(2,), **TINY)
    _fit(module, 3, [counter])
    assert counter.clip_norms and max(counter.clip_norms) <= 1e-3 * (1 + 1e-5)


def test_global_draws_are_sliced_identically_across_world_sizes():
    one = GlobalDraws(seed=5).draw("normal", (6, 3), torch.device("cpu"))
    halves = [GlobalDraws(seed=5).draw("normal", (3, 3), torch.device("cpu"), rank=r, world_size=2) for r in range(2)]
    assert torch.equal(torch.cat(halves), one)
    draws = GlobalDraws(seed=5)
    draws.draw("uniform", (4,), torch.device("cpu"))
    restored = GlobalDraws(seed=0)
    restored.load_state_dict(draws.state_dict())
    cpu = torch.device("cpu")
    assert torch.equal(restored.draw("uniform", (4,), cpu), draws.draw("uniform", (4,), cpu))


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
@pytest.mark.parametrize("size, channels", [(8, 1), (16, 1), (28, 1), (32, 3)])
def test_image_nets_produce_the_datamodule_shape(arch, size, channels):
    shape = (channels, size, size)
    g = build_generator({"arch": arch, "width": 8}, 4, shape)
    d = build_critic({"arch": arch, "width": 8}, shape)
    x = g(torch.randn(3, 4))
    assert x.shape == (3, *shape) and x.min() >= -1 and x.max() <= 1
    assert d(x).shape == (3,)


def test_autoencoder_critic_energy_is_mean_squared_reconstruction_error():
    ae = build_critic({"arch": "autoencoder", "width": 4, "code_dim": 3}, (1, 8, 8))
    x = torch.randn(5, 1, 8, 8)
    expected = (ae.decoder(ae.encoder(x)).view_as(x) - x).pow(2).flatten(1).mean(1)
    assert torch.allclose(ae(x), expected)


def test_impossible_image_size_and_unknown_arch_are_one_line_errors():
    with pytest.raises(ValueError, match=r"dcgan cannot produce 30x30 images; allowed sizes are 4\*2\^k or 7\*2\^k"):
        build_generator({"arch": "dcgan"}, 4, (1, 30, 30))
    allowed = "mlp, dcgan, resnet, standard_cnn, autoencoder or an import path"
    with pytest.raises(ValueError, match=rf"^model.critic.arch='vit' is unknown; allowed: {allowed}$"):
        build_critic({"arch": "vit"}, (2,))
    with pytest.raises(ValueError, match=r"model.generator.depth is not an option of the mlp generator"):
        build_generator({"arch": "mlp", "depth": 3}, 4, (2,))


def test_spectral_norm_constraint_normalises_every_critic_layer():
    critic = AdversarialModule(
        constraint="spectral_norm", critic={"arch": "dcgan", "width": 4}, data_shape=(1, 16, 16)
    ).critic
    layers = [m for m in critic.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)


def test_fused_adam_updates_like_torchs_reference_adam():
    """`fused_adam` takes the same steps as torch's per-tensor Adam (a second implementation)."""
    module = preset("wgan_gp", lr_g=1e-3, lr_d=1e-3, betas=(0.0, 0.9), fused_adam=True, data_shape=(2,), **TINY)
    torch.manual_seed(0)  # the starting weights, whatever earlier tests drew
    reference = torch.nn.Linear(2, 3)
    twin = torch.nn.Linear(2, 3)
    twin.load_state_dict(reference.state_dict())
    initial = reference.weight.detach().clone()
    fused = module._optimizer(twin.parameters(), 1e-3)
    plain = torch.optim.Adam(reference.parameters(), lr=1e-3, betas=(0.0, 0.9), foreach=False)
    assert fused.defaults["fused"] and not plain.defaults["fused"]
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        x = torch.randn(16, 2, generator=gen)
        for net, opt in ((twin, fused), (reference, plain)):
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()
    for a, b in zip(twin.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert (reference.weight - initial).abs().min() > 1e-4  # the 20 steps moved every weight


def test_fused_adam_is_off_by_default_and_refused_with_fp16s_grad_scaler():
    """A GradScaler with fused Adam would leave `grad_clip` and the non-finite guard scaled gradients."""
    from lightning.pytorch.plugins import MixedPrecision

    def trainer() -> L.Trainer:
        scaler = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))
        return L.Trainer(accelerator="cpu", plugins=[scaler], logger=False, enable_checkpointing=False)

    module = preset("wgan_gp", data_shape=(2,), **TINY)
    module.trainer = trainer()
    assert not any(opt.defaults["fused"] for opt in module.configure_optimizers())
    fused = preset("wgan_gp", fused_adam=True, data_shape=(2,), **TINY)
    fused.trainer = trainer()
    with pytest.raises(ValueError, match=r"^model.fused_adam=True is invalid with trainer.precision='16-mixed'"):
        fused.configure_optimizers()


def test_g_batch_size_sets_the_fakes_of_the_generator_step_only():
    """Counted at the networks: every generator step sees g_batch_size noise rows, every critic step
    the real batch's size; g_batch_size=None keeps the real batch's size for both."""

    class Recording(AdversarialModule):
        def critic_loss(self, real, fake, labels):
            self.seen.append(("critic", len(real), len(fake)))
            return super().critic_loss(real, fake, labels)

        def generator_loss(self, fake, real, labels):
            self.seen.append(("generator", len(real), len(fake)))
            return super().generator_loss(fake, real, labels)

    for g_batch_size, expected_fakes in ((None, 16), (40, 40)):
        module = Recording(data_shape=(2,), n_critic=2, g_batch_size=g_batch_size, **TINY)
        module.seen = []
        bare_trainer(3).fit(module, Toy2DDataModule("ring8", size=256, batch_size=16))
        assert module.seen.count(("critic", 16, 16)) == 6
        assert module.seen.count(("generator", 16, expected_fakes)) == 3
        assert len(module.seen) == 9


def test_g_batch_size_must_split_evenly_over_the_ranks():
    module = preset("wgan_gp", data_shape=(2,), g_batch_size=5, **TINY)
    two_ranks = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False)
    message = r"^model.g_batch_size=5 is invalid with 2 processes; allowed: a multiple of 2"
    with pytest.raises(ValueError, match=message):
        module.check_trainer(two_ranks)
    module.check_trainer(L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False))
    with pytest.raises(ValueError, match=r"^model.g_batch_size=0 is invalid; allowed: null or an integer >= 1"):
        preset("wgan_gp", data_shape=(2,), g_batch_size=0, **TINY)


@pytest.mark.parametrize("prior", ["uniform", "normal"])
def test_z_prior_sets_the_noise_of_training_fixed_grids_and_seeded_samples(prior):
    """Every noise row the generator sees, in training and sampling, comes from the chosen prior:
    U[-1, 1) has mean 0 and variance 1/3; N(0, 1) leaves [-1, 1) about a third of the time."""
    module = preset("wgan_gp", data_shape=(2,), z_prior=prior, n_critic=1, **TINY)
    seen: list[torch.Tensor] = []
    module.generator.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().flatten()))
    bare_trainer(3).fit(module, Toy2DDataModule("ring8", size=256, batch_size=16))
    module.sample(8, seed=3)
    module.sample(8)
    training, sampled = torch.cat(seen[:-2]), torch.cat(seen[-2:])
    assert len(training) == 3 * 2 * 16 * 2  # 3 iterations x (critic + generator step) x 16 rows x z_dim 2
    assert torch.equal(seen[-1], module.fixed_noise[:8].flatten())
    many = module.seeded_noise(40_000, seed=0)
    inside = [bool(((z >= -1) & (z < 1)).all()) for z in (training, sampled, module.fixed_noise, many)]
    if prior == "uniform":
        assert inside == [True] * 4
        assert abs(float(many.mean())) < 0.01 and abs(float(many.var()) - 1 / 3) < 0.01
    else:
        assert inside == [False] * 4
        assert abs(float(many.var()) - 1) < 0.02


def test_unknown_z_prior_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"^model.z_prior='gaussian' is invalid; allowed: normal, uniform$"):
        preset("wgan_gp", data_shape=(2,), z_prior="gaussian", **TINY)


@pytest.mark.parametrize("callback", ["RunCheckpoint", "ModelCheckpoint"])
def test_run_checkpoint_drops_lightnings_manual_optimisation_warning(tmp_path, callback, recwarn):
    """Lightning's ModelCheckpoint warns (15 lines) at every manual-optimisation checkpoint; ours saves
    the post-step state on purpose and stays quiet. The plain callback shows the warning is real."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from gan_modules.callbacks import RunCheckpoint

    cls = RunCheckpoint if callback == "RunCheckpoint" else ModelCheckpoint
    ckpt = cls(dirpath=tmp_path, every_n_train_steps=1, save_top_k=-1)
    trainer = bare_trainer(2, [ckpt], enable_checkpointing=True)
    trainer.fit(AdversarialModule(data_shape=(2,), **TINY), Toy2DDataModule("ring8", size=512, batch_size=16))
    assert len(list(tmp_path.glob("*.ckpt"))) >= 2  # the hook ran and saved
    warned = [w for w in recwarn if "Using ModelCheckpoint with manual optimization" in str(w.message)]
    assert bool(warned) == (callback == "ModelCheckpoint")


def test_validation_draws_its_own_noise_so_the_training_run_is_unchanged(tmp_path):
    """Validation's noise comes from its own stream: a run that validates every 2 iterations ends with
    exactly the weights of one that never validates (the same command otherwise)."""
    from conftest import CSV_LOGGER, fit_yaml

    from gan_modules.cli import main

    finals = {}
    for name, val in (
        ("plain", {"limit_val_batches": 0}),
        ("validated", {"limit_val_batches": 2, "val_check_interval": 2}),
    ):
        root = tmp_path / name
        trainer = {"default_root_dir": str(root), "logger": CSV_LOGGER, **val}
        assert main(["fit", "--config", str(fit_yaml(tmp_path / f"{name}.yaml", trainer=trainer))]) == 0
        finals[name] = torch.load(root / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
        logged = (root / "logs" / "version_0" / "metrics.csv").read_text()
        assert ("val/critic_gap" in logged) == (name == "validated")  # validation did run in one of them
    plain, validated = finals["plain"], finals["validated"]
    assert plain.keys() == validated.keys()
    for key in plain:
        assert torch.equal(plain[key], validated[key]), key


class _OriginalWeights(L.Callback):
    """The generator's raw (un-normalised) first weight after every generator iteration."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, *_):
        self.seen.append(pl_module.generator.net[0].parametrizations.weight.original.detach().clone())


def test_ema_of_a_spectrally_normalised_generator_averages_its_raw_weights():
    """SAGAN's generator spectral norm with an EMA generator: the average is of the raw weights, which
    the averaged net normalises itself; the power iteration's vector is the trained net's."""
    torch.manual_seed(0)
    generator = {"arch": "mlp", "hidden": [8], "spectral_norm": True}
    module = preset("sngan", ema_decay=0.8, data_shape=(2,), **{**TINY, "generator": generator})
    expected = module.generator.net[0].parametrizations.weight.original.detach().clone()
    weights = _OriginalWeights()
    _fit(module, 4, [weights])
    assert len(weights.seen) == 4
    for w in weights.seen:
        expected = 0.8 * expected + 0.2 * w
    got = module.generator_ema.net[0].parametrizations.weight.original
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(got, weights.seen[-1])  # an average, not a copy of the trained net
    u = module.generator.net[0].parametrizations.weight[0]._u
    assert torch.equal(module.generator_ema.net[0].parametrizations.weight[0]._u, u)  # buffers copied
