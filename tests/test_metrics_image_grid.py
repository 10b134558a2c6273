"""The sample-grid callback: PNG files, and each attached logger receives the image (read back from disk)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import matplotlib.pyplot as plt
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger

from datamodules import DigitsDataModule, Toy2DDataModule
from gan_modules import AdversarialModule
from gan_modules.callbacks import ImageGrid
from gan_modules.callbacks.image_grid import save_image_grid
from gan_modules.trainers import bare_trainer


def _fit(root: Path, model, dm, loggers, steps: int = 2) -> L.Trainer:
    grid = ImageGrid(every_n_steps=1, upscale=2)
    trainer = bare_trainer(steps, [grid], default_root_dir=root, logger=loggers, log_every_n_steps=1)
    trainer.fit(model, dm)
    return trainer


def test_grid_png_reaches_files_tensorboard_csv_folder_and_wandb_offline_run(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    nets = {"generator": {"arch": "dcgan", "width": 8}, "critic": {"arch": "dcgan", "width": 8}}
    model = AdversarialModule(data_shape=(1, 8, 8), z_dim=8, num_fixed_samples=16, **nets)
    untrained = save_image_grid(model.sample(), tmp_path / "untrained.png", upscale=2)
    loggers = [
        CSVLogger(tmp_path, name="csv"),
        TensorBoardLogger(tmp_path, name="tb"),
        WandbLogger(save_dir=str(tmp_path), offline=True, project="gan-lab-test"),
    ]
    trainer = _fit(tmp_path, model, DigitsDataModule(image_size=8, batch_size=16), loggers)
    for logger in trainer.loggers:
        logger.finalize("success")
    import wandb

    wandb.finish()

    samples = tmp_path / "samples"
    grid = plt.imread(samples / "step_0000002.png")
    # 16 samples: 4x4 grid of 8 px images with 2 px padding, upscaled x2
    assert grid.shape[:2] == (2 * (4 * 8 + 5 * 2), 2 * (4 * 8 + 5 * 2))
    assert (samples / "latest.png").read_bytes() == (samples / "step_0000002.png").read_bytes()
    # step 0 is the untrained generator's grid, drawn before the first update
    assert np.array_equal(plt.imread(samples / "step_0000000.png"), plt.imread(untrained))
    assert not np.array_equal(plt.imread(samples / "step_0000000.png"), grid)
    assert (samples / "step_0000001.png").is_file()

    csv_pngs = sorted(p.name for p in (Path(trainer.loggers[0].log_dir) / "samples").glob("*.png"))
    assert csv_pngs == ["step_0000000.png", "step_0000001.png", "step_0000002.png"]  # step 0: untrained

    events = EventAccumulator(trainer.loggers[1].log_dir, size_guidance={IMAGES: 0}).Reload()
    images = events.Images("samples")
    assert [e.step for e in images] == [0, 1, 2] and images[-1].width == grid.shape[1]

    wandb_pngs = list((tmp_path / "wandb").glob("offline-run-*/files/media/images/samples_*.png"))
    assert len(wandb_pngs) == 3


def test_saved_grid_matches_the_samples_pixel_for_pixel(tmp_path):
    images = torch.linspace(-1, 1, 4 * 3 * 3).reshape(4, 1, 3, 3)
    grid = plt.imread(save_image_grid(images, tmp_path / "g.png"))[..., 0]  # 2x2 grid, pad 2, white padding
    expected = ((images[0, 0] + 1) / 2 * 255).round() / 255
    assert np.allclose(grid[2:5, 2:5], expected.numpy(), atol=1 / 255)
    assert np.allclose(grid[:2], 1.0)


def test_points_get_a_scatter_over_the_data_with_the_critic_contour(tmp_path):
    nets = {"generator": {"arch": "mlp", "hidden": [8]}, "critic": {"arch": "mlp", "hidden": [8]}}
    model = AdversarialModule(data_shape=(2,), z_dim=2, **nets)
    trainer = _fit(tmp_path, model, Toy2DDataModule("ring8", size=500, batch_size=32), [CSVLogger(tmp_path)])
    picture = plt.imread(tmp_path / "samples" / "latest.png")
    assert picture.shape[0] > 300 and picture.shape[1] > 300
    assert (Path(trainer.logger.log_dir) / "samples" / "step_0000002.png").is_file()
    # the contour fills the axes with colour: far more distinct colours than a plain scatter on white
    assert len(np.unique(picture[..., :3].reshape(-1, 3), axis=0)) > 100
