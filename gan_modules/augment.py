"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The critic sees every input (real, fake, penalty inputs) through the same kind of random
augmentation, and the augmentation is differentiable so the generator learns through it. Each op
here is a pure function of the images and of its random draws: the caller draws them (with
`draw`, from a generator it seeds), so a run is reproducible and DDP ranks can agree on them.
Ranges follow the authors' code: brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast
x U(0.5, 1.5), translation by up to 1/8 of the image with zero padding, cutout of a square of
half the image size filled with zeros.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from gan_modules.nets.base import InputTransformCritic

# (op groups, input shape) -> that call's draws (`draw`'s keys); the engine's draws come from the
# global-batch stream (`GlobalDraws.draw_many`), so DDP ranks and resumed runs augment alike.
DrawSource = Callable[[tuple[str, ...], tuple[int, ...]], dict[str, Tensor]]

POLICY_OPS: dict[str, tuple[str, ...]] = {
    "color": ("brightness", "saturation", "contrast"),
    "translation": ("translation",),
    "cutout": ("cutout",),
}


def parse_policy(policy: str) -> tuple[str, ...]:
    """Policy text such as "color,translation,cutout" -> its op groups, in order ("" = none)."""
    groups = tuple(p.strip() for p in policy.split(",") if p.strip())
    for group in groups:
        if group not in POLICY_OPS:
            raise ValueError(
                f"model.augment={policy!r} is invalid: op {group!r} is unknown; allowed: comma-separated "
                f"{', '.join(POLICY_OPS)} (or '' for none)"
            )
    return groups


def _per_sample(values: Tensor, x: Tensor) -> Tensor:
    return values.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.dim() - 1)))


def brightness(x: Tensor, shift: Tensor) -> Tensor:
    """Add one offset per image (the paper draws it from U(-0.5, 0.5))."""
    return x + _per_sample(shift, x)


def saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Scale each pixel's deviation from its channel mean (U(0, 2); 0 = grey, 1 = unchanged)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * _per_sample(factor, x) + mean


def contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Scale each image's deviation from its mean over all pixels and channels (U(0.5, 1.5))."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _per_sample(factor, x) + mean


def translation(x: Tensor, shift_h: Tensor, shift_w: Tensor) -> Tensor:
    """out[n, :, i, j] = x[n, :, i + shift_h[n], j + shift_w[n]], zero where that falls outside."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, [1, 1, 1, 1])  # one zero border; every outside index maps onto it
    rows = (torch.arange(h, device=x.device) + shift_h.view(n, 1).to(x.device)).clamp(-1, h) + 1  # (n, h)
    cols = (torch.arange(w, device=x.device) + shift_w.view(n, 1).to(x.device)).clamp(-1, w) + 1  # (n, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)


def cutout_size(h: int, w: int) -> tuple[int, int]:
    """The paper's cutout square: half the image size."""
    return h // 2, w // 2


def cutout(x: Tensor, centre_h: Tensor, centre_w: Tensor) -> Tensor:
    """Zero a (h/2, w/2) window whose rows start at centre_h - h/4 (cols alike), clipped to the image."""
    n, _, h, w = x.shape
    size_h, size_w = cutout_size(h, w)
    top = (centre_h.to(x.device) - size_h // 2).view(n, 1)
    left = (centre_w.to(x.device) - size_w // 2).view(n, 1)
    r, c = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (r >= top) & (r < top + size_h)  # (n, h)
    in_cols = (c >= left) & (c < left + size_w)  # (n, w)
    keep = ~(in_rows.unsqueeze(2) & in_cols.unsqueeze(1))  # (n, h, w)
    return x * keep.unsqueeze(1).to(x.dtype)


def draw(groups: tuple[str, ...], shape: tuple[int, ...], generator: torch.Generator) -> dict[str, Tensor]:
    """The random draws of one `augment` call on images of `shape`, from the paper's distributions."""
    n, _, h, w = shape
    draws: dict[str, Tensor] = {}
    for group in groups:
        if group == "color":
            draws["brightness"] = torch.rand(n, generator=generator) - 0.5
            draws["saturation"] = torch.rand(n, generator=generator) * 2
            draws["contrast"] = torch.rand(n, generator=generator) + 0.5
        elif group == "translation":
            draws["shift_h"] = torch.randint(-(h // 8), h // 8 + 1, (n,), generator=generator)
            draws["shift_w"] = torch.randint(-(w // 8), w // 8 + 1, (n,), generator=generator)
        elif group == "cutout":
            size_h, size_w = cutout_size(h, w)
            draws["centre_h"] = torch.randint(0, h + 1 - size_h % 2, (n,), generator=generator)
            draws["centre_w"] = torch.randint(0, w + 1 - size_w % 2, (n,), generator=generator)
    return draws


def augment(x: Tensor, groups: tuple[str, ...], draws: dict[str, Tensor]) -> Tensor:
    """Apply the policy's ops in order, with the draws from `draw` (differentiable in x)."""
    for group in groups:
        if group == "color":
            x = contrast(saturation(brightness(x, draws["brightness"]), draws["saturation"]), draws["contrast"])
        elif group == "translation":
            x = translation(x, draws["shift_h"], draws["shift_w"])
        elif group == "cutout":
            x = cutout(x, draws["centre_h"], draws["centre_w"])
    return x


class AugmentedCritic(InputTransformCritic):
    """D(T(x)) (Zhao et al. 2020, Eq. 3-4): in training, every input of the critic (real and fake
    batches, the points where a penalty takes input gradients, the generator step's fakes) is
    augmented with a fresh draw of the policy, differentiably, so the generator and the penalties
    see through T; in eval mode the critic sees the images as they are."""

    def __init__(self, inner: nn.Module, policy: str, draws: DrawSource) -> None:
        super().__init__(inner)
        self.policy, self.groups = policy, parse_policy(policy)
        self._draws = draws

    def transform(self, x: Tensor) -> Tensor:
        if not self.training or not self.groups:
            return x
        return augment(x, self.groups, self._draws(self.groups, tuple(x.shape)))
