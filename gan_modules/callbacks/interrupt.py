"""Interrupts stop a run at a step boundary, through Lightning's own handling of each signal.

Lightning already knows what each signal means: SIGINT raises `KeyboardInterrupt` (its graceful
shutdown path; `gan-lab fit` then exits 130), SIGTERM sets `trainer.received_sigterm` (it raises
`SIGTERMException` at the end of that batch, and under DDP every rank stops at the same batch; exit
143), and on SLURM with auto-requeue the requeue signal (SIGUSR1) writes `hpc_ckpt_<n>.ckpt` and
runs `scontrol requeue`. Its handlers act where the signal lands, though: a Ctrl-C between a critic
step and its generator step, or an HPC checkpoint written halfway through an iteration, would resume
into a state no uninterrupted run passes through. So during training `StepBoundarySignals` only
records a signal, and replays the original handler at the end of the Lightning batch, where all of a
generator iteration's state (weights, optimiser moments, EMA, draw counter, data position) is
consistent.

After a SIGINT or SIGTERM stop it writes `last.ckpt` through the run's `RunCheckpoint` and prints
where it went; the same command resumes from it. A second Ctrl-C while a stop is pending stops at
once, without a checkpoint (the newest on disk is then the last scheduled one).
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from gan_modules.callbacks.checkpoint import RunCheckpoint

STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StepBoundarySignals(L.Callback):
    """Defers SIGINT, SIGTERM and SLURM's requeue signal to the next batch end (module docstring)."""

    def __init__(self) -> None:
        self.pending: list[int] = []  # signals received during the current batch, in order
        self.stopped_by: int | None = None  # the stopping signal replayed at a step boundary
        self._originals: dict[int, Any] = {}

    def _deferred(self) -> list[int]:
        signums = list(STOPPING_SIGNALS)
        requeue = SLURMEnvironment.detect() and SLURMEnvironment().requeue_signal
        if requeue:
            signums.append(requeue)
        # a signal nobody handles keeps its default action (e.g. SIGUSR1 outside SLURM ends the process)
        return [s for s in signums if callable(signal.getsignal(s))]

    def _record(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and signal.SIGINT in self.pending:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.pending.append(signum)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """After Lightning registered its own handlers (trainer start-up), wrap them."""
        self.pending, self.stopped_by = [], None
        self._originals = {s: signal.getsignal(s) for s in self._deferred()}
        for signum in self._originals:
            signal.signal(signum, self._record)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
        pending, self.pending = self.pending, []
        for signum in pending:
            if signum in STOPPING_SIGNALS:
                self.stopped_by = signum
            self._originals[signum](signum, None)  # SIGINT's raises KeyboardInterrupt here

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()
        checkpoint = next((c for c in trainer.callbacks if isinstance(c, RunCheckpoint)), None)
        if self.stopped_by is None and signal.SIGINT in self.pending:
            newest = checkpoint.last_model_path if checkpoint is not None else ""
            _report(
                f"gan-lab: stopped at once by a second SIGINT; nothing saved (newest checkpoint: {newest or 'none'})"
            )
        if self.stopped_by is None or not isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            return
        path = checkpoint.save_last_now(trainer) if checkpoint is not None else None
        name = signal.Signals(self.stopped_by).name
        where = f"saved {path}; the same command resumes from it" if path else "no checkpoint callback, nothing saved"
        _report(f"gan-lab: stopped by {name} after generator iteration {trainer.global_step}; {where}")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._originals.items():
            signal.signal(signum, handler)
        self._originals = {}


@rank_zero_only
def _report(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
