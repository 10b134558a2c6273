"""The metrics callback: FID / IS / KID / precision-recall / density-coverage (images), Stacked MNIST
modes, or mode metrics + EMD (2D points).

Every `every_n_steps` generator iterations (and once at the end of training) each rank generates
its share of the evaluation samples from the EMA generator, features are all-gathered, rank 0
computes the metrics and broadcasts them, so the numbers equal a single-process evaluation of
the same samples. The feature extractor is an attribute of this callback, never of the
LightningModule, so checkpoints stay lean. Results are logged as `metrics/<name>` at step =
generator iterations, the protocol (sample counts, real split, extractor and its weights) goes
to every logger's config, and the best FID (EMD for points; reverse KL for Stacked MNIST modes
without FID) is kept as `<root>/checkpoints/best_<fid|emd|reverse_kl>.ckpt`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from gan_modules.metrics.collective import StrategyCollective
from gan_modules.metrics.suite import ALL_METRICS, Evaluator, MetricSettings, build_evaluator


def _info(message: str) -> None:
    rank_zero_info(f"gan-lab metrics: {message}")


class GenerativeMetrics(L.Callback):
    """Evaluate the generator every `every_n_steps` generator iterations.

    Args:
        every_n_steps: generator iterations between evaluations.
        num_fake / num_real: evaluation sample counts (None: 10,000 for images, 2,500 for points).
        extractor: "inception" (torch-fidelity's FID Inception), "digits-classifier", "mnist-classifier".
        weights_path: local extractor weights (clusters without internet).
        metrics: what to compute (default all that apply): images any of fid, is, kid, pr, dc
            (density and coverage), intra_fid (per-class FID; classifier extractors only) and modes
            (Stacked MNIST only: modes covered of 1,000 and reverse KL); points any of modes (modes,
            % high quality, reverse KL) and emd (exact EMD, about a second per evaluation at 2,500
            points, so dense curves may skip it).
        batch_size: samples per generated/extracted chunk (also the DDP work unit).
        seed: noise seed of the evaluation samples and of the real subset.
        dc_neighborhood: k of density and coverage (Naeem et al. 2020 use 5).
        mode_samples: generated samples for the Stacked MNIST modes (PacGAN Table 2: 26,000).
        mode_classifier_path: the MNIST classifier labelling each channel (default: the file
            `gan-lab train-evaluator --dataset mnist` writes).
        cache_dir: real-feature cache (default `$GAN_LAB_CACHE/stats`, else ~/.cache/gan-lab/stats).
        save_best: keep `checkpoints/best_<monitor>.ckpt` (fid; emd for points; reverse_kl for modes alone).
        at_train_end: evaluate once more when training ends off the schedule.
    """

    config_key = "metrics"  # the name its options go by in errors

    def __init__(
        self,
        every_n_steps: int = 5000,
        num_fake: int | None = None,
        num_real: int | None = None,
        extractor: str = "inception",
        weights_path: str | None = None,
        metrics: list[str] | None = None,
        batch_size: int = 100,
        seed: int = 0,
        is_splits: int = 10,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        pr_neighborhood: int = 3,
        dc_neighborhood: int = 5,
        mode_samples: int = 26_000,
        mode_classifier_path: str | None = None,
        cache_dir: str | None = None,
        save_best: bool = True,
        at_train_end: bool = True,
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"{self.config_key}.every_n_steps={every_n_steps} is invalid; allowed: an integer >= 1")
        self.settings = MetricSettings(
            num_fake=num_fake,
            num_real=num_real,
            extractor=extractor,
            weights_path=weights_path,
            metrics=list(metrics) if metrics is not None else list(ALL_METRICS),
            batch_size=batch_size,
            seed=seed,
            is_splits=is_splits,
            kid_subsets=kid_subsets,
            kid_subset_size=kid_subset_size,
            pr_neighborhood=pr_neighborhood,
            dc_neighborhood=dc_neighborhood,
            mode_samples=mode_samples,
            mode_classifier_path=mode_classifier_path,
            cache_dir=cache_dir,
        )
        self.settings.validate()
        self.every_n_steps, self.save_best, self.at_train_end = every_n_steps, save_best, at_train_end
        self.evaluator: Evaluator | None = None
        self.protocol: dict[str, Any] = {}
        self.last_results: dict[str, float] = {}
        self.best: float | None = None
        self.best_step: int | None = None
        self._last_step = -1

    # ------------------------------------------------------------------------------------- lifecycle
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Load the extractor now, so missing weights fail before the first training step."""
        if stage != "fit" or self.evaluator is not None:
            return
        dm = trainer.datamodule
        if dm is None:
            raise ValueError("GenerativeMetrics needs a gan-lab datamodule (trainer.fit(model, datamodule=...))")
        self.evaluator = build_evaluator(dm.kind, self.settings, trainer.strategy.root_device, _info)
        self.protocol = self.evaluator.protocol(dm, pl_module)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_hyperparams({"metrics_protocol": self.protocol})

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_step = trainer.global_step  # no evaluation of the step a run starts or resumes at

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any) -> None:
        step = trainer.global_step
        if step != self._last_step and step % self.every_n_steps == 0:
            self.run(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_train_end and trainer.global_step != self._last_step:
            self.run(trainer, pl_module)

    # ------------------------------------------------------------------------------------ evaluation
    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """One evaluation; every rank must call it (it holds collectives)."""
        assert self.evaluator is not None, "setup() builds the evaluator"
        step = self._last_step = trainer.global_step
        results = self.evaluator.evaluate(pl_module, trainer.datamodule, StrategyCollective(trainer.strategy))
        self.last_results = results
        monitor = self.evaluator.monitor
        value = results.get(monitor, math.nan)
        improved = math.isfinite(value) and (self.best is None or value < self.best)
        if improved:
            self.best, self.best_step = value, step
        logged = {f"metrics/{k}": v for k, v in results.items()}
        if self.best is not None:
            logged[f"metrics/best_{monitor}"] = self.best
        self._log(trainer, logged, step)
        if improved and self.save_best:
            trainer.save_checkpoint(self.best_path(trainer), weights_only=False)  # all ranks call; written once
        return results

    def best_path(self, trainer: L.Trainer) -> Path:
        assert self.evaluator is not None
        return Path(trainer.default_root_dir) / "checkpoints" / f"best_{self.evaluator.monitor}.ckpt"

    @staticmethod
    def _log(trainer: L.Trainer, values: dict[str, float], step: int) -> None:
        """Straight to the loggers: evaluations are rare and must not be thinned by log_every_n_steps."""
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in values.items()})
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(values, step=step)
            rank_zero_info(f"gan-lab metrics @ {step}: " + ", ".join(f"{k[8:]} {v:.5g}" for k, v in values.items()))

    # ---------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.best_step = state_dict.get("best"), state_dict.get("best_step")
