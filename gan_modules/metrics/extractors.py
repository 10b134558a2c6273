"""Feature extractors for image metrics, by name, wrapping torch-fidelity's extractor classes.

The extractor is a plain object held by the metrics callback, never a submodule of the
LightningModule: a metric network registered on the module (as a torchmetrics metric attribute
would be) adds ~91 MB and hundreds of tensors to every checkpoint. Inputs are uint8 (N, C, H, W),
as torch-fidelity expects; grayscale is repeated to RGB for Inception. The network always runs in
float32, outside any autocast region, because bf16/fp16 features shift FID.

Registered names:
  inception          torch-fidelity's FID Inception (TF-compatible weights and resize; Heusel 2017)
  digits-classifier  `gan-lab train-evaluator --dataset digits` output
  mnist-classifier   `gan-lab train-evaluator --dataset mnist` output
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor
from torch_fidelity.utils import create_feature_extractor

from gan_modules.metrics.classifier import ClassifierExtractor, classifier_fingerprint, default_classifier_path
from gan_modules.metrics.paths import file_sha256

INCEPTION_FILE = URL_INCEPTION_V3.rsplit("/", 1)[-1]  # weights-inception-2015-12-05-6726825d.pth


class MissingWeightsError(FileNotFoundError):
    """An extractor's weights are neither on disk nor downloadable; the message says what to do."""


@dataclass(frozen=True)
class ExtractorSpec:
    """How to build and feed one extractor.

    fidelity_name: its name in torch-fidelity's registry (so `calculate_metrics` can use the same one)
    fid_layer:     features for FID, KID and precision/recall
    logits_layer:  class logits for the Inception Score (and class coverage when `classifier`)
    channels:      input channels it takes (grayscale data is repeated to 3 for RGB extractors)
    weights:       weights_path option -> weights file to load (None: the extractor needs none)
    classifier:    logits are predictions over the data's own classes (digit classifiers)
    version:       identifies extractors without a weights file in cache keys
    """

    fidelity_name: str
    fid_layer: str
    logits_layer: str
    channels: int
    weights: Callable[[str | None], Path | None]
    classifier: bool = False
    version: str = "1"


EXTRACTORS: dict[str, ExtractorSpec] = {}


def register_extractor(name: str, spec: ExtractorSpec) -> None:
    """Make `name` usable as `extractor=` (the torch-fidelity class must be registered there too)."""
    if spec.fidelity_name not in FEATURE_EXTRACTORS_REGISTRY:
        raise ValueError(f"{spec.fidelity_name!r} is not registered with torch_fidelity.register_feature_extractor")
    EXTRACTORS[name] = spec


def inception_weights(weights_path: str | None) -> Path:
    """The FID Inception weights: `weights_path`, else torch hub's cache, else a download."""
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise MissingWeightsError(
                f"weights_path={str(path)!r} does not exist; it should be torch-fidelity's {INCEPTION_FILE} "
                f"(from {URL_INCEPTION_V3})"
            )
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if not cached.is_file():
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(URL_INCEPTION_V3, str(cached), progress=False)
        except (OSError, RuntimeError) as err:  # urllib's URLError/HTTPError are OSErrors
            reason = str(err).splitlines()[0][:100] if str(err) else ""
            raise MissingWeightsError(
                f"Inception weights {INCEPTION_FILE} are not in {cached.parent} and could not be downloaded "
                f"({type(err).__name__}: {reason}); fetch {URL_INCEPTION_V3} on a machine with internet and put it "
                "there, or set the metrics callback's weights_path (gan-lab evaluate --weights_path) to a local copy"
            ) from None
    return cached


def classifier_weights(dataset: str, weights_path: str | None) -> Path:
    """The classifier's weights file. The bundled digits' classifier is trained on first use (the data
    ships with scikit-learn); MNIST's needs the data set, so it is made by `gan-lab train-evaluator`."""
    path = Path(weights_path).expanduser() if weights_path is not None else default_classifier_path(dataset)
    if not path.is_file() and dataset == "digits" and weights_path is None:
        from gan_modules.commands.train_evaluator import EPOCHS, HELDOUT, SEED, train_and_save

        print(f"gan-lab: training the digits classifier once (cached at {path})")
        train_and_save("digits", "", "all", path, EPOCHS, HELDOUT, SEED)
    if not path.is_file():
        raise MissingWeightsError(
            f"{dataset}-classifier weights not found at {str(path)!r}; create them with "
            f"`gan-lab train-evaluator --dataset {dataset}` (writes {default_classifier_path(dataset)} by default) "
            "or set weights_path to such a file"
        )
    return path


for _dataset in ("digits", "mnist"):
    _fidelity_name = f"gan-lab-{_dataset}-classifier"
    if _fidelity_name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(_fidelity_name, ClassifierExtractor)
    register_extractor(
        f"{_dataset}-classifier",
        ExtractorSpec(_fidelity_name, "features", "logits", 1, partial(classifier_weights, _dataset), classifier=True),
    )
register_extractor("inception", ExtractorSpec("inception-v3-compat", "2048", "logits_unbiased", 3, inception_weights))


class FeatureExtractor:
    """A named extractor, loaded once, callable on uint8 image batches -> {layer: float32 features}."""

    def __init__(self, name: str, weights_path: str | None = None, device: torch.device | str = "cpu") -> None:
        if name not in EXTRACTORS:
            raise ValueError(f"extractor={name!r} is unknown; allowed: {', '.join(sorted(EXTRACTORS))}")
        self.name, self.spec = name, EXTRACTORS[name]
        self.device = torch.device(device)
        weights = self.spec.weights(weights_path)
        self.weights_file = weights
        kwargs = {"feature_extractor_weights_path": str(weights)} if weights is not None else {}
        layers = list(dict.fromkeys([self.spec.fid_layer, self.spec.logits_layer]))
        net = create_feature_extractor(self.spec.fidelity_name, layers, cuda=False, verbose=False, **kwargs)
        self.net: FeatureExtractorBase = net.to(self.device)
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """Identifies the exact weights (file name + content hash), part of every real-feature cache key."""
        if self._fingerprint is None:
            if self.weights_file is None:
                self._fingerprint = f"{self.spec.fidelity_name}:v{self.spec.version}"
            elif self.spec.classifier:
                self._fingerprint = classifier_fingerprint(self.weights_file)
            else:
                self._fingerprint = f"{self.weights_file.name}:sha256={file_sha256(self.weights_file)[:16]}"
        return self._fingerprint

    def adapt_channels(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"extractor {self.name} takes uint8 (N, C, H, W) images, got {images.dtype} {tuple(images.shape)}"
            )
        channels = images.shape[1]
        if channels == self.spec.channels:
            return images
        if channels == 1:
            return images.expand(-1, self.spec.channels, -1, -1)
        raise ValueError(f"extractor {self.name} takes {self.spec.channels}-channel images; the data has {channels}")

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.adapt_channels(images).to(self.device)
        with torch.autocast(device_type=self.device.type, enabled=False):
            out = self.net(x)
        return {k: v.float() for k, v in self.net.convert_features_tuple_to_dict(out).items()}
