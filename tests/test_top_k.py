"""Top-k generator updates (Sinha et al. 2020): the schedule of k, the selection and its gradient.

The 2-rank equality of a top-k fit is in tests/test_ddp.py (case `sn_minibatch_top_k`)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import fit_yaml

from gan_modules import AdversarialModule, losses
from gan_modules.cli import main


def _studiogan_schedule(batch: int, steps: int, gamma: float, nu: float, every: int) -> list[int]:
    """The paper's procedure as written: k starts at the batch, is multiplied by gamma after every
    epoch and never falls below int(batch * nu); the generator reads int(k) fakes, and at least one."""
    ks, k = [], float(batch)
    for step in range(steps):
        if step and step % every == 0:
            k = max(k * gamma, int(batch * nu))
        ks.append(max(1, int(k)))
    return ks


@pytest.mark.parametrize(
    ("batch", "gamma", "nu", "every"), [(64, 0.9, 0.5, 10), (128, 0.99, 0.5, 3), (10, 0.7, 0.05, 1)]
)
def test_k_shrinks_by_gamma_each_period_down_to_the_fraction_nu(batch, gamma, nu, every):
    expected = _studiogan_schedule(batch, 400, gamma, nu, every)
    assert [losses.top_k_size(batch, step, gamma, nu, every) for step in range(400)] == expected
    assert expected[0] == batch and min(expected) == max(1, int(batch * nu))


def _module(loss: str, monkeypatch: pytest.MonkeyPatch, step: int) -> AdversarialModule:
    torch.manual_seed(0)
    monkeypatch.setattr(AdversarialModule, "global_step", property(lambda self: step))
    return AdversarialModule(
        loss=loss,
        generator={"arch": "mlp", "hidden": [16]},
        critic={"arch": "mlp", "hidden": [16]},
        top_k={"gamma": 0.5, "nu": 0.25, "every": 2},
    )


@pytest.mark.parametrize(
    ("loss", "k", "best", "reference"),
    [
        # hinge: -E D(G(z)) (Miyato et al. 2018, Eq. 17); realistic fakes score high
        ("hinge", 16, "high", lambda d: -d.mean()),
        ("non_saturating", 8, "high", lambda d: F.softplus(-d).mean()),
        # the learned loss L = softplus(score) is low on real data (Qi 2017): keep the lowest
        ("loss_sensitive", 16, "low", lambda d: F.softplus(d).mean()),
    ],
)
def test_only_the_k_fakes_the_critic_rates_most_realistic_reach_the_generator(monkeypatch, loss, k, best, reference):
    step = {32: 0, 16: 2, 8: 4}[k]  # 32 fakes: k = 32 * max(0.5 ** (step // 2), 0.25)
    module = _module(loss, monkeypatch, step)
    fake = torch.randn(32, 2, requires_grad=True)
    total, logs = module.generator_loss(fake, real=torch.randn(32, 2))
    assert logs["train/top_k"].item() == k
    (grad,) = torch.autograd.grad(total, fake)

    scores = module.critic(fake)
    order = scores.argsort(descending=best == "high")
    kept, dropped = order[:k], order[k:]
    leaf = fake.detach().requires_grad_(True)
    expected_total = reference(module.critic(leaf)[kept])
    (expected,) = torch.autograd.grad(expected_total, leaf)
    torch.testing.assert_close(total, expected_total)
    torch.testing.assert_close(grad, expected)
    assert grad[dropped].abs().max() == 0 and grad[kept].abs().min() > 0


@pytest.mark.parametrize(
    ("top_k", "extra", "message"),
    [
        ({"gamma": 0.99, "nu": 0.5}, {}, "model.top_k={'gamma': 0.99, 'nu': 0.5} is invalid; allowed: null or {gamma:"),
        ({"gamma": 0.0, "nu": 0.5, "every": 10}, {}, "model.top_k.gamma=0.0 is invalid; allowed: a float in (0, 1]"),
        ({"gamma": 0.99, "nu": 1.5, "every": 10}, {}, "model.top_k.nu=1.5 is invalid; allowed: a float in (0, 1]"),
        ({"gamma": 0.99, "nu": 0.5, "every": 0}, {}, "model.top_k.every=0 is invalid; allowed: an integer >= 1"),
        (
            {"gamma": 0.99, "nu": 0.5, "every": 10},
            {"generator_adversarial_weight": 0.0, "generator_terms": ["feature_matching"]},
            "allowed: null with model.generator_adversarial_weight=0",
        ),
    ],
)
def test_top_k_settings_that_cannot_work_are_refused_in_one_line(tmp_path, capsys, top_k, extra, message):
    config = fit_yaml(tmp_path / "fit.yaml", model={"init_args": {"top_k": top_k, **extra}})
    assert main(["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / "run")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "run" / "checkpoints").exists()
