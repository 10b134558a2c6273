"""Callbacks own evaluation, logging of samples, checkpoints and progress display."""

from gan_modules.callbacks.checkpoint import RunCheckpoint
from gan_modules.callbacks.image_grid import ImageGrid, save_image_grid, save_scatter
from gan_modules.callbacks.progress import GeneratorProgressBar

__all__ = ["GeneratorProgressBar", "ImageGrid", "RunCheckpoint", "save_image_grid", "save_scatter"]
