"""The full metric set for a generator and its data, shared by the training callback and `gan-lab evaluate`.

Images: FID, IS, KID, precision/recall and density/coverage on the features of a named extractor
(plus class coverage and intra-FID for the digit classifiers), and the Stacked MNIST mode metrics
of PacGAN Table 2 on Stacked MNIST data. Points: the PacGAN mode metrics and the exact EMD.
Results are plain floats keyed by short names ("fid", "is_mean", "modes", ...); the callback logs
them as "metrics/<name>" and `evaluate` writes them to JSON under the same names.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from datamodules import GANDataModule, StackedMNISTDataModule, to_uint8_images
from gan_modules.metrics import scores, stacked
from gan_modules.metrics.cache import FeatureCache
from gan_modules.metrics.collective import Collective, gather_rows
from gan_modules.metrics.extractors import FeatureExtractor, classifier_weights
from gan_modules.metrics.toy import exact_emd, mode_metrics

# Images: metrics on extractor features ("dc" = density and coverage; "intra_fid" only with a digit
# classifier extractor), and "modes" = Stacked MNIST's modes covered and reverse KL, with the KL's
# per-channel digit part and the digits' classifier confidence (that data only; metrics/stacked.py)
FEATURE_METRICS = ("fid", "is", "kid", "pr", "dc", "intra_fid")
LABELS = "labels"  # the gathered row of each generated sample's class, for a conditional model
IMAGE_METRICS = (*FEATURE_METRICS, "modes")
# Points: "modes" = PacGAN's modes covered, % high quality and reverse KL (milliseconds); "emd" =
# the exact earth mover's distance, a network-simplex solve (about a second at 2,500 x 2,500 points)
POINT_METRICS = ("modes", "emd")
KIND_METRICS = {"image": IMAGE_METRICS, "points": POINT_METRICS}
ALL_METRICS = tuple(dict.fromkeys(IMAGE_METRICS + POINT_METRICS))
DEFAULT_NUM = {"image": 10_000, "points": 2_500}  # FID-10k; PacGAN's 2,500 samples for 2D mixtures


def _say(message: str) -> None:
    print(f"gan-lab metrics: {message}", file=sys.stderr)


@dataclass
class MetricSettings:
    """What to compute; every field ends up in the logged protocol.

    num_fake / num_real: None = the kind's default (10,000 images, 2,500 points); num_real is
    capped at the size of the real data. seed: chunk c of generated samples uses noise seed
    seed * 1_000_003 + c; the real subset is drawn with `seed`. mode_samples / mode_classifier_path:
    Stacked MNIST's sample count and MNIST classifier (None: `gan-lab train-evaluator --dataset
    mnist`'s cached file).
    """

    num_fake: int | None = None
    num_real: int | None = None
    extractor: str = "inception"
    weights_path: str | None = None
    metrics: list[str] = field(default_factory=lambda: list(ALL_METRICS))  # each evaluator takes its kind's
    batch_size: int = 100
    seed: int = 0
    is_splits: int = scores.IS_SPLITS
    kid_subsets: int = scores.KID_SUBSETS
    kid_subset_size: int = scores.KID_SUBSET_SIZE
    pr_neighborhood: int = scores.PR_NEIGHBORHOOD
    dc_neighborhood: int = scores.DC_NEIGHBORHOOD
    mode_samples: int = stacked.NUM_SAMPLES
    mode_classifier_path: str | None = None
    cache_dir: str | None = None

    def validate(self, prefix: str = "metrics") -> None:
        """One-line errors naming the option, before anything runs."""
        checks: list[tuple[bool, str, Any, str]] = [
            (self.num_fake is None or self.num_fake >= 2, "num_fake", self.num_fake, "null or an integer >= 2"),
            (self.num_real is None or self.num_real >= 2, "num_real", self.num_real, "null or an integer >= 2"),
            (self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1"),
            (self.is_splits >= 1, "is_splits", self.is_splits, "an integer >= 1"),
            (self.kid_subsets >= 1, "kid_subsets", self.kid_subsets, "an integer >= 1"),
            (self.kid_subset_size >= 2, "kid_subset_size", self.kid_subset_size, "an integer >= 2"),
            (self.pr_neighborhood >= 1, "pr_neighborhood", self.pr_neighborhood, "an integer >= 1"),
            (self.dc_neighborhood >= 1, "dc_neighborhood", self.dc_neighborhood, "an integer >= 1"),
            (self.mode_samples >= 1, "mode_samples", self.mode_samples, "an integer >= 1"),
            (set(self.metrics) <= set(ALL_METRICS), "metrics", self.metrics, f"a subset of {list(ALL_METRICS)}"),
        ]
        if self.num_fake is not None and "is" in self.metrics:
            checks.append(
                (self.num_fake >= self.is_splits, "num_fake", self.num_fake, f">= is_splits={self.is_splits}")
            )
        for ok, key, value, allowed in checks:
            if not ok:
                raise ValueError(f"{prefix}.{key}={value!r} is invalid; allowed: {allowed}")


def chunk_seed(seed: int, chunk: int) -> int:
    return seed * 1_000_003 + chunk


def evaluation_labels(module: Any, first: int, size: int) -> Tensor | None:
    """The classes asked of a conditional generator for evaluation samples first .. first + size - 1:
    sample i is of class i mod K, so every class has an equal share (None: an unconditional model)."""
    k = getattr(module, "num_classes", 0)
    return torch.arange(first, first + size) % k if k else None


def generated_chunk(module: Any, seed: int, chunk: int, first: int, size: int) -> Tensor:
    """Chunk `chunk` (samples first .. first + size - 1) of the evaluation samples: the same tensor
    whichever rank draws it."""
    labels = evaluation_labels(module, first, size)
    extra = {} if labels is None else {"labels": labels}
    return module.sample(size, seed=chunk_seed(seed, chunk), batch_size=size, **extra)


def generated_samples(module: Any, num: int, batch_size: int, seed: int) -> Tensor:
    """All evaluation samples in one process, in the order every evaluation uses."""
    return torch.cat(
        [
            generated_chunk(module, seed, c, first, min(batch_size, num - first))
            for c, first in enumerate(range(0, num, batch_size))
        ]
    )


class RealData:
    """The training data in place of a generator (`gan-lab evaluate --real`): each evaluation chunk is
    a seeded draw, with replacement, of the data's rows, i.e. samples of a generator that had learnt
    the data exactly. Its scores are the floor of each metric under the same protocol (Stacked MNIST:
    the KL of multinomial noise and of the classifier's errors; FID: that of a finite sample)."""

    num_classes = 0  # scored unconditionally: the data's rows come without asked-for classes
    generator_ema = None
    protocol_name = "real data (draws with replacement of the training data)"
    SEED_OFFSET = 7_919  # keeps the draws apart from the real sample drawn with the same --seed

    def __init__(self, dm: GANDataModule) -> None:
        self.dm = dm

    def sample(self, n: int, seed: int, batch_size: int | None = None) -> Tensor:
        rows = self.dm.reference
        gen = torch.Generator().manual_seed(seed + self.SEED_OFFSET)
        return self.dm.decode(rows[torch.randint(len(rows), (n,), generator=gen)])


class Evaluator:
    """Base: settings, the data protocol, and `evaluate(module, datamodule, coll)` -> {name: value}."""

    kind: str  # "image" or "points", as the datamodule's kind
    monitor: str  # lower is better; the callback keeps the checkpoint with the best value

    def __init__(self, settings: MetricSettings, say: Callable[[str], None] = _say) -> None:
        settings.validate()
        self.settings, self.say = settings, say
        allowed = KIND_METRICS[self.kind]
        self.metrics = [m for m in allowed if m in settings.metrics]
        if not self.metrics:
            bad = f"metrics.metrics={settings.metrics!r}"
            raise ValueError(f"{bad} has no {self.kind} metric; allowed: {list(allowed)}")

    def counts(self, dm: GANDataModule) -> tuple[int, int]:
        default = DEFAULT_NUM[self.kind]
        num_fake = self.settings.num_fake or default
        # the real set is the whole reference, also when training sees a fraction of it (data.fraction)
        return num_fake, min(self.settings.num_real or default, len(dm.reference))

    def protocol(self, dm: GANDataModule, module: Any = None) -> dict[str, Any]:
        num_fake, num_real = self.counts(dm)
        data = dm.protocol()
        out = {
            "kind": self.kind,
            "dataset": data["dataset"],
            "real_split": data["split"],
            "real_size": data["size"],
            "shape": data["shape"],
            "num_fake": num_fake,
            "num_real": num_real,
            "seed": self.settings.seed,
        }
        if module is not None:
            ema = getattr(module, "generator_ema", None) is not None
            out["generator"] = getattr(module, "protocol_name", "ema" if ema else "generator")
        return out

    def evaluate(self, module: Any, dm: GANDataModule, coll: Collective) -> dict[str, float]:
        raise NotImplementedError


class PointEvaluator(Evaluator):
    """2D mixtures: modes covered, % high quality, reverse KL (PacGAN Sec. 5.1) and exact EMD (POT)."""

    kind = "points"
    monitor = "emd"

    def protocol(self, dm: GANDataModule, module: Any = None) -> dict[str, Any]:
        out = super().protocol(dm, module)
        if self.metrics != list(POINT_METRICS):  # on record only when part of the set is skipped
            out["metrics"] = list(self.metrics)
        return out

    def evaluate(self, module: Any, dm: GANDataModule, coll: Collective) -> dict[str, float]:
        num_fake, num_real = self.counts(dm)
        seed, batch = self.settings.seed, self.settings.batch_size
        fake = gather_rows(
            lambda c, first, k: {"points": generated_chunk(module, seed, c, first, k).float()}, num_fake, batch, coll
        )["points"]
        results = None
        if coll.rank == 0:
            results = {}
            modes = getattr(dm, "modes", None)
            if modes is not None and "modes" in self.metrics:
                results.update(mode_metrics(fake, modes, dm.mode_std))
            if "emd" in self.metrics:
                results["emd"] = exact_emd(fake, dm.real_samples(num_real, seed=seed))
        return coll.broadcast(results)


class ImageEvaluator(Evaluator):
    """Metrics on one extractor's features (real features cached on disk), and Stacked MNIST modes."""

    kind = "image"
    monitor = "fid"

    def __init__(
        self, settings: MetricSettings, device: torch.device | str = "cpu", say: Callable[[str], None] = _say
    ) -> None:
        super().__init__(settings, say)
        if "fid" not in self.metrics and "modes" in self.metrics:
            self.monitor = "reverse_kl"  # a Stacked MNIST run scored by its modes alone keeps its best KL
        self.device = device
        uses_features = any(m in FEATURE_METRICS for m in self.metrics)
        self.extractor = FeatureExtractor(settings.extractor, settings.weights_path, device) if uses_features else None
        self.cache = FeatureCache(settings.cache_dir)
        self._real: tuple[dict[str, Any], dict[str, Tensor], dict] | None = None  # (key, features, FID stats)
        self._mode_classifier: stacked.ChannelDigits | None = None
        self._warned_kid = False

    def applicable(self, dm: GANDataModule) -> list[str]:
        """The chosen metrics that this data and extractor have; an error when none is left."""
        classifier = self.extractor is not None and self.extractor.spec.classifier
        out = [m for m in self.metrics if m in FEATURE_METRICS and (m != "intra_fid" or classifier)]
        if "modes" in self.metrics and isinstance(dm, StackedMNISTDataModule):
            out.append("modes")
        if not out:
            raise ValueError(
                f"metrics.metrics={self.metrics!r} has nothing to compute for {dm.name} data; allowed: modes needs "
                f"stacked_mnist data, intra_fid a classifier extractor, the others any images ({list(FEATURE_METRICS)})"
            )
        return out

    def mode_classifier(self) -> stacked.ChannelDigits:
        """The pinned MNIST classifier of the Stacked MNIST modes, loaded on first use."""
        if self._mode_classifier is None:
            weights = classifier_weights("mnist", self.settings.mode_classifier_path)
            self._mode_classifier = stacked.ChannelDigits(weights, self.device)
        return self._mode_classifier

    def kid_subset_size(self, dm: GANDataModule) -> int:
        """torch-fidelity raises when a subset is larger than a sample set; use all samples instead, on record."""
        return min(self.settings.kid_subset_size, *self.counts(dm))

    def protocol(self, dm: GANDataModule, module: Any = None) -> dict[str, Any]:
        s, metrics = self.settings, self.applicable(dm)
        out = {**super().protocol(dm, module), "metrics": metrics}
        if self.extractor is not None:
            spec = self.extractor.spec
            out.update(
                extractor=self.extractor.name,
                extractor_weights=self.extractor.fingerprint,
                feature_layer=spec.fid_layer,
            )
            if "is" in metrics:
                out.update(is_layer=spec.logits_layer, is_splits=s.is_splits)
        if "kid" in metrics:
            out.update(kid_subsets=s.kid_subsets, kid_subset_size=self.kid_subset_size(dm))
        if "pr" in metrics:
            out.update(pr_neighborhood=s.pr_neighborhood)
        if "dc" in metrics:
            out.update(dc_neighborhood=s.dc_neighborhood)
        if "intra_fid" in metrics:
            conditional = getattr(module, "num_classes", 0) > 0
            out.update(
                intra_fid_classes="real: the classifier's predicted class; generated: the class asked for"
                if conditional
                else "the classifier's predicted class, for real and generated samples alike"
            )
        if getattr(module, "num_classes", 0) and self.extractor is not None and self.extractor.spec.classifier:
            out.update(class_accuracy_labels="sample i generated for class i mod K, scored by the classifier's argmax")
        if "modes" in metrics:
            out.update(
                mode_samples=s.mode_samples, num_modes=dm.num_modes, mode_classifier=self.mode_classifier().fingerprint
            )
        return out

    def _features(self, images: Tensor) -> dict[str, Tensor]:
        assert self.extractor is not None
        return self.extractor(to_uint8_images(images))

    def real_layers(self, dm: GANDataModule) -> list[str]:
        """Real features kept: FID's layer, and the class logits when intra-FID needs real classes."""
        assert self.extractor is not None
        spec = self.extractor.spec
        return [spec.fid_layer, *([spec.logits_layer] if "intra_fid" in self.applicable(dm) else [])]

    def real_key(self, dm: GANDataModule, real: Tensor) -> dict[str, Any]:
        assert self.extractor is not None
        return {
            "data": dm.protocol(),
            "num_real": len(real),
            "real_seed": self.settings.seed,
            "content_sha256": hashlib.sha256(to_uint8_images(real).numpy().tobytes()).hexdigest(),
            "extractor": self.extractor.name,
            "extractor_weights": self.extractor.fingerprint,
            "layers": self.real_layers(dm),
        }

    def real_features(self, dm: GANDataModule, coll: Collective) -> tuple[dict[str, Tensor], dict]:
        """Real features by layer and FID statistics: memory, else a verified disk cache, else computed once."""
        assert self.extractor is not None
        _, num_real = self.counts(dm)
        real = dm.real_samples(num_real, seed=self.settings.seed)
        key = self.real_key(dm, real)
        if self._real is not None and self._real[0] == key:
            return self._real[1], self._real[2]
        features, message = self.cache.load(key)
        if coll.all_true(features is not None):  # all ranks read the cache, or all compute together
            if coll.rank == 0:
                self.say(message)
        else:
            if coll.rank == 0:
                self.say(f"{message}; computing {num_real} real features with {self.extractor.name}")
            layers = key["layers"]
            features = gather_rows(
                lambda _, first, k: {n: v for n, v in self._features(real[first : first + k]).items() if n in layers},
                num_real,
                self.settings.batch_size,
                coll,
            )
            if coll.rank == 0:
                self.say(f"cached real features -> {self.cache.save(key, features)}")
        stats = scores.fid_statistics(features[self.extractor.spec.fid_layer])
        self._real = (key, features, stats)
        return features, stats

    def evaluate(self, module: Any, dm: GANDataModule, coll: Collective) -> dict[str, float]:
        s, metrics = self.settings, self.applicable(dm)
        results: dict[str, float] = {}
        if self.extractor is not None:
            num_fake, _ = self.counts(dm)
            real, real_stats = self.real_features(dm, coll)

            def fake_rows(c: int, first: int, k: int) -> dict[str, Tensor]:
                labels = evaluation_labels(module, first, k)
                features = self._features(generated_chunk(module, s.seed, c, first, k))
                return features if labels is None else {**features, LABELS: labels}

            fake = gather_rows(fake_rows, num_fake, s.batch_size, coll)
            if coll.rank == 0:
                results.update(self.scores(fake, real, real_stats, dm, metrics))
        if "modes" in metrics:
            reader = self.mode_classifier()

            def read(c: int, first: int, k: int) -> dict[str, Tensor]:
                digits, confidence = reader.read(to_uint8_images(generated_chunk(module, s.seed, c, first, k)))
                return {"digits": digits, "confidence": confidence}

            rows = gather_rows(read, s.mode_samples, s.batch_size, coll)
            if coll.rank == 0:
                results.update(stacked.stacked_mode_metrics(rows["digits"], rows["confidence"]))
        return coll.broadcast(results if coll.rank == 0 else None)

    def scores(
        self, fake: dict[str, Tensor], real: dict[str, Tensor], real_stats: dict, dm: GANDataModule, metrics: list[str]
    ) -> dict[str, float]:
        """Feature metrics from the gathered generated features and the real ones, by layer."""
        assert self.extractor is not None
        s, spec, out = self.settings, self.extractor.spec, {}
        fake_f, real_f, logits = fake[spec.fid_layer], real[spec.fid_layer], fake[spec.logits_layer]
        if "fid" in metrics:
            out["fid"] = scores.fid_from_statistics(scores.fid_statistics(fake_f), real_stats)
        if "is" in metrics:
            out["is_mean"], out["is_std"] = scores.inception_score(logits, s.is_splits)
        if "kid" in metrics:
            size = self.kid_subset_size(dm)
            if size < s.kid_subset_size and not self._warned_kid:
                self._warned_kid = True
                self.say(f"KID subset size {s.kid_subset_size} > samples available; using {size} (in the protocol)")
            out["kid_mean"], out["kid_std"] = scores.kid(fake_f, real_f, s.kid_subsets, size)
        if "pr" in metrics:
            out["precision"], out["recall"] = scores.precision_recall(fake_f, real_f, s.pr_neighborhood)
        if "dc" in metrics:
            out["density"], out["coverage"] = scores.density_coverage(fake_f, real_f, s.dc_neighborhood)
        labels = fake.get(LABELS)  # the classes a conditional generator was asked for
        if spec.classifier:
            out.update(scores.class_coverage(logits))
            if labels is not None:
                out.update(scores.class_accuracy(logits, labels, logits.shape[1]))
        if "intra_fid" in metrics:
            real_classes = real[spec.logits_layer].argmax(1)
            fake_classes = logits.argmax(1) if labels is None else labels
            out.update(scores.intra_fid(fake_f, fake_classes, real_f, real_classes, logits.shape[1]))
        return out


def build_evaluator(
    kind: str, settings: MetricSettings, device: torch.device | str = "cpu", say: Callable[[str], None] = _say
) -> Evaluator:
    if kind == "image":
        return ImageEvaluator(settings, device, say)
    return PointEvaluator(settings, say)
