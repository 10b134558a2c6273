"""A small CNN digit classifier: the usual evaluator for digit GANs (classifier FID, class coverage).

ImageNet Inception features say little about 8x8 or 28x28 digits, so digit-GAN papers score
samples with a classifier trained on the real data (e.g. "MNIST score", and the mode counts of
VEEGAN / PacGAN). `gan-lab train-evaluator` trains one and caches it; `ClassifierExtractor`
exposes it to torch-fidelity's metric code like any other feature extractor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from gan_modules.metrics.paths import cache_root

INPUT_SIZE = 32  # every digit image is resized to 32x32 before classification
FORMAT = 1


def default_classifier_path(dataset: str) -> Path:
    return cache_root() / "evaluators" / f"{dataset}-classifier.pt"


def to_classifier_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1, H, W) -> float (N, 1, 32, 32) in [-1, 1]; antialiased when shrinking."""
    x = images.float() / 127.5 - 1.0
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
    return x


class DigitClassifier(nn.Module):
    """Three conv/pool stages and a 128-unit penultimate layer (the "features" used for FID)."""

    def __init__(self, num_classes: int = 10, width: int = 16, feature_dim: int = 128) -> None:
        super().__init__()
        self.config = {"num_classes": num_classes, "width": width, "feature_dim": feature_dim}
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(4 * w * (INPUT_SIZE // 8) ** 2, feature_dim), nn.ReLU(),
        )  # fmt: skip
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits) for inputs prepared by `to_classifier_input`."""
        features = self.body(x)
        return features, self.head(self.dropout(features))


def save_classifier(net: DigitClassifier, path: Path, **metadata: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "config": net.config, "state_dict": net.state_dict(), **metadata}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def classifier_fingerprint(path: Path) -> str:
    """Names the weights, not the file: torch.save's archive records the file name, so two files with
    bit-identical weights hash differently; this hashes the architecture and every tensor's bytes."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    digest = hashlib.sha256(repr(sorted(payload.get("config", {}).items())).encode())
    for key, tensor in sorted(payload["state_dict"].items()):
        digest.update(key.encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return f"{path.name}:weights-sha256={digest.hexdigest()[:16]}"


def load_classifier(path: Path) -> tuple[DigitClassifier, dict[str, Any]]:
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a gan-lab classifier file (format {FORMAT}); retrain it with gan-lab train-evaluator"
        )
    net = DigitClassifier(**payload["config"])
    net.load_state_dict(payload["state_dict"])
    return net.eval(), {k: v for k, v in payload.items() if k not in ("state_dict", "config")}


class ClassifierExtractor(FeatureExtractorBase):
    """torch-fidelity view of a trained `DigitClassifier`: features "features" (128) and "logits" (10)."""

    def __init__(
        self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None, **_: Any
    ) -> None:
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ValueError(f"feature extractor {name} needs feature_extractor_weights_path (a classifier file)")
        self.classifier, self.metadata = load_classifier(Path(feature_extractor_weights_path))
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"{self.name} expects uint8 (N, 1, H, W) images, got {x.dtype} {tuple(x.shape)}")
        features, logits = self.classifier(to_classifier_input(x))
        out = {"features": features, "logits": logits}
        return tuple(out[name] for name in self.features_list)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("features", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return False


def _random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by up to `max_shift` pixels (zero padding = background -1)."""
    n, _, h, w = x.shape
    padded = F.pad(x, [max_shift] * 4, value=-1.0)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


@torch.no_grad()
def accuracy(net: DigitClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    net.eval()
    correct = 0
    for x, y in zip(images.split(batch_size), labels.split(batch_size), strict=True):
        correct += int((net(to_classifier_input(x))[1].argmax(1) == y).sum())
    return correct / len(labels)


@contextmanager
def _one_thread_deterministic() -> Iterator[None]:
    """A classifier FID is only comparable under one weights file, so training must not depend on the
    host's thread count: a multi-threaded CPU reduction sums in a thread-dependent order, and two
    trainings (default threads vs one) differed by up to 0.28 in a weight."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


@_one_thread_deterministic()
def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int = 15,
    batch_size: int = 64,
    lr: float = 1e-3,
    heldout_fraction: float = 0.15,
    seed: int = 0,
) -> tuple[DigitClassifier, dict[str, float]]:
    """Train on a random (1 - heldout_fraction) of uint8 (N, 1, H, W) images; report held-out accuracy.
    The same inputs and seed give the same weights bit for bit on a given machine and torch build."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    perm = torch.randperm(len(images), generator=gen)
    n_held = max(1, round(heldout_fraction * len(images)))
    held, train = perm[:n_held], perm[n_held:]
    net = DigitClassifier(num_classes=int(labels.max()) + 1)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x_train, y_train = images[train], labels[train]
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(train), generator=gen)
        for idx in order.split(batch_size):
            x = _random_shift(to_classifier_input(x_train[idx]), 2, gen)
            loss = F.cross_entropy(net(x)[1], y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    stats = {
        "heldout_accuracy": accuracy(net, images[held], labels[held]),
        "train_accuracy": accuracy(net, x_train, y_train),
        "num_train": float(len(train)),
        "num_heldout": float(n_held),
    }
    return net.eval(), stats
