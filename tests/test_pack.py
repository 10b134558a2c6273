"""PacGAN packing: a packed critic scores the inner critic on the channel-concatenated samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import fit_yaml, merged

from datamodules import Toy2DDataModule
from gan_modules import AdversarialModule
from gan_modules.callbacks import image_grid
from gan_modules.checkpoints import load_module
from gan_modules.cli import main
from gan_modules.constraints import apply_spectral_norm
from gan_modules.nets import PackedCritic, build_critic
from gan_modules.trainers import bare_trainer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

CASES = [
    ({"arch": "mlp", "hidden": [6, 5]}, (2,)),
    ({"arch": "dcgan", "width": 4, "norm": "layer"}, (3, 8, 8)),
    ({"arch": "resnet", "width": 4}, (1, 8, 8)),
    ({"arch": "autoencoder", "width": 4, "code_dim": 3}, (1, 8, 8)),
]


@pytest.mark.parametrize("spec, shape", CASES, ids=[c[0]["arch"] for c in CASES])
@pytest.mark.parametrize("pack", [2, 3])
def test_packed_score_is_the_inner_critic_on_the_concatenated_samples(spec, shape, pack):
    torch.manual_seed(0)
    critic = build_critic({**spec, "pack": pack}, shape)
    assert isinstance(critic, PackedCritic)
    x = torch.randn(2 * pack, *shape)
    # by hand: pack p holds samples p*m .. p*m+m-1, side by side along the first (channel/feature) axis
    by_hand = torch.stack([torch.cat(list(x[p * pack : (p + 1) * pack]), dim=0) for p in range(2)])
    assert by_hand.shape == (2, pack * shape[0], *shape[1:])
    assert torch.equal(critic(x), critic.inner(by_hand))
    assert critic(x).shape == (2,)


def test_features_head_and_minibatch_compose_to_the_packed_score():
    torch.manual_seed(1)
    critic = build_critic({"arch": "dcgan", "width": 4, "minibatch_kernels": 3, "pack": 2}, (1, 8, 8))
    x = torch.randn(6, 1, 8, 8)
    composed = critic.inner.head(critic.inner.minibatch(critic.features(x))).squeeze(-1)
    assert torch.allclose(composed, critic(x))
    ae = build_critic({"arch": "autoencoder", "width": 4, "code_dim": 3, "pack": 2}, (1, 8, 8))
    energy, code = ae.energy_and_code(x)
    assert torch.equal(energy, ae(x)) and code.shape == (3, 3)  # one energy and one code per pack


def test_spectral_norm_applies_inside_the_packed_critic():
    critic = apply_spectral_norm(build_critic({"arch": "dcgan", "width": 4, "pack": 2}, (1, 16, 16)))
    layers = [m for m in critic.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)
    assert next(m for m in layers if isinstance(m, torch.nn.Conv2d)).in_channels == 2


@pytest.mark.parametrize("pack", [0, -2, 1.5, True, "2"])
def test_a_bad_pack_value_is_a_one_line_error(pack):
    with pytest.raises(
        ValueError, match=r"^model.critic.pack=.* is invalid; allowed: an integer >= 1 \(1 = no packing\)$"
    ):
        build_critic({"arch": "mlp", "pack": pack}, (2,))


def test_pack_one_is_the_plain_critic_and_pack_is_listed_among_the_critic_options():
    assert not isinstance(build_critic({"arch": "mlp", "pack": 1}, (2,)), PackedCritic)
    with pytest.raises(ValueError, match=r"^model.critic.packs is not an option of the mlp critic; allowed: .*pack\b"):
        build_critic({"arch": "mlp", "packs": 2}, (2,))


def test_a_batch_not_divisible_by_the_pack_is_a_one_line_error_in_a_real_run(tmp_path):
    critic = {"arch": "mlp", "hidden": [8], "pack": 2}
    model = AdversarialModule(
        loss="non_saturating", data_shape=(2,), generator={"arch": "mlp", "hidden": [8]}, critic=critic
    )
    dm = Toy2DDataModule(size=200, batch_size=33)
    trainer = bare_trainer(2, default_root_dir=tmp_path)
    with pytest.raises(
        ValueError, match=r"^data.batch_size=33 is invalid; allowed: a multiple of 2 with model.critic.pack=2"
    ):
        trainer.fit(model, dm)
    assert model.real_batches_consumed == 0  # refused before the first step
    model = AdversarialModule(
        loss="non_saturating", data_shape=(2,), generator={"arch": "mlp", "hidden": [8]}, critic=critic
    )
    bare_trainer(2, default_root_dir=tmp_path).fit(model, Toy2DDataModule(size=200, batch_size=32))
    assert model.critic.inner.body[1].in_features == 4  # the inner critic sees two 2D points at once


@pytest.mark.parametrize(
    ("overrides", "devices", "message"),
    [
        ({"data": {"init_args": {"batch_size": 32}}}, 1, "data.batch_size=32 is invalid; allowed: a multiple of 3 "),
        (
            {"model": {"init_args": {"g_batch_size": 40}}, "data": {"init_args": {"batch_size": 30}}},
            1,
            "model.g_batch_size=40 is invalid; allowed: a multiple of 3 ",
        ),
        # 2 ranks of 15: each rank's 15 rows are not whole packs of 2, though the global 30 is
        ({"data": {"init_args": {"batch_size": 30}}}, 2, "data.batch_size=30 is invalid; allowed: a multiple of 4 "),
    ],
)
def test_the_cli_refuses_batches_of_partial_packs_before_training(tmp_path, capsys, overrides, devices, message):
    pack = 2 if devices == 2 else 3
    critic = {"model": {"init_args": {"critic": {"arch": "mlp", "hidden": [16, 16], "pack": pack}}}}
    config = fit_yaml(tmp_path / "fit.yaml", **merged(critic, overrides))
    args = ["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / "run")]
    if devices == 2:
        args += ["--trainer", str(CONFIGS / "trainer" / "ddp_cpu.yaml")]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("pack", [1, 3])
def test_a_packed_critic_on_2d_data_trains_and_plots_without_a_contour(tmp_path, monkeypatch, pack):
    """The scatter plot's critic contour scores single points, which a critic of packs cannot (a
    100 x 100 grid is not whole packs of 3): the plot gets no critic then, and the fit's own critic
    otherwise."""
    drawn: list[object] = []
    original = image_grid.save_scatter
    monkeypatch.setattr(
        image_grid, "save_scatter", lambda s, r, critic, *a: drawn.append(critic) or original(s, r, critic, *a)
    )
    critic = {"arch": "mlp", "hidden": [16, 16], "pack": pack}
    config = fit_yaml(
        tmp_path / "fit.yaml", model={"init_args": {"critic": critic}}, data={"init_args": {"batch_size": 33}}
    )
    assert main(["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "samples" / "step_0000003.png").exists()
    module = load_module(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert len(drawn) == 3  # steps 0, 3 and 6
    if pack == 1:
        assert all(type(c) is type(module.critic) for c in drawn)
    else:
        assert isinstance(module.critic, PackedCritic) and drawn == [None, None, None]


def _packed_module(loss: str | dict, regularizers: list | None, shape: tuple[int, ...]) -> AdversarialModule:
    torch.manual_seed(2)
    critic = {"arch": "mlp", "hidden": [8, 8], "pack": 2}
    generator = {"arch": "mlp", "hidden": [8]}
    return AdversarialModule(loss=loss, regularizers=regularizers, data_shape=shape, generator=generator, critic=critic)


def _by_hand_packs(x: torch.Tensor) -> torch.Tensor:
    """Pairs of consecutive samples, side by side along the first non-batch axis (PacGAN's pack of 2)."""
    return torch.stack([torch.cat([x[2 * p], x[2 * p + 1]]) for p in range(len(x) // 2)])


def _hand_gradient_norms(inner: torch.nn.Module, packs: torch.Tensor) -> torch.Tensor:
    packs = packs.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(inner(packs).sum(), packs, create_graph=True)
    return torch.sqrt((grad**2).reshape(len(packs), -1).sum(1))


@pytest.mark.parametrize("shape", [(2,), (1, 4, 4)], ids=["points", "images"])
def test_penalties_of_a_packed_critic_are_taken_on_packs(monkeypatch, shape):
    """WGAN-GP on a packed critic interpolates between a real and a fake pack with one weight per pack
    and norms the gradient w.r.t. the whole pack (the critic's input); R1 likewise. Per sample, GP would
    pull each half of a pack's gradient to norm 1 and R1 would be half the pack's squared norm."""
    module = _packed_module("wasserstein", [{"name": "gradient_penalty"}, {"name": "r1"}], shape)
    real, fake = torch.randn(6, *shape), torch.randn(6, *shape)
    eps = torch.tensor([0.2, 0.9, 0.5])
    requested: list[tuple[int, ...]] = []
    monkeypatch.setattr(module, "uniform", lambda *s: requested.append(s) or eps)
    _, logs = module.regularizer_loss(module.objective.eager, real, fake, gain=1)
    assert requested == [(3,)]  # one interpolation weight per pack
    inner = module.critic.inner
    real_packs, fake_packs = _by_hand_packs(real), _by_hand_packs(fake)
    weight = eps.view(-1, *[1] * len(shape))
    hat = weight * real_packs + (1 - weight) * fake_packs
    gp = ((_hand_gradient_norms(inner, hat) - 1) ** 2).mean()
    r1 = (_hand_gradient_norms(inner, real_packs) ** 2).mean()
    torch.testing.assert_close(logs["train/gradient_penalty"], gp.detach())
    torch.testing.assert_close(logs["train/r1"], r1.detach())
    per_sample = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(module.critic(per_sample).sum(), per_sample)
    assert abs((grad**2).flatten(1).sum(1).mean() - r1) > 0.1 * r1  # the per-sample reading differs


def test_loss_sensitive_margin_of_a_packed_critic_is_the_distance_between_packs():
    """LS-GAN (Qi 2017) with a packed critic: each pack's learned loss must undercut by the L1
    distance between the real and the fake pack (it crashed on a score per pack against a margin per
    sample)."""
    loss = {"name": "loss_sensitive", "real_weight": 0.5, "delta_scale": 0.3, "activation": "softplus"}
    module = _packed_module(loss, None, (1, 4, 4))
    real, fake = torch.randn(8, 1, 4, 4), torch.randn(8, 1, 4, 4)
    value, logs = module.critic_loss(real, fake)
    inner = module.critic.inner
    l_real = torch.nn.functional.softplus(inner(_by_hand_packs(real)))
    l_fake = torch.nn.functional.softplus(inner(_by_hand_packs(fake)))
    delta = 0.3 * torch.stack([(real[p : p + 2] - fake[p : p + 2]).abs().sum() for p in (0, 2, 4, 6)])
    expected = 0.5 * l_real.mean() + torch.relu(delta + l_real - l_fake).mean()
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(logs["train/margin"], delta.mean())
