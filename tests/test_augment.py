"""DiffAugment ops against hand computations on tiny tensors, and their gradients (gradcheck)."""

from __future__ import annotations

import pytest
import torch

from gan_modules import augment

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
    with pytest.raises(
        ValueError, match=r"^augment policy op 'colour' is unknown; allowed: color, translation, cutout$"
    ):
        augment.parse_policy("translation,colour")
