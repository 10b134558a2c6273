"""Datamodules: own the data, its shape and its order (see `datamodules.stream`)."""

from datamodules.base import GANDataModule
from datamodules.images import (
    DigitsDataModule,
    ImageDataModule,
    MissingDataError,
    TorchvisionDataModule,
    to_uint8_images,
)
from datamodules.stacked_mnist import StackedMNISTDataModule
from datamodules.toy2d import Toy2DDataModule, sample_mixture

__all__ = [
    "DigitsDataModule",
    "GANDataModule",
    "ImageDataModule",
    "MissingDataError",
    "StackedMNISTDataModule",
    "TorchvisionDataModule",
    "Toy2DDataModule",
    "sample_mixture",
    "to_uint8_images",
]
