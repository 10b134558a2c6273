"""Evaluation metrics: image feature metrics (FID/IS/KID/PR via torch-fidelity), 2D mode metrics, EMD."""

from gan_modules.metrics.toy import assign_modes, exact_emd, mode_metrics

__all__ = ["assign_modes", "exact_emd", "mode_metrics"]
