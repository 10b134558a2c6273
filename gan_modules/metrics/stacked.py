"""Stacked MNIST mode metrics (PacGAN, Lin et al. 2018, Table 2; after VEEGAN, Srivastava et al. 2017).

Each channel of a generated image is classified by a pinned MNIST classifier (`gan-lab
train-evaluator --dataset mnist`); the three digits give the mode id 100 d_R + 10 d_G + d_B. The
protocol: 26,000 samples, the number of modes with at least one sample (of 1,000) and
KL(mode histogram || uniform).

Two diagnostics say where a KL comes from. Because the uniform over modes is the product of uniform
digits, KL(modes) = sum over channels of KL(digit histogram || uniform) + the channels' total
correlation (>= 0): `channel_kl` is the first part, unbalanced digits, which a generator that draws
its channels independently still shows. `digit_confidence` is the classifier's mean top-class
probability per channel: hybrid or blurry digits go to the shapes they resemble (on our benchmark
mostly 3, 5, 8 and 9), which skews the digit histograms without any mode being dropped.
"""

from __future__ import annotations

from pathlib import Path

import torch

from datamodules.stacked_mnist import DIGIT_CLASSES, mode_ids
from gan_modules.metrics.classifier import classifier_fingerprint, load_classifier, to_classifier_input
from gan_modules.metrics.scores import kl_to_uniform, top_class_probability

NUM_SAMPLES = 26_000  # PacGAN Table 2


def stacked_mode_metrics(digits: torch.Tensor, confidence: torch.Tensor | None = None) -> dict[str, float]:
    """From (N, C) per-channel digits (and their (N, C) top-class probabilities): modes seen at least
    once of 10^C, reverse_kl = KL(mode histogram || uniform), channel_kl and digit_confidence (module
    docstring)."""
    digits = digits.cpu()
    counts = torch.bincount(mode_ids(digits), minlength=DIGIT_CLASSES ** digits.shape[1])
    channels = [torch.bincount(digits[:, c], minlength=DIGIT_CLASSES) for c in range(digits.shape[1])]
    out = {
        "modes": float((counts > 0).sum()),
        "reverse_kl": kl_to_uniform(counts),
        "channel_kl": sum(kl_to_uniform(h) for h in channels),
    }
    if confidence is not None:
        out["digit_confidence"] = float(confidence.double().mean())
    return out


class ChannelDigits:
    """A trained `DigitClassifier` applied to every channel of uint8 (N, C, H, W) images."""

    def __init__(self, weights: Path, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        net, self.metadata = load_classifier(weights)
        self.net = net.to(self.device).requires_grad_(False)
        self.fingerprint = classifier_fingerprint(weights)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C) predicted digit of each channel."""
        return self.read(images)[0]

    @torch.no_grad()
    def read(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C) predicted digit of each channel and (N, C) its softmax probability."""
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"stacked digits need uint8 (N, C, H, W) images, got {images.dtype} {tuple(images.shape)}")
        n, c, h, w = images.shape
        x = to_classifier_input(images.reshape(n * c, 1, h, w)).to(self.device)
        with torch.autocast(device_type=self.device.type, enabled=False):
            logits = self.net(x)[1]
        return logits.argmax(1).view(n, c).cpu(), top_class_probability(logits).view(n, c).cpu()
