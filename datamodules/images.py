"""Image datasets, held in memory as uint8 (N, C, H, W) and served in [-1, 1].

`digits` (scikit-learn's 1,797 real 8x8 digits) ships with a package and is the embedded default;
the torchvision sets download for users who are online and fail with a message naming the files
and folder when they are not.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.base import GANDataModule

TORCHVISION_SETS = ("mnist", "fashion_mnist", "cifar10", "celeba", "image_folder")


def to_uint8_images(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images -> uint8 in 0..255 (the format FID/IS feature extractors take)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 (N, C, H, W) images to size x size (antialiased when shrinking)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def dequantize_images(stored: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """uint8 x and u ~ U[0, 1) -> (x + u) / 128 - 1: uniform noise over each pixel value's bin.

    The reference form is WGAN-GP's gan_cifar_resnet.py (Gulrajani et al. 2017 code), lines 194-195,
    `2*((x/256.)-.5)` plus `tf.random_uniform(..., minval=0., maxval=1./128)`, the same in WGAN-CT's
    CT_gan_cifar_resnet.py (lines 201-202) and SNGAN's datasets/cifar10.py (`x / 128. - 1.` plus
    U[0, 1/128)); values lie in [-1, 1), on a 1/128 grid where `decode` uses 1/127.5.
    """
    return (stored.float() + u) / 128.0 - 1.0


FRACTION_SEED = 0  # one fixed subset per (data set, fraction): every run and seed of a comparison trains on it


def subset_indices(n: int, fraction: float) -> torch.Tensor:
    """The round(fraction * n) training images of a data-limited run (at least 1), sorted: a random
    subset drawn once from FRACTION_SEED, independent of `data.seed`, so seeds vary the training only."""
    keep = max(1, round(fraction * n))
    return torch.randperm(n, generator=torch.Generator().manual_seed(FRACTION_SEED))[:keep].sort().values


class ImageDataModule(GANDataModule):
    """Shared image logic: declared shape, optional resize, uint8 <-> [-1, 1].

    `fraction` < 1 trains on a fixed random subset of the images (data-limited GAN training, e.g.
    DiffAugment's 10% settings); evaluation still compares against all of them (`reference`), and
    the labels (`labels()`, of the native images, for data sets with `num_classes` > 0) follow the subset.
    `dequantize` adds uniform noise to the *training* batches (`dequantize_images`), drawn per global
    batch from the data seed (`GlobalBatchStream.local_noise`), so it is resumable and the same on any
    number of ranks; evaluation data stays undithered, as in the reference codes.
    """

    kind = "image"
    native_size: int = 32
    channels: int = 3

    def __init__(
        self,
        image_size: int | None = None,
        batch_size: int = 64,
        seed: int = 0,
        dequantize: bool = False,
        fraction: float = 1.0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        if image_size is not None and image_size < 4:
            raise ValueError(f"data.image_size={image_size} is invalid; allowed: an integer >= 4 or null")
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise ValueError(f"data.fraction={fraction!r} is invalid; allowed: a float in (0, 1]")
        self.image_size = image_size or self.native_size
        self.dequantize = dequantize
        self.fraction = float(fraction)
        self._all: torch.Tensor | None = None

    def dequantizer(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
        return dequantize_images if self.dequantize else None

    @property
    def data_shape(self) -> tuple[int, ...]:
        return (self.channels, self.image_size, self.image_size)

    def decode(self, stored: torch.Tensor) -> torch.Tensor:
        return stored.float() / 127.5 - 1.0

    def load(self) -> torch.Tensor:
        """The training images: all of them, or the fixed `fraction` subset (`subset_indices`)."""
        self._all = resize_uint8(self.load_native(), self.image_size)
        return self._all[subset_indices(len(self._all), self.fraction)] if self.fraction < 1 else self._all

    def load_labels(self) -> torch.Tensor:
        labels = torch.as_tensor(self.labels())
        return labels[subset_indices(len(labels), self.fraction)] if self.fraction < 1 else labels

    def labels(self) -> torch.Tensor:
        """The class of each image `load_native` returns, in its order."""
        raise NotImplementedError

    @property
    def reference(self) -> torch.Tensor:
        """Evaluation compares against the whole data set, also when training sees a fraction of it
        (the data-limited protocol of Zhao et al. 2020 and Karras et al. 2020a: same yardstick)."""
        stored = self.stored  # loading sets `_all`
        return stored if self._all is None else self._all

    def load_native(self) -> torch.Tensor:
        """uint8 (N, C, H, W) at the dataset's own resolution."""
        raise NotImplementedError

    def protocol(self) -> dict[str, object]:
        limited = {"training_fraction": self.fraction} if self.fraction < 1 else {}
        return {**super().protocol(), "image_size": self.image_size, **limited}


class DigitsDataModule(ImageDataModule):
    """scikit-learn's 1,797 real handwritten 8x8 digits (UCI optdigits), bundled with the package."""

    name = "digits"
    native_size = 8
    channels = 1
    num_classes = 10

    def load_native(self) -> torch.Tensor:
        from sklearn.datasets import load_digits

        images = load_digits().images  # (1797, 8, 8), values 0..16
        return torch.from_numpy(np.round(images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)

    def labels(self) -> torch.Tensor:
        from sklearn.datasets import load_digits

        return torch.from_numpy(load_digits().target)


class MissingDataError(FileNotFoundError):
    """Raised when a dataset is neither on disk nor downloadable; its message says how to get it."""


def _read_idx(path: Path, kind: str) -> torch.Tensor:
    """Read an IDX file (gz or not) of `kind` "images" or "labels" with torchvision's own readers."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    read = read_image_file if kind == "images" else read_label_file
    if path.suffix != ".gz":
        return read(str(path))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / path.stem
        with gzip.open(path, "rb") as src, open(raw, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return read(str(raw))


class TorchvisionDataModule(ImageDataModule):
    """MNIST, Fashion-MNIST, CIFAR-10, CelebA or any ImageFolder, via torchvision.

    `split` chooses the part served as training data for the GAN (e.g. MNIST's 10k test split).
    Labels: MNIST and Fashion-MNIST (10 classes, the IDX labels file next to the images), CIFAR-10
    (10 classes) and an ImageFolder (one class per subfolder of `root`, torchvision's order).
    """

    LABELLED: ClassVar[tuple[str, ...]] = ("mnist", "fashion_mnist", "cifar10", "image_folder")

    SHAPES: ClassVar[dict[str, tuple[int, int]]] = {
        "mnist": (1, 28),
        "fashion_mnist": (1, 28),
        "cifar10": (3, 32),
        "celeba": (3, 64),
        "image_folder": (3, 64),
    }
    SPLITS: ClassVar[dict[str, tuple[str, ...]]] = {
        "mnist": ("train", "test"),
        "fashion_mnist": ("train", "test"),
        "cifar10": ("train", "test"),
        "celeba": ("train", "valid", "test", "all"),
        "image_folder": ("all",),
    }

    def __init__(
        self,
        dataset: str = "mnist",
        root: str = "data",
        split: str = "train",
        download: bool = True,
        image_size: int | None = None,
        batch_size: int = 64,
        seed: int = 0,
        dequantize: bool = False,
        fraction: float = 1.0,
    ) -> None:
        if dataset not in self.SHAPES:
            raise ValueError(f"data.dataset={dataset!r} is unknown; allowed: {', '.join(self.SHAPES)}")
        if dataset == "image_folder" and split == "train":
            split = "all"
        if split not in self.SPLITS[dataset]:
            raise ValueError(
                f"data.split={split!r} is invalid for {dataset}; allowed: {', '.join(self.SPLITS[dataset])}"
            )
        self.name = dataset
        self.channels, self.native_size = self.SHAPES[dataset]
        super().__init__(image_size, batch_size, seed, dequantize, fraction)
        self.root = Path(root).expanduser()
        self.num_classes = self._count_classes() if dataset in self.LABELLED else 0
        self._split = split
        self.download = download

    @property
    def split(self) -> str:
        return self._split

    def load_native(self) -> torch.Tensor:
        if self.name in self.LABELLED:
            raw = self._mnist_raw_file("images")
            if raw is not None:
                return _read_idx(raw, "images").unsqueeze(1)
        try:
            return self._load_with_torchvision()
        except (RuntimeError, OSError) as err:  # torchvision raises both for missing/undownloadable data
            raise MissingDataError(self._how_to_obtain(err)) from err

    def _count_classes(self) -> int:
        """10, or an ImageFolder's subfolders (0 while `root` is missing: loading then says what to do)."""
        if self.name != "image_folder":
            return 10
        from torchvision.datasets.folder import find_classes

        return len(find_classes(str(self.root))[0]) if self.root.is_dir() else 0

    def labels(self) -> torch.Tensor:
        """The class of each image: MNIST's IDX labels of `split` (torchvision's download puts them next
        to the images), CIFAR-10's targets, an ImageFolder's subfolder indices."""
        if self.name not in self.LABELLED:
            raise ValueError(f"data.dataset={self.name!r} has no labels here; allowed: {', '.join(self.LABELLED)}")
        if self.name in ("cifar10", "image_folder"):
            try:
                return torch.as_tensor(self._torchvision_dataset().targets)
            except (RuntimeError, OSError) as err:
                raise MissingDataError(self._how_to_obtain(err)) from err
        raw = self._mnist_raw_file("labels")
        if raw is None:
            raise MissingDataError(
                f"{self.name} labels ({self.split} split) not found under data.root={str(self.root)!r}: place "
                f"{self._mnist_stem('labels')}[.gz] in {self.root / self._mnist_folder()}"
            )
        return _read_idx(raw, "labels")

    def _mnist_folder(self) -> str:
        return f"{'MNIST' if self.name == 'mnist' else 'FashionMNIST'}/raw"

    def _mnist_stem(self, kind: str) -> str:
        dims = "idx3" if kind == "images" else "idx1"
        return f"{'train' if self.split == 'train' else 't10k'}-{kind}-{dims}-ubyte"

    def _mnist_raw_file(self, kind: str) -> Path | None:
        """The IDX file of `kind` ("images", "labels") for `split` in torchvision's layout, if present
        (a test-only folder is fine)."""
        folder, stem = self.root / self._mnist_folder(), self._mnist_stem(kind)
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
        return None

    def _load_with_torchvision(self) -> torch.Tensor:
        import torchvision.datasets as tvd
        from torchvision.transforms.functional import pil_to_tensor

        root, train = str(self.root), self.split == "train"
        if self.name == "mnist":
            return tvd.MNIST(root, train=train, download=self.download).data.unsqueeze(1)
        if self.name == "fashion_mnist":
            return tvd.FashionMNIST(root, train=train, download=self.download).data.unsqueeze(1)
        if self.name == "cifar10":
            return torch.from_numpy(self._torchvision_dataset().data).permute(0, 3, 1, 2)
        if self.name == "celeba":
            ds = tvd.CelebA(root, split=self.split, download=self.download)
            return torch.stack([self._center_crop(pil_to_tensor(ds[i][0]), 140) for i in range(len(ds))])
        ds = self._torchvision_dataset()
        images = (pil_to_tensor(ds[i][0].convert("RGB")) for i in range(len(ds)))
        return torch.stack([self._center_crop(img, min(img.shape[1:])) for img in images])  # square, then resize

    def _torchvision_dataset(self) -> Any:
        """torchvision's CIFAR-10 (of `split`) or ImageFolder, whose `targets` are the labels."""
        import torchvision.datasets as tvd

        if self.name == "cifar10":
            return tvd.CIFAR10(str(self.root), train=self.split == "train", download=self.download)
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root={str(self.root)!r} is not a folder")
        return tvd.ImageFolder(str(self.root))

    def load(self) -> torch.Tensor:
        if self.name in ("celeba", "image_folder"):  # variable-size photos: crop/resize per image
            return self.load_native()
        return super().load()

    def _center_crop(self, image: torch.Tensor, crop: int) -> torch.Tensor:
        """A centre crop of `crop` px, resized to image_size (CelebA: 140 px, the DCGAN/BEGAN practice)."""
        _, h, w = image.shape
        top, left = (h - crop) // 2, (w - crop) // 2
        return resize_uint8(image[:, top : top + crop, left : left + crop].unsqueeze(0), self.image_size)[0]

    def _how_to_obtain(self, err: Exception) -> str:
        mnist_stem = "train" if self.split == "train" else "t10k"
        files = {
            "mnist": f"MNIST/raw/{mnist_stem}-images-idx3-ubyte.gz",
            "fashion_mnist": f"FashionMNIST/raw/{mnist_stem}-images-idx3-ubyte.gz",
            "cifar10": "cifar-10-batches-py/ (from cifar-10-python.tar.gz)",
            "celeba": "celeba/img_align_celeba/ and celeba/list_eval_partition.txt",
            "image_folder": "<class>/<image> files",
        }[self.name]
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        if self.download:
            fix = f"download failed ({type(err).__name__}: {reason}); place {files} there or retry online"
        else:
            fix = f"place {files} there, or set data.download=true on a machine with internet"
        return f"{self.name} ({self.split} split) not found under data.root={str(self.root)!r}: {fix}"
