"""Stacked MNIST: three MNIST digits as the R, G and B channels of one image, so 10^3 = 1,000 modes.

The standard image mode-collapse benchmark (Unrolled GAN, Metz et al. 2017; VEEGAN, Srivastava et
al. 2017; PacGAN, Lin et al. 2018, Table 2): a generator's coverage is read off by classifying
each channel with an MNIST classifier (`gan_modules.metrics.stacked`). The stacked set is a fixed
draw of `size` digit triples from one MNIST split, drawn from `seed`, held in memory like every
image set and served by the same resumable global-batch stream.
"""

from __future__ import annotations

import torch

from datamodules.images import ImageDataModule, TorchvisionDataModule

DIGITS_PER_IMAGE = 3
DIGIT_CLASSES = 10
NUM_MODES = DIGIT_CLASSES**DIGITS_PER_IMAGE


def mode_ids(digits: torch.Tensor) -> torch.Tensor:
    """(N, C) per-channel digits -> (N,) mode ids, the digits read as a base-10 number (R first)."""
    powers = DIGIT_CLASSES ** torch.arange(digits.shape[1] - 1, -1, -1, device=digits.device)
    return (digits.long() * powers).sum(1)


class StackedMNISTDataModule(ImageDataModule):
    """`size` images whose channel c is MNIST digit `triples[i, c]` of the chosen split.

    The digits come from MNIST's IDX files under `root` (torchvision's layout, as for `mnist`):
    `split: test` needs only the 10k test files, `split: train` the 60k training files.
    """

    name = "stacked_mnist"
    native_size = 28
    channels = DIGITS_PER_IMAGE
    num_modes = NUM_MODES
    num_classes = NUM_MODES  # a row's label is its mode (`mode_ids` of its three digits' labels)

    def __init__(
        self,
        root: str = "data",
        split: str = "train",
        download: bool = True,
        size: int = 100_000,
        image_size: int | None = None,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        if size < 1:
            raise ValueError(f"data.size={size} is invalid; allowed: an integer >= 1")
        super().__init__(image_size=image_size, batch_size=batch_size, seed=seed)
        self.digits = TorchvisionDataModule(
            "mnist", root=root, split=split, download=download, image_size=image_size, batch_size=1
        )
        self.size = size

    @property
    def split(self) -> str:
        return self.digits.split

    def triples(self, num_digits: int) -> torch.Tensor:
        """(size, 3) indices into the split's digits, one per channel, drawn from `seed`."""
        gen = torch.Generator().manual_seed(self.seed)
        return torch.randint(num_digits, (self.size, DIGITS_PER_IMAGE), generator=gen)

    def load(self) -> torch.Tensor:
        digits = self.digits.stored[:, 0]  # (N, H, W) uint8 at image_size
        return digits[self.triples(len(digits))]  # (size, 3, H, W)

    def load_labels(self) -> torch.Tensor:
        labels = self.digits.stored_labels
        return mode_ids(labels[self.triples(len(labels))])
