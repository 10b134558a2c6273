"""Stacked MNIST mode metrics (PacGAN, Lin et al. 2018, Table 2; after VEEGAN, Srivastava et al. 2017).

Each channel of a generated image is classified by a pinned MNIST classifier (`gan-lab
train-evaluator --dataset mnist`); the three digits give the mode id 100 d_R + 10 d_G + d_B. The
protocol: 26,000 samples, the number of modes with at least one sample (of 1,000) and
KL(mode histogram || uniform).
"""

from __future__ import annotations

from pathlib import Path

import torch

from gan_modules.metrics.classifier import classifier_fingerprint, load_classifier, to_classifier_input
from gan_modules.metrics.scores import kl_to_uniform

NUM_SAMPLES = 26_000  # PacGAN Table 2


def mode_ids(digits: torch.Tensor) -> torch.Tensor:
    """(N, C) per-channel digits -> (N,) mode ids, the digits read as a base-10 number (R first)."""
    powers = 10 ** torch.arange(digits.shape[1] - 1, -1, -1, device=digits.device)
    return (digits.long() * powers).sum(1)


def stacked_mode_metrics(ids: torch.Tensor, num_modes: int) -> dict[str, float]:
    """modes: ids seen at least once; reverse_kl: KL(histogram of ids || uniform over num_modes)."""
    counts = torch.bincount(ids.cpu(), minlength=num_modes)
    return {"modes": float((counts > 0).sum()), "reverse_kl": kl_to_uniform(counts)}


class ChannelDigits:
    """A trained `DigitClassifier` applied to every channel of uint8 (N, C, H, W) images."""

    def __init__(self, weights: Path, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        net, self.metadata = load_classifier(weights)
        self.net = net.to(self.device).requires_grad_(False)
        self.fingerprint = classifier_fingerprint(weights)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C) predicted digit of each channel."""
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"stacked digits need uint8 (N, C, H, W) images, got {images.dtype} {tuple(images.shape)}")
        n, c, h, w = images.shape
        x = to_classifier_input(images.reshape(n * c, 1, h, w)).to(self.device)
        with torch.autocast(device_type=self.device.type, enabled=False):
            logits = self.net(x)[1]
        return logits.argmax(1).view(n, c).cpu()
