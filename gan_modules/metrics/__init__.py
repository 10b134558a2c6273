"""Evaluation metrics: 2D mode metrics and EMD here; image feature metrics alongside."""

from gan_modules.metrics.toy import assign_modes, exact_emd, mode_metrics

__all__ = ["assign_modes", "exact_emd", "mode_metrics"]
