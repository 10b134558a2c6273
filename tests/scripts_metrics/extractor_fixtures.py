"""Extractors for tests, shared by the in-process tests and the DDP script.

`TinyCNN`: a tiny deterministic random CNN registered with torch-fidelity *and* gan-lab under one
name; a stand-in for Inception with the same interface (uint8 RGB in, named features out, its own
fixed resize), so tests compare the callback with `torch_fidelity.calculate_metrics` in seconds.
`random_inception_weights`: a weights file for torch-fidelity's real Inception architecture.
`fidelity_metrics`: the reference, `torch_fidelity.calculate_metrics` with TinyCNN on given samples.
`digits_classifier` / `digits_as_mnist`: a digit classifier trained on the bundled 8x8 digits, and
those digits written as MNIST's IDX test file (Stacked MNIST without a download).
"""

from __future__ import annotations

import functools
import gzip
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torch_fidelity
from torch import nn
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from datamodules import DigitsDataModule, to_uint8_images
from gan_modules.metrics.classifier import save_classifier, train_classifier
from gan_modules.metrics.extractors import EXTRACTORS, INCEPTION_FILE, ExtractorSpec, register_extractor

NAME = "tiny-cnn"
FIDELITY_NAME = "gan-lab-test-tiny-cnn"


class TinyCNN(FeatureExtractorBase):
    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 12, 3, stride=2, padding=1)
        self.fc = nn.Linear(24, 10)
        gen = torch.Generator().manual_seed(1234)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.4)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x):
        assert x.dtype == torch.uint8 and x.shape[1] == 3
        x = F.interpolate(x.float() / 127.5 - 1, size=(16, 16), mode="bilinear", align_corners=False)
        h = torch.tanh(self.conv2(torch.tanh(self.conv1(x))))
        features = torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)  # 24 dims
        out = {"features": features, "logits": self.fc(features) * 3}
        return tuple(out[k] for k in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return ("features", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]

    @staticmethod
    def can_be_compiled():
        return False


def register() -> str:
    if FIDELITY_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(FIDELITY_NAME, TinyCNN)
    if NAME not in EXTRACTORS:
        register_extractor(NAME, ExtractorSpec(FIDELITY_NAME, "features", "logits", 3, lambda _: None))
    return NAME


def random_inception_weights(folder: Path) -> Path:
    """torch-fidelity's Inception architecture with He-initialised random weights, saved as a weights file.

    The real weights cannot be downloaded here; the architecture, resize and feature wiring under
    test are the same whatever the weights. Built by letting the constructor load an empty state
    dict non-strictly (a temporary class patch), then saving the randomly initialised network.
    """
    empty = folder / "empty.pth"
    torch.save({}, empty)
    original = FeatureExtractorInceptionV3.load_state_dict
    FeatureExtractorInceptionV3.load_state_dict = functools.partialmethod(nn.Module.load_state_dict, strict=False)
    try:
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    finally:
        FeatureExtractorInceptionV3.load_state_dict = original
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
    path = folder / INCEPTION_FILE
    torch.save(net.state_dict(), path)
    return path


class Images(Dataset):
    """[-1, 1] images as torch-fidelity's input1/input2 (grayscale repeated to RGB, as for Inception)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = to_uint8_images(images).repeat(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def fidelity_metrics(fake: torch.Tensor, real: torch.Tensor, kid_subset_size: int) -> dict[str, float]:
    out = torch_fidelity.calculate_metrics(
        input1=Images(fake),
        input2=Images(real),
        feature_extractor=FIDELITY_NAME,
        isc=True,
        fid=True,
        kid=True,
        prc=True,
        kid_subset_size=kid_subset_size,
        cuda=False,
        cache=False,
        save_cpu_ram=True,
        verbose=False,
    )
    return {
        "fid": out["frechet_inception_distance"],
        "is_mean": out["inception_score_mean"],
        "is_std": out["inception_score_std"],
        "kid_mean": out["kernel_inception_distance_mean"],
        "kid_std": out["kernel_inception_distance_std"],
        "precision": out["precision"],
        "recall": out["recall"],
    }


def digits_classifier(folder: Path, epochs: int = 4) -> Path:
    """`DigitClassifier` trained on the 1,797 bundled digits (about 95% held-out accuracy at 4 epochs)."""
    dm = DigitsDataModule()
    net, stats = train_classifier(dm.stored, torch.as_tensor(dm.labels()).long(), epochs=epochs)
    assert stats["heldout_accuracy"] > 0.9, stats
    return save_classifier(net, folder / "digits.pt", dataset="digits", **stats)


def digits_as_mnist(root: Path) -> Path:
    """`root`/MNIST/raw/t10k-{images-idx3,labels-idx1}-ubyte.gz holding the bundled digits (8x8) and
    their labels, in file order."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    dm = DigitsDataModule()
    images, labels = dm.stored[:, 0].numpy(), dm.stored_labels.numpy().astype(np.uint8)
    with gzip.open(raw / "t10k-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(struct.pack(">IIII", 2051, *images.shape) + images.tobytes())
    with gzip.open(raw / "t10k-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(struct.pack(">II", 2049, len(labels)) + labels.tobytes())
    return root
