"""Splitting an evaluation over ranks so that the gathered result equals the single-process one.

Samples are produced in fixed-size chunks; chunk c always holds rows [c*batch, (c+1)*batch) and
is generated from its own seed, so its content does not depend on the world size. Rank r
produces chunks r, r+W, r+2W, ...; after an all-gather the rows are put back in chunk order.
Every rank takes part in every collective (a rank that skips one deadlocks the others).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor

Produce = Callable[[int, int, int], dict[str, Tensor]]  # (chunk index, first row, rows) -> named rows


class Collective(Protocol):
    rank: int
    world_size: int

    def all_gather(self, tensor: Tensor) -> Tensor:
        """(W, *tensor.shape): every rank's tensor, in rank order."""

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's object on every rank."""

    def all_true(self, flag: bool) -> bool:
        """True on every rank iff `flag` is true on every rank."""


class SingleProcess:
    rank, world_size = 0, 1

    def all_gather(self, tensor: Tensor) -> Tensor:
        return tensor.unsqueeze(0)

    def broadcast(self, obj: Any) -> Any:
        return obj

    def all_true(self, flag: bool) -> bool:
        return flag


class StrategyCollective:
    """Collectives through a Lightning strategy (DDP, FSDP, ... or a single device)."""

    def __init__(self, strategy: Any) -> None:
        self.strategy = strategy
        self.rank, self.world_size = strategy.global_rank, strategy.world_size

    def all_gather(self, tensor: Tensor) -> Tensor:
        if self.world_size == 1:
            return tensor.unsqueeze(0)
        return self.strategy.all_gather(tensor.contiguous())

    def broadcast(self, obj: Any) -> Any:
        return self.strategy.broadcast(obj, src=0)

    def all_true(self, flag: bool) -> bool:
        return bool(self.strategy.reduce_boolean_decision(flag, all=True))


def _pad_rows(x: Tensor, rows: int) -> Tensor:
    if len(x) == rows:
        return x
    return torch.cat([x, x.new_zeros((rows - len(x), *x.shape[1:]))])


def gather_rows(produce: Produce, num_rows: int, batch_size: int, coll: Collective) -> dict[str, Tensor]:
    """Run `produce` on this rank's chunks; return all `num_rows` rows, in order, on every rank (on CPU)."""
    chunks = math.ceil(num_rows / batch_size)
    slots = math.ceil(chunks / coll.world_size)
    mine = list(range(coll.rank, chunks, coll.world_size))
    # A rank with fewer chunks than slots fills the gap with padding shaped like chunk 0; padded slots
    # map to chunk indices >= `chunks`, i.e. rows past `num_rows`, and are cut off below.
    probe = mine or [0]
    parts: dict[str, list[Tensor]] = {}
    for c in probe:
        first = c * batch_size
        for name, rows in produce(c, first, min(batch_size, num_rows - first)).items():
            parts.setdefault(name, []).append(_pad_rows(rows, batch_size))
    if not mine:
        parts = {name: [torch.zeros_like(rows[0])] for name, rows in parts.items()}
    out = {}
    for name, rows in parts.items():
        rows += [torch.zeros_like(rows[0])] * (slots - len(rows))
        gathered = coll.all_gather(torch.stack(rows))  # (W, slots, batch, ...)
        ordered = gathered.transpose(0, 1).reshape(-1, *gathered.shape[3:])  # chunk c = slot * W + rank
        out[name] = ordered[:num_rows].cpu()
    return out
