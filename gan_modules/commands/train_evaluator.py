"""`gan-lab train-evaluator`: train and cache the digit classifier behind `extractor: digits-classifier`."""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np
import torch

NAME = "train-evaluator"
HELP = "train the small CNN digit classifier used for classifier FID / class coverage, and cache it"
EPOCHS, HELDOUT, SEED = 15, 0.15, 0  # not from a paper: > 97% held-out accuracy on both data sets


def mnist_labels(root: Path, split: str) -> torch.Tensor:
    """Labels in file order, from torchvision's raw IDX layout (gz or not), else via torchvision."""
    stem = "train-labels-idx1-ubyte" if split == "train" else "t10k-labels-idx1-ubyte"
    for path in (root / "MNIST" / "raw" / stem, root / "MNIST" / "raw" / f"{stem}.gz"):
        if path.is_file():
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64))
    import torchvision.datasets as tvd

    return tvd.MNIST(str(root), train=split == "train", download=True).targets


def load_labelled(dataset: str, root: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 1, H, W) images at native resolution and their int64 labels."""
    from datamodules import DigitsDataModule, TorchvisionDataModule

    if dataset == "digits":
        dm = DigitsDataModule()
        return dm.stored, dm.labels().long()
    dm = TorchvisionDataModule(dataset="mnist", root=root, split=split)
    return dm.stored, mnist_labels(Path(root).expanduser(), split)


def train_and_save(dataset: str, root: str, split: str, out: Path, epochs: int, heldout: float, seed: int) -> dict:
    """Train the classifier on `dataset` and write it to `out`; returns its accuracy statistics."""
    from gan_modules.metrics.classifier import save_classifier, train_classifier

    images, labels = load_labelled(dataset, root, split)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    net, stats = train_classifier(images, labels, epochs=epochs, heldout_fraction=heldout, seed=seed)
    split = "all" if dataset == "digits" else split
    save_classifier(net, out, dataset=dataset, split=split, image_size=int(images.shape[-1]), **stats)
    return {**stats, "split": split}


def main(argv: list[str]) -> int:
    from datamodules import MissingDataError
    from gan_modules.metrics.classifier import default_classifier_path

    parser = argparse.ArgumentParser(prog=f"gan-lab {NAME}", description=HELP)
    parser.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
    parser.add_argument("--root", default="data", help="MNIST folder (torchvision layout: <root>/MNIST/raw)")
    parser.add_argument("--split", choices=("train", "test"), default="train", help="MNIST split to train on")
    parser.add_argument("--out", default=None, help="output file (default: the cache path the extractor reads)")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--heldout", type=float, default=HELDOUT, help="fraction held out to report accuracy")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs={args.epochs} is invalid; allowed: an integer >= 1")
    if not 0 < args.heldout < 1:
        parser.error(f"--heldout={args.heldout} is invalid; allowed: a fraction in (0, 1)")
    out = Path(args.out).expanduser() if args.out else default_classifier_path(args.dataset)
    try:
        stats = train_and_save(args.dataset, args.root, args.split, out, args.epochs, args.heldout, args.seed)
    except (MissingDataError, ValueError) as err:
        print(f"gan-lab {NAME}: error: {err}", file=sys.stderr)
        return 2
    split = stats["split"]
    print(
        f"gan-lab {NAME}: {args.dataset} ({split}, {int(stats['num_train'])} train / {int(stats['num_heldout'])} "
        f"held out): held-out accuracy {stats['heldout_accuracy']:.4f}, train accuracy {stats['train_accuracy']:.4f}"
    )
    print(f"gan-lab {NAME}: wrote {out}")
    return 0
