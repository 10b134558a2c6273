"""Datamodules and the global-batch stream, checked against direct constructions."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch

from datamodules import DigitsDataModule, MissingDataError, TorchvisionDataModule, Toy2DDataModule
from datamodules.stream import GlobalBatchStream


def _take(stream: GlobalBatchStream, n: int) -> list[torch.Tensor]:
    it = iter(stream)
    return [next(it) for _ in range(n)]


def test_ranks_partition_the_single_process_batches():
    data = torch.arange(100).float().unsqueeze(1)
    single = _take(GlobalBatchStream(data, 8, seed=3), 30)  # 30 batches: crosses 2 passes (12 per pass)
    ranks = [_take(GlobalBatchStream(data, 8, seed=3, rank=r, world_size=2), 30) for r in range(2)]
    for k in range(30):
        assert torch.equal(torch.cat([ranks[0][k], ranks[1][k]]), single[k])


def test_each_pass_is_a_permutation_without_repeats_and_passes_differ():
    data = torch.arange(96).float().unsqueeze(1)
    batches = _take(GlobalBatchStream(data, 8, seed=0), 24)  # two passes of 12
    first, second = torch.cat(batches[:12]).flatten(), torch.cat(batches[12:]).flatten()
    assert sorted(first.tolist()) == list(range(96)) == sorted(second.tolist())
    assert not torch.equal(first, second)


def test_resumed_stream_continues_the_same_sequence():
    data = torch.randn(50, 2)
    full = _take(GlobalBatchStream(data, 10, seed=1), 12)
    resumed = _take(GlobalBatchStream(data, 10, seed=1, start=7), 5)
    for a, b in zip(full[7:], resumed, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("world", [1, 2])
def test_stacked_items_are_the_consecutive_single_batches(world):
    data = torch.arange(100).float().unsqueeze(1)
    single = _take(GlobalBatchStream(data, 8, seed=3), 40)  # crosses passes mid-item (12 batches per pass)
    for rank in range(world):
        items = _take(GlobalBatchStream(data, 8, seed=3, rank=rank, world_size=world, start=2, batches_per_step=3), 12)
        for i, item in enumerate(items):
            assert item.shape == (3, 8 // world, 1)
            for j in range(3):
                expected = single[2 + 3 * i + j].view(world, 8 // world, 1)[rank]
                assert torch.equal(item[j], expected)


def test_batch_not_divisible_by_ranks_is_a_clear_error():
    with pytest.raises(ValueError, match=r"batch_size=10 is not divisible by the 3 ranks"):
        GlobalBatchStream(torch.zeros(20, 2), 10, seed=0, rank=0, world_size=3)


@pytest.mark.parametrize("name, n_modes, std", [("ring8", 8, 0.01), ("grid25", 25, 0.05)])
def test_toy_mixtures_match_pacgan_constants(name, n_modes, std):
    dm = Toy2DDataModule(name, size=20_000, seed=0)
    modes = dm.modes
    assert len(modes) == n_modes and dm.mode_std == std
    if name == "ring8":
        assert torch.allclose(modes.norm(dim=1), torch.ones(8), atol=1e-6)
        angles = torch.atan2(modes[:, 1], modes[:, 0]).remainder(2 * math.pi).sort().values
        assert torch.allclose(angles, torch.arange(8) * math.pi / 4, atol=1e-6)
    else:
        assert sorted(set(modes[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    data = dm.real_samples()
    residual = data - modes[torch.cdist(data, modes).argmin(1)]
    assert residual.std().item() == pytest.approx(std, rel=0.05)
    assert torch.equal(data, Toy2DDataModule(name, size=20_000, seed=0).real_samples())


def test_digits_are_the_bundled_sklearn_images_in_minus_one_one():
    from sklearn.datasets import load_digits

    dm = DigitsDataModule()
    x = dm.real_samples()
    assert x.shape == (1797, 1, 8, 8) and dm.data_shape == (1, 8, 8)
    expected = torch.from_numpy(load_digits().images).float() / 16 * 2 - 1
    assert torch.allclose(x[:, 0], expected, atol=1 / 127.5 + 1e-6)  # uint8 quantisation only
    assert DigitsDataModule(image_size=16).real_samples(10).shape == (10, 1, 16, 16)


def _write_idx_images(path, images: np.ndarray) -> None:
    n, h, w = images.shape
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes())


def test_mnist_reads_a_test_only_raw_folder(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, size=(20, 28, 28))
    _write_idx_images(raw / "t10k-images-idx3-ubyte.gz", images)
    dm = TorchvisionDataModule("mnist", root=str(tmp_path), split="test", download=False, batch_size=4)
    assert torch.equal(dm.stored[:, 0], torch.from_numpy(images).to(torch.uint8))


def test_missing_dataset_names_the_folder_and_files(tmp_path):
    dm = TorchvisionDataModule("mnist", root=str(tmp_path), split="train", download=False)
    with pytest.raises(MissingDataError) as err:
        dm.setup("fit")
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message and "train-images-idx3-ubyte.gz" in message


def test_unknown_dataset_and_split_are_one_line_errors():
    with pytest.raises(ValueError, match=r"data.dataset='svhn' is unknown; allowed: mnist"):
        TorchvisionDataModule("svhn")
    with pytest.raises(ValueError, match=r"data.split='val' is invalid for mnist; allowed: train, test"):
        TorchvisionDataModule("mnist", split="val")


def test_image_folder_loads_rgb_images_resized_to_the_declared_shape(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, size=(40, 30, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    dm = TorchvisionDataModule("image_folder", root=str(tmp_path), image_size=16, batch_size=2)
    x = dm.real_samples()
    assert dm.data_shape == (3, 16, 16) and x.shape == (6, 3, 16, 16)
    assert x.min() >= -1 and x.max() <= 1


# --- dequantisation (WGAN-GP gan_cifar_resnet.py lines 194-195) -----------------------------------------
def _digits_stream(dm: DigitsDataModule, **kwargs) -> GlobalBatchStream:
    return GlobalBatchStream(dm.stored, 16, seed=dm.seed, decode=dm.decode, dequantize=dm.dequantizer(), **kwargs)


def test_dequantised_batches_are_the_reference_form_on_the_same_rows():
    dm = DigitsDataModule(batch_size=16, seed=2, dequantize=True)
    dithered = _take(_digits_stream(dm), 120)  # 112 batches per pass: the second pass revisits the rows
    plain = _take(GlobalBatchStream(dm.stored, 16, seed=2, decode=dm.decode), 120)
    u = []
    for x, clean in zip(dithered, plain, strict=True):
        stored = ((clean + 1) * 127.5).round()  # the uint8 values of the same rows
        u.append((x - 2 * (stored / 256.0 - 0.5)) * 128)  # reference: 2 (x / 256 - 1/2) + U[0, 1/128)
    u = torch.cat(u).flatten()
    assert float(u.min()) >= 0.0 and float(u.max()) <= 1.0  # 1.0 only from float32 rounding of x + u
    assert u.mean().item() == pytest.approx(0.5, abs=0.005)  # ~120k draws of U[0, 1): mean 1/2, var 1/12
    assert u.var().item() == pytest.approx(1 / 12, rel=0.02)
    first, again = dithered[0], dithered[112 + 0]
    assert not torch.equal(first, again)  # fresh noise on every visit, not a fixed offset per image
    assert DigitsDataModule(batch_size=16, dequantize=False).dequantizer() is None
    assert torch.equal(dm.real_samples(), dm.decode(dm.stored))  # evaluation data is not dithered


@pytest.mark.parametrize("world", [1, 2])
def test_dequantisation_noise_is_the_same_on_any_world_size_and_after_a_resume(world):
    dm = DigitsDataModule(batch_size=16, seed=5, dequantize=True)
    single = _take(_digits_stream(dm), 12)
    for rank in range(world):
        items = _take(_digits_stream(dm, rank=rank, world_size=world, start=3, batches_per_step=3), 3)
        for i, item in enumerate(items):
            for j in range(3):
                expected = single[3 + 3 * i + j].view(world, 16 // world, 1, 8, 8)[rank]
                assert torch.equal(item[j], expected)


def test_a_training_fraction_is_one_fixed_subset_and_evaluation_keeps_the_whole_set():
    from datamodules.images import FRACTION_SEED, subset_indices
    from gan_modules.metrics.suite import ImageEvaluator, MetricSettings

    full = DigitsDataModule()
    tenth, other_seed = DigitsDataModule(fraction=0.1), DigitsDataModule(fraction=0.1, seed=3)
    expected = torch.randperm(1797, generator=torch.Generator().manual_seed(FRACTION_SEED))[:180].sort().values
    assert torch.equal(subset_indices(1797, 0.1), expected)
    assert len(tenth) == 180 and torch.equal(tenth.stored, full.stored[expected])
    assert torch.equal(other_seed.stored, tenth.stored)  # data.seed changes the order of batches, not the images
    assert torch.equal(tenth.real_samples(), full.real_samples())  # the yardstick is all 1,797 images
    evaluator = ImageEvaluator(MetricSettings(num_fake=100, num_real=1000, metrics=["modes"]))  # loads no extractor
    assert evaluator.counts(tenth) == evaluator.counts(full) == (100, 1000)  # not capped at the 180 trained on
    assert tenth.protocol() == {**full.protocol(), "training_fraction": 0.1}
    assert "training_fraction" not in full.protocol()
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=rf"^data.fraction={bad!r} is invalid; allowed: a float in \(0, 1\]$"):
            DigitsDataModule(fraction=bad)
