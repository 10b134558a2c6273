"""What every gan-lab datamodule provides to models and callbacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from datamodules.stream import GlobalBatchStream

Kind = Literal["points", "image"]


class GANDataModule(L.LightningDataModule):
    """Holds the whole (in-memory) training set and serves it as a `GlobalBatchStream`.

    Subclasses implement `load()` (a float32 tensor: (N, D) points in data units or (N, C, H, W)
    images in [-1, 1]) and declare `data_shape` and `kind` at construction, so that models can size
    themselves before any data is read (LightningCLI links `data.data_shape` to the model).
    `batch_size` is the *global* batch: under DDP each of N ranks gets batch_size / N rows.
    Labelled data declares `num_classes` > 0 and implements `load_labels()`; the stream then carries
    the labels of its rows to a model whose `num_classes` > 0 (a class-conditional GAN).
    """

    kind: Kind = "points"
    name: str = "data"
    num_classes: int = 0  # classes of the rows' labels; 0: the data has none

    def __init__(self, batch_size: int = 64, seed: int = 0, num_val_batches: int = 4) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size={batch_size} is invalid; allowed: an integer >= 1")
        # In the checkpoint, not in the loggers' hparams: those are the model's, and Lightning refuses to
        # merge the two when a key differs (a model seed other than the data seed). Every logger records
        # the whole resolved config, data included (config.yaml, W&B's run config).
        self.save_hyperparameters(logger=False)
        self.batch_size = batch_size
        self.seed = seed
        self.num_val_batches = num_val_batches
        self._data: torch.Tensor | None = None
        self._labels: torch.Tensor | None = None

    @property
    def data_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def split(self) -> str:
        """Which part of the source data is served (part of the metric-cache key)."""
        return "train"

    def load(self) -> torch.Tensor:
        """The whole training set as stored in memory (images as uint8 to save 4x memory)."""
        raise NotImplementedError

    def load_labels(self) -> torch.Tensor:
        """The class (0 .. num_classes - 1) of each row `load()` returns, in the same order."""
        raise NotImplementedError

    def decode(self, stored: torch.Tensor) -> torch.Tensor:
        """Stored rows -> float32 model inputs (images: uint8 -> [-1, 1])."""
        return stored.float()

    def dequantizer(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
        """(stored rows, u ~ U[0, 1) per element) -> training inputs with dequantisation noise; None: off."""
        return None

    @property
    def stored(self) -> torch.Tensor:
        if self._data is None:
            data = self.load()
            if tuple(data.shape[1:]) != self.data_shape:
                raise RuntimeError(f"{self.name}: loaded shape {tuple(data.shape[1:])} != declared {self.data_shape}")
            self._data = data.contiguous()
        return self._data

    @property
    def stored_labels(self) -> torch.Tensor:
        """The labels of `stored`, row for row (int64)."""
        if self._labels is None:
            labels = torch.as_tensor(self.load_labels()).long()
            if labels.shape != (len(self.stored),):
                raise RuntimeError(f"{self.name}: {tuple(labels.shape)} labels for {len(self.stored)} rows")
            self._labels = labels
        return self._labels

    def __len__(self) -> int:
        return len(self.stored)

    def setup(self, stage: str | None = None) -> None:
        """Load once, early, so that missing files and a batch larger than the data fail before training."""
        n = len(self.stored)
        if stage == "fit" and self.batch_size > n:
            raise ValueError(
                f"data.batch_size={self.batch_size} is invalid for {self.name} ({n} samples); allowed: at most {n}"
            )

    def _from_model(self, name: str, default: int) -> int:
        """What the model being trained says about the data stream (any model: `default`)."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        return int(getattr(module, name, default))

    def _labels_for_model(self) -> torch.Tensor | None:
        """The labels when the model trained is class-conditional (its `num_classes` > 0), else None."""
        return self.stored_labels if self._from_model("num_classes", 0) > 0 else None

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        stream = GlobalBatchStream(
            self.stored,
            self.batch_size,
            self.seed,
            rank,
            world,
            self._from_model("real_batches_consumed", 0),  # a resumed run continues its data order
            self.decode,
            self._from_model("real_batches_per_step", 1),  # the engine: n_critic, one per critic step
            self.dequantizer(),
            self._labels_for_model(),
        )
        return DataLoader(stream, batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        """A fixed slice of real data, used by `validate`/`test` to report held-out critic values."""
        gen = torch.Generator().manual_seed(self.seed + 7)
        n = min(len(self), self.batch_size * self.num_val_batches)
        idx = torch.randperm(len(self), generator=gen)[:n]
        labels = self._labels_for_model()
        columns = (self.decode(self.stored[idx]),) if labels is None else (self.decode(self.stored[idx]), labels[idx])
        return DataLoader(TensorDataset(*columns), batch_size=self.batch_size)

    test_dataloader = val_dataloader

    @property
    def reference(self) -> torch.Tensor:
        """The stored rows evaluation compares against: the training data itself here."""
        return self.stored

    def real_samples(self, n: int | None = None, seed: int = 0) -> torch.Tensor:
        """n real samples for evaluation (all of `reference` when n is None or exceeds it)."""
        stored = self.reference
        if n is not None and n < len(stored):
            gen = torch.Generator().manual_seed(seed)
            stored = stored[torch.randperm(len(stored), generator=gen)[:n]]
        return self.decode(stored)

    def protocol(self) -> dict[str, object]:
        """Everything about the real data that a cached statistic depends on."""
        return {"dataset": self.name, "split": self.split, "shape": list(self.data_shape), "size": len(self.reference)}
