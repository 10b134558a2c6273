"""DiffAugment ops against hand computations on tiny tensors, and their gradients (gradcheck)."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from datamodules import DigitsDataModule
from gan_modules import augment, penalties
from gan_modules.draws import GlobalDraws
from gan_modules.engine import AdversarialModule
from gan_modules.nets import build_critic

GRID = torch.arange(1.0, 10.0).view(1, 1, 3, 3)  # [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


def test_brightness_adds_one_offset_per_image():
    x = torch.tensor([[[[1.0, 2.0]]], [[[3.0, 4.0]]]])
    out = augment.brightness(x, torch.tensor([0.5, -0.25]))
    assert torch.equal(out, torch.tensor([[[[1.5, 2.5]]], [[[2.75, 3.75]]]]))


def test_saturation_scales_the_deviation_from_the_channel_mean_of_each_pixel():
    x = torch.tensor([[[[1.0, 0.0]], [[3.0, 0.0]]]])  # pixel 0: channels (1, 3), mean 2; pixel 1: (0, 0)
    out = augment.saturation(x, torch.tensor([0.5]))
    assert torch.equal(out, torch.tensor([[[[1.5, 0.0]], [[2.5, 0.0]]]]))  # 2 -/+ 0.5 * 1
    assert torch.equal(augment.saturation(x, torch.tensor([0.0])), torch.tensor([[[[2.0, 0.0]], [[2.0, 0.0]]]]))


def test_contrast_scales_the_deviation_from_the_image_mean():
    x = torch.tensor([[[[1.0, 3.0]], [[5.0, 7.0]]]])  # mean 4
    out = augment.contrast(x, torch.tensor([1.5]))
    assert torch.equal(out, torch.tensor([[[[-0.5, 2.5]], [[5.5, 8.5]]]]))


def test_translation_moves_content_and_pads_with_zeros():
    out = augment.translation(GRID, torch.tensor([1]), torch.tensor([-1]))  # out[i, j] = x[i + 1, j - 1]
    assert torch.equal(out[0, 0], torch.tensor([[0.0, 4, 5], [0, 7, 8], [0, 0, 0]]))
    far = augment.translation(GRID, torch.tensor([-5]), torch.tensor([0]))  # past the edge: all zeros
    assert torch.equal(far, torch.zeros_like(GRID))
    two = torch.cat([GRID, 10 * GRID])  # each image its own shift; channels move together
    out = augment.translation(two.repeat(1, 2, 1, 1), torch.tensor([0, -1]), torch.tensor([1, 0]))
    assert torch.equal(out[0, 1], torch.tensor([[2.0, 3, 0], [5, 6, 0], [8, 9, 0]]))
    assert torch.equal(out[1, 0], torch.tensor([[0.0, 0, 0], [10, 20, 30], [40, 50, 60]]))


def test_cutout_zeroes_a_half_size_window_around_its_centre_clipped_at_the_border():
    x = torch.ones(2, 2, 4, 4)
    out = augment.cutout(x, torch.tensor([1, 0]), torch.tensor([3, 4]))
    expected0 = torch.ones(4, 4)
    expected0[0:2, 2:4] = 0  # centre (1, 3), size 2: rows 0..1, cols 2..3
    expected1 = torch.ones(4, 4)
    expected1[0:1, 3:4] = 0  # centre (0, 4): rows -1..0, cols 3..4, clipped to row 0, col 3
    assert torch.equal(out[0], expected0.expand(2, 4, 4)) and torch.equal(out[1], expected1.expand(2, 4, 4))


def test_draws_follow_the_papers_ranges_and_a_seed_repeats_them():
    shape = (4000, 3, 32, 32)
    draws = augment.draw(("color", "translation", "cutout"), shape, torch.Generator().manual_seed(0))
    assert draws["brightness"].min() >= -0.5 and draws["brightness"].max() < 0.5
    assert draws["saturation"].min() >= 0 and draws["saturation"].max() < 2
    assert draws["contrast"].min() >= 0.5 and draws["contrast"].max() < 1.5
    for key in ("shift_h", "shift_w"):  # 1/8 of 32 px
        assert set(draws[key].tolist()) == set(range(-4, 5))
    for key in ("centre_h", "centre_w"):  # reference code: randint(0, size + 1 - (size // 2) % 2)
        assert set(draws[key].tolist()) == set(range(0, 33))
    again = augment.draw(("color", "translation", "cutout"), shape, torch.Generator().manual_seed(0))
    assert all(torch.equal(draws[k], again[k]) for k in draws)
    odd = augment.draw(("cutout",), (2000, 1, 6, 6), torch.Generator().manual_seed(1))  # cutout size 3 (odd)
    assert set(odd["centre_h"].tolist()) == set(range(0, 6))


def test_augment_applies_the_policy_ops_in_order():
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    groups = augment.parse_policy("color, translation,cutout")
    draws = augment.draw(groups, tuple(x.shape), torch.Generator().manual_seed(3))
    by_hand = augment.brightness(x, draws["brightness"])
    by_hand = augment.contrast(augment.saturation(by_hand, draws["saturation"]), draws["contrast"])
    by_hand = augment.translation(by_hand, draws["shift_h"], draws["shift_w"])
    by_hand = augment.cutout(by_hand, draws["centre_h"], draws["centre_w"])
    assert torch.equal(augment.augment(x, groups, draws), by_hand)
    assert torch.equal(augment.augment(x, augment.parse_policy(""), {}), x)


@pytest.mark.parametrize(
    "op, draws",
    [
        (augment.brightness, (torch.tensor([0.3, -0.2]),)),
        (augment.saturation, (torch.tensor([1.7, 0.4]),)),
        (augment.contrast, (torch.tensor([0.6, 1.3]),)),
        (augment.translation, (torch.tensor([1, -1]), torch.tensor([0, 1]))),
        (augment.cutout, (torch.tensor([1, 3]), torch.tensor([2, 0]))),
    ],
)
def test_every_op_passes_gradcheck_in_float64(op, draws):
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4), requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: op(t, *draws), (x,))


def test_an_unknown_policy_op_is_a_one_line_error():
    with pytest.raises(ValueError) as err:
        augment.parse_policy("translation,colour")
    assert str(err.value) == (
        "model.augment='translation,colour' is invalid: op 'colour' is unknown; allowed: comma-separated "
        "color, translation, cutout (or '' for none)"
    )


POLICY = "color,translation,cutout"
IMAGES = (1, 8, 8)


class Recorded:
    """A draw source that keeps every draw it hands out (shapes and values)."""

    def __init__(self, seed: int = 0) -> None:
        self.gen, self.calls = torch.Generator().manual_seed(seed), []

    def __call__(self, groups, shape):
        draws = augment.draw(groups, shape, self.gen)
        self.calls.append((shape, draws))
        return draws


def test_augmented_critic_scores_the_augmented_input_in_training_and_the_plain_one_in_eval():
    torch.manual_seed(0)
    inner = build_critic({"arch": "dcgan", "width": 4}, IMAGES).double()
    source = Recorded()
    critic = augment.AugmentedCritic(inner, POLICY, source)
    x = torch.randn(5, *IMAGES, dtype=torch.float64, requires_grad=True)
    score = critic(x)
    ((shape, draws),) = source.calls
    assert shape == (5, *IMAGES)
    torch.testing.assert_close(score, inner(augment.augment(x, augment.parse_policy(POLICY), draws)), rtol=0, atol=0)
    assert torch.autograd.gradcheck(lambda t: critic.inner(augment.augment(t, critic.groups, draws)), (x,))
    critic.eval()
    torch.testing.assert_close(critic(x), inner(x), rtol=0, atol=0)
    assert len(source.calls) == 1  # no draw in eval mode


def test_r1_on_an_augmented_critic_differentiates_through_the_augmentation():
    """The penalty's input gradient is that of D(T(x)) w.r.t. x (Zhao et al. 2020 augment every input
    the critic sees, penalty inputs included), by hand with the recorded draws."""
    torch.manual_seed(1)
    inner = build_critic({"arch": "dcgan", "width": 4}, IMAGES).double()
    source = Recorded(3)
    critic = augment.AugmentedCritic(inner, "translation,cutout", source)
    x = torch.randn(4, *IMAGES, dtype=torch.float64)
    got = penalties.r1_penalty(critic, x)
    ((_, draws),) = source.calls
    leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(inner(augment.augment(leaf, critic.groups, draws)).sum(), leaf)
    assert got.item() == pytest.approx(grad.flatten(1).pow(2).sum(1).mean().item(), rel=1e-12)
    assert (grad == 0).any()  # the cutout window has no gradient: T is in the path


def test_draw_many_gives_each_rank_its_rows_of_the_global_draw():
    make = lambda n, gen: augment.draw(("color", "cutout"), (n, 1, 8, 8), gen)  # noqa: E731
    one = GlobalDraws(5).draw_many(make, 6)
    ranks = [GlobalDraws(5).draw_many(make, 3, rank, 2) for rank in (0, 1)]
    for key in one:
        assert torch.equal(torch.cat([r[key] for r in ranks]), one[key])
    stream = GlobalDraws(5)
    stream.draw_many(make, 6)
    assert stream.calls == 1  # one call of the stream, checkpointed with it


def test_every_critic_input_of_a_training_iteration_is_augmented(tmp_path):
    """WGAN-GP + DiffAugment, one generator iteration of a real fit: the critic step augments the
    real batch, the fakes and the penalty's interpolates, and the generator step its fakes (g_batch_size),
    each with a fresh draw."""
    module = AdversarialModule(
        loss="wasserstein", regularizers=[{"name": "gradient_penalty", "weight": 10.0}], augment=POLICY,
        data_shape=IMAGES, z_dim=8, g_batch_size=12, generator={"arch": "dcgan", "width": 4},
        critic={"arch": "dcgan", "width": 4, "norm": "none"},
    )  # fmt: skip
    shapes = []
    draws = module.critic._draws

    def record(groups, shape):
        shapes.append(shape)
        return draws(groups, shape)

    module.critic._draws = record
    trainer = L.Trainer(
        max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, DigitsDataModule(batch_size=10))
    assert shapes == [(10, *IMAGES)] * 3 + [(12, *IMAGES)]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"data_shape": (2,)},
            "model.augment='translation' is invalid; allowed: '' for data of shape (2,) (the ops act on images)",
        ),
        (
            {
                "regularizers": [{"name": "consistency_term"}],
                "critic": {"arch": "dcgan", "width": 4, "dropout": 0.5},
            },
            "model.augment='translation' is invalid with model.regularizers=consistency_term (the term compares two "
            "dropout passes of one input; each would see another augmentation); allowed: model.augment=''",
        ),
    ],
)
def test_augment_refuses_what_it_cannot_serve_in_one_line(overrides, message):
    kwargs = {"loss": "wasserstein", "augment": "translation", "data_shape": IMAGES, **overrides}
    with pytest.raises(ValueError) as err:
        AdversarialModule(**kwargs)
    assert str(err.value) == message
