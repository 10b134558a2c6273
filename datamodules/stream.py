"""A resumable, rank-aware stream of *global* batches.

GAN training is counted in iterations, not epochs, and three properties matter more than epoch
bookkeeping: (1) every critic step gets a fresh real batch, (2) a run on N ranks with per-rank batch
B/N sees exactly the same global batches as one process with batch B, and (3) a run resumed from a
checkpoint continues the very same data order. Lightning's samplers give none of these for free
(`DistributedSampler` interleaves indices; a mid-epoch resume restarts the epoch's iterator), so the
stream is defined by one integer, the number of global batches already consumed.

A model that takes several critic steps per generator iteration asks for that many consecutive
batches per item (`batches_per_step`): the batches are the same, but Lightning's per-batch loop
(DataLoader fetch, hooks, progress; about 1 ms on a CPU) then runs once per generator iteration
instead of once per critic step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import IterableDataset, get_worker_info

# Keeps the noise generators' seeds apart from the permutation seeds (seed * 1_000_003 + pass).
NOISE_SEED_OFFSET = 2**40


class GlobalBatchStream(IterableDataset):
    """Yields this rank's slice of global batch k, for k = start, start + 1, ...

    Global batch k is taken from a permutation of the dataset that is re-drawn (from `seed` and
    the pass number) every time the data is exhausted; the incomplete tail of a pass is dropped.
    Rank r receives rows [r*B_local, (r+1)*B_local) of each global batch. With `batches_per_step`
    n > 1, each item holds n consecutive batches stacked on a new leading dimension, shape
    (n, B_local, ...), gathered in one indexing operation. With `dequantize`, rows are decoded by
    `dequantize(stored_rows, u)` with u from `local_noise(k)` instead of by `decode`. With `labels`
    (one per data row) each item is the pair (rows, their labels), the labels shaped (B_local,) or
    (n, B_local).
    """

    def __init__(
        self,
        data: torch.Tensor,
        global_batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
        decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
        batches_per_step: int = 1,
        dequantize: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        labels: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if labels is not None and len(labels) != len(data):
            raise ValueError(f"{len(labels)} labels for {len(data)} data rows; allowed: one label per row")
        if batches_per_step < 1:
            raise ValueError(f"batches_per_step={batches_per_step} is invalid; allowed: an integer >= 1")
        if global_batch_size % world_size:
            raise ValueError(
                f"batch_size={global_batch_size} is not divisible by the {world_size} ranks; "
                "use a global batch size that is a multiple of the number of processes"
            )
        if global_batch_size > len(data):
            raise ValueError(f"batch_size={global_batch_size} exceeds the dataset size {len(data)}")
        self.data = data
        self.labels = labels
        self.global_batch_size = global_batch_size
        self.local_batch_size = global_batch_size // world_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start
        self.decode = decode or (lambda batch: batch)
        self.dequantize = dequantize
        self.batches_per_step = batches_per_step
        self.batches_per_pass = len(data) // global_batch_size
        self._perm_pass = -1
        self._perm = torch.empty(0, dtype=torch.long)

    def global_indices(self, k: int) -> torch.Tensor:
        """Dataset indices of global batch k (identical on every rank)."""
        data_pass, offset = divmod(k, self.batches_per_pass)
        if self._perm_pass != data_pass:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + data_pass)
            self._perm = torch.randperm(len(self.data), generator=gen)
            self._perm_pass = data_pass
        perm = self._perm
        return perm[offset * self.global_batch_size : (offset + 1) * self.global_batch_size]

    def local_indices(self, k: int) -> torch.Tensor:
        lo = self.rank * self.local_batch_size
        return self.global_indices(k)[lo : lo + self.local_batch_size]

    def local_noise(self, k: int) -> torch.Tensor:
        """U[0, 1) per element of this rank's rows of global batch k: drawn for the whole global batch
        from (seed, k) alone, so every world size and every resume sees the same noise on the same row."""
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + k + NOISE_SEED_OFFSET) % (2**63))
        noise = torch.rand((self.global_batch_size, *self.data.shape[1:]), generator=gen)
        lo = self.rank * self.local_batch_size
        return noise[lo : lo + self.local_batch_size]

    def _rows(self, idx: torch.Tensor, batches: range) -> torch.Tensor:
        if self.dequantize is None:
            return self.decode(self.data[idx])
        return self.dequantize(self.data[idx], torch.cat([self.local_noise(j) for j in batches]))

    def local_batches(self, k: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """This rank's slices of global batches k .. k + batches_per_step - 1, stacked (one batch: not
        stacked), gathered with one index; with labels, the pair of rows and their labels."""
        n = self.batches_per_step
        batches = range(k, k + n)
        idx = torch.cat([self.local_indices(j) for j in batches])
        rows = self._rows(idx, batches)
        stack = (n, self.local_batch_size) if n > 1 else (self.local_batch_size,)
        rows = rows.view(*stack, *rows.shape[1:])
        return rows if self.labels is None else (rows, self.labels[idx].view(stack))

    def __iter__(self) -> Iterator[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        # DataLoader reads workers round-robin, so worker w serving item i = w (mod W) keeps the order.
        n = self.batches_per_step
        k = self.start + worker * n
        while True:
            yield self.local_batches(k)
            k += num_workers * n
