"""Class-conditional GANs: labels in the data stream, conditional BatchNorm, the projection critic,
label-bound penalties, a real conditional fit, and the refusals. Each compares against a hand
computation (the papers' formulas written out here) or an independent re-indexing of the data."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from conftest import fit_yaml, resolved_config
from sklearn.datasets import load_digits
from torch import nn

from datamodules import DigitsDataModule, MissingDataError, TorchvisionDataModule, Toy2DDataModule, to_uint8_images
from datamodules.stream import GlobalBatchStream
from datamodules.toy2d import MIXTURES
from gan_modules import AdversarialModule, penalties
from gan_modules.cli import main
from gan_modules.metrics.classifier import to_classifier_input, train_classifier
from gan_modules.nets import build_critic, build_generator
from gan_modules.nets.base import InputTransformCritic
from gan_modules.nets.conditional import ConditionalBatchNorm, LabelInput, LabelledCritic
from gan_modules.trainers import bare_trainer

SN_HINGE = {"loss": "hinge", "regularizers": None, "constraint": "spectral_norm"}
ACGAN = {  # the acgan preset's composition (Odena et al. 2017)
    "loss": "non_saturating",
    "conditioning": "auxiliary_classifier",
    "regularizers": ["auxiliary_classifier"],
    "generator_terms": ["auxiliary_classifier"],
}
TINY_DCGAN = {"generator": {"arch": "dcgan", "width": 8}, "critic": {"arch": "dcgan", "width": 8}}


# ------------------------------------------------------------------------------------------ data
def _hand_indices(n_rows: int, batch: int, seed: int, k: int, rank: int, world: int) -> torch.Tensor:
    """Rows of rank `rank`'s slice of global batch k, re-derived from the stream's definition."""
    data_pass, offset = divmod(k, n_rows // batch)
    perm = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed * 1_000_003 + data_pass))
    local = batch // world
    return perm[offset * batch : (offset + 1) * batch][rank * local : (rank + 1) * local]


def test_stream_labels_follow_their_rows_in_stacks_rank_slices_and_resumes():
    n_rows, batch, seed, steps = 40, 8, 3, 3
    data = torch.arange(n_rows, dtype=torch.float32).repeat(2, 1).T  # row i holds (i, i)
    labels = (torch.arange(n_rows) * 7) % 5
    for rank in (0, 1):
        stream = GlobalBatchStream(data, batch, seed, rank, 2, start=4, batches_per_step=steps, labels=labels)
        items = iter(stream)
        for item in range(3):  # items 0..2 from a stream resumed at global batch 4: batches 4 + 3 * item ...
            rows, got = next(items)
            assert rows.shape == (steps, batch // 2, 2) and got.shape == (steps, batch // 2)
            for j in range(steps):
                idx = _hand_indices(n_rows, batch, seed, 4 + 3 * item + j, rank, 2)
                assert torch.equal(rows[j], data[idx]) and torch.equal(got[j], labels[idx])
    single = GlobalBatchStream(data, batch, seed, labels=labels)
    rows, got = single.local_batches(6)  # one batch per step: not stacked
    assert torch.equal(got, labels[rows[:, 0].long()]) and got.shape == (batch,)
    with pytest.raises(ValueError, match="39 labels for 40 data rows"):
        GlobalBatchStream(data, batch, seed, labels=labels[:-1])


def test_digits_labels_stay_aligned_with_a_fraction_subset():
    digits = load_digits()
    dm = DigitsDataModule(fraction=0.1)
    keep = torch.randperm(len(digits.target), generator=torch.Generator().manual_seed(0))[:180].sort().values
    assert dm.num_classes == 10 and len(dm.stored) == 180
    assert torch.equal(dm.stored_labels, torch.from_numpy(digits.target)[keep])
    scaled = torch.from_numpy(np.round(digits.images[keep.numpy()] * (255.0 / 16.0)).astype(np.uint8))
    assert torch.equal(dm.stored[:, 0], scaled)


def test_mixture_labels_are_the_components_of_the_points():
    for name in ("ring8", "grid25"):
        dm = Toy2DDataModule(name, size=400)
        modes = MIXTURES[name][0]
        nearest = torch.cdist(dm.stored, modes).argmin(1)  # std 0.01 / 0.05: each point lies by its mode
        assert dm.num_classes == len(modes) and torch.equal(dm.stored_labels, nearest)
    assert Toy2DDataModule("swissroll").num_classes == 0


def _write_idx(path, magic: int, array: np.ndarray) -> None:
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">" + "I" * (1 + array.ndim), magic, *array.shape) + array.astype(np.uint8).tobytes())


def test_mnist_labels_come_from_the_idx_file_next_to_the_images(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, size=(20, 28, 28)), rng.integers(0, 10, size=20)
    _write_idx(raw / "t10k-images-idx3-ubyte.gz", 2051, images)
    dm = TorchvisionDataModule("mnist", root=str(tmp_path), split="test", download=False, fraction=0.5)
    with pytest.raises(MissingDataError, match=r"^mnist labels \(test split\) not found .*t10k-labels-idx1-ubyte"):
        dm.stored_labels  # noqa: B018
    _write_idx(raw / "t10k-labels-idx1-ubyte.gz", 2049, labels)
    keep = torch.randperm(20, generator=torch.Generator().manual_seed(0))[:10].sort().values
    assert dm.num_classes == 10 and torch.equal(dm.stored_labels, torch.from_numpy(labels)[keep])
    assert torch.equal(dm.stored[:, 0], torch.from_numpy(images).to(torch.uint8)[keep])


# ------------------------------------------------------------------------------------------ nets
def test_cifar10_labels_are_torchvisions_targets_of_the_split(tmp_path, monkeypatch):
    """CIFAR-10 in torchvision's on-disk format, read by torchvision's own class (its md5 check of the
    real archive's files is what a hand-written batch cannot pass, so only that check is lifted)."""
    import pickle

    import torchvision.datasets.cifar as tv_cifar

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name, _ in tv_cifar.CIFAR10.train_list + tv_cifar.CIFAR10.test_list:
        data, labels = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8), rng.integers(0, 10, size=4).tolist()
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": labels}))
        batches[name] = (data, labels)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(k) for k in range(10)]}))
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args: True)
    for split, names in (("train", [n for n, _ in tv_cifar.CIFAR10.train_list]), ("test", ["test_batch"])):
        dm = TorchvisionDataModule("cifar10", root=str(tmp_path), split=split, download=False)
        assert dm.num_classes == 10
        expected = torch.tensor([y for n in names for y in batches[n][1]])
        assert torch.equal(dm.stored_labels, expected)
        first = torch.from_numpy(batches[names[0]][0][0].reshape(3, 32, 32))
        assert torch.equal(dm.stored[0], first)  # images and labels in the same order


def test_image_folder_labels_are_its_subfolders(tmp_path):
    from PIL import Image

    for k, cls in enumerate(("cat", "dog", "emu")):  # torchvision sorts the class folders
        (tmp_path / cls).mkdir()
        for i in range(2 + k):
            Image.fromarray(np.full((12, 12, 3), 40 * k + i, dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    dm = TorchvisionDataModule("image_folder", root=str(tmp_path), image_size=8, batch_size=2)
    assert dm.num_classes == 3
    brightness = dm.stored.float().mean(dim=(1, 2, 3))
    assert torch.equal(dm.stored_labels, (brightness // 40).long())  # each image's own folder
    assert torch.equal(dm.stored_labels, torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2]))
    assert TorchvisionDataModule("image_folder", root=str(tmp_path / "missing")).num_classes == 0


def test_conditional_batch_norm_by_hand():
    torch.manual_seed(0)
    x, y = torch.randn(6, 3, 2, 2), torch.tensor([0, 1, 1, 0, 1, 0])
    layer = ConditionalBatchNorm(nn.BatchNorm2d(3, affine=False), 3, 2)
    assert torch.equal(layer.gain.weight, torch.ones(2, 3)) and torch.equal(layer.bias.weight, torch.zeros(2, 3))
    gain, bias = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]]), torch.tensor([[0.0, 1.0, 2.0], [3.0, -2.0, 0.5]])
    layer.gain.weight.data.copy_(gain)
    layer.bias.weight.data.copy_(bias)
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    normalised = (x - mean) / torch.sqrt(var + 1e-5)
    expected = normalised * gain[y][:, :, None, None] + bias[y][:, :, None, None]
    torch.testing.assert_close(layer(x, y), expected)
    # without BatchNorm (the MLP generator's default) the per-class gain and bias act on x itself
    film = ConditionalBatchNorm(nn.Identity(), 3, 2)
    film.gain.weight.data.copy_(gain)
    film.bias.weight.data.copy_(bias)
    h = torch.randn(6, 3)
    torch.testing.assert_close(film(h, y), h * gain[y] + bias[y])


@pytest.mark.parametrize("arch", ["mlp", "dcgan", "resnet", "standard_cnn"])
def test_conditional_generators_replace_every_batch_norm(arch):
    shape = (2,) if arch == "mlp" else (1, 8, 8)
    spec = {"arch": arch, "width": 4} if arch != "mlp" else {"arch": arch, "hidden": [4, 4], "batch_norm": True}
    plain, conditional = build_generator(spec, 3, shape), build_generator(spec, 3, shape, num_classes=5)
    plain_bns = [m for m in plain.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    cbns = [m for m in conditional.modules() if isinstance(m, ConditionalBatchNorm)]
    # ResNet keeps its final BatchNorm unconditional (the authors' `b7`)
    assert len(cbns) == len(plain_bns) - (arch == "resnet") and all(not c.normalise.affine for c in cbns)
    z, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 4])
    assert conditional(z, y).shape == (4, *shape)


def test_label_input_feeds_the_one_hot_label_beside_the_noise_by_hand():
    torch.manual_seed(0)
    gen = build_generator({"arch": "mlp", "hidden": [4]}, 3, (2,), num_classes=5, label_input=True)
    assert isinstance(gen, LabelInput)
    z, y = torch.randn(4, 3), torch.tensor([0, 4, 2, 4])
    one_hot = torch.zeros(4, 5)
    one_hot[torch.arange(4), y] = 1.0
    torch.testing.assert_close(gen(z, y), gen.net(torch.cat([z, one_hot], 1), y))
    first = next(m for m in gen.modules() if isinstance(m, nn.Linear))
    assert first.in_features == 3 + 5


@pytest.mark.slow
def test_acgan_samples_of_each_class_are_that_class_to_a_held_out_classifier():
    """Odena et al. 2017, Sec. 4.1's check: a classifier trained apart from the GAN (here on the digits
    themselves) labels the samples generated for class k as k. Conditional BatchNorm alone reaches ~24%
    on this budget; with the label beside the noise 94% after 150 iterations, 99% after 300."""
    dm = DigitsDataModule(batch_size=64)
    dm.setup("fit")
    classifier, stats = train_classifier(dm.stored, dm.stored_labels, epochs=5)
    assert stats["heldout_accuracy"] > 0.95
    torch.manual_seed(0)
    module = AdversarialModule(
        **ACGAN,
        label_input=True,
        generator={"arch": "dcgan", "width": 16},
        critic={"arch": "dcgan", "width": 16},
        num_classes=10,
        z_dim=16,
        data_shape=(1, 8, 8),
        lr_g=1e-3,
        lr_d=1e-3,
        betas=(0.5, 0.999),
    )
    bare_trainer(200).fit(module, dm)
    y = torch.arange(1000) % 10
    with torch.no_grad():
        predicted = classifier(to_classifier_input(to_uint8_images(module.sample(1000, seed=0, labels=y))))[1].argmax(1)
    per_class = [(predicted[y == k] == k).float().mean().item() for k in range(10)]
    assert min(per_class) > 0.6 and sum(per_class) / 10 > 0.9, per_class


def test_projection_critic_score_by_hand():
    torch.manual_seed(0)
    critic = build_critic({"arch": "mlp", "hidden": [5]}, (2,), num_classes=3)
    x, y = torch.randn(4, 2), torch.tensor([2, 0, 1, 2])
    linear = critic.body[1]
    phi = torch.relu(x @ linear.weight.T + linear.bias)
    unconditional = phi @ critic.head.weight[0] + critic.head.bias[0]
    expected = unconditional + (critic.embed.weight[y] * phi).sum(1)
    torch.testing.assert_close(critic(x, y), expected)
    torch.testing.assert_close(critic(x), unconditional)  # no labels: head(phi(x)) alone

    class Doubled(InputTransformCritic):
        def transform(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * x

    torch.testing.assert_close(Doubled(critic)(x, y), critic(2 * x, y))  # packing / DiffAugment pass y on


def test_acgan_critic_and_generator_losses_by_hand():
    """AC-GAN (Odena et al. 2017, Eq. 2-3): the critic minimises -L_S - L_C, L_C the log-likelihood of
    the right class on real and fake; the generator -log D(G(z)) - L_C(fake). The score ignores y."""
    torch.manual_seed(0)
    nets = {"generator": {"arch": "mlp", "hidden": [4]}, "critic": {"arch": "mlp", "hidden": [5]}}
    module = AdversarialModule(**ACGAN, **nets, num_classes=3, z_dim=2)
    critic, n = module.critic, 6
    real, fake, y = torch.randn(n, 2), torch.randn(n, 2), torch.tensor([0, 1, 2, 2, 1, 0])
    linear = critic.body[1]
    phi = lambda x: torch.relu(x @ linear.weight.T + linear.bias)  # noqa: E731
    score = lambda x: phi(x) @ critic.head.weight[0] + critic.head.bias[0]  # noqa: E731

    def minus_log_likelihood(x: torch.Tensor) -> torch.Tensor:  # -mean log softmax(W phi + b)[y]
        logits = phi(x) @ critic.classifier.weight.T + critic.classifier.bias
        return (torch.log(torch.exp(logits).sum(1)) - logits[torch.arange(n), y]).mean()

    torch.testing.assert_close(critic(real, y), score(real))
    torch.testing.assert_close(critic(real, (y + 1) % 3), score(real))
    sigmoid = torch.sigmoid
    class_term = minus_log_likelihood(real) + minus_log_likelihood(fake)
    d_loss, d_logs = module.critic_loss(real, fake, y)
    adversarial = -torch.log(sigmoid(score(real))).mean() - torch.log(1 - sigmoid(score(fake))).mean()
    torch.testing.assert_close(d_loss, adversarial + class_term)
    torch.testing.assert_close(d_logs["train/auxiliary_classifier"], class_term)
    g_loss, _ = module.generator_loss(fake, real, y)
    torch.testing.assert_close(g_loss, -torch.log(sigmoid(score(fake))).mean() + minus_log_likelihood(fake))


def test_gradient_penalty_on_the_label_bound_critic_by_hand():
    """f(x, y) = (w + e_y) . relu(W x + b) + c, so df/dx = W^T ((w + e_y) * [W x + b > 0])."""
    torch.manual_seed(1)
    critic = build_critic({"arch": "mlp", "hidden": [6]}, (2,), num_classes=3)
    real, fake, eps, y = torch.randn(5, 2), torch.randn(5, 2), torch.rand(5), torch.tensor([0, 1, 2, 1, 0])
    got = penalties.gradient_penalty(LabelledCritic(critic, y), real, fake, eps)
    linear, w = critic.body[1], critic.head.weight[0]
    x_hat = eps[:, None] * real + (1 - eps[:, None]) * fake
    active = (x_hat @ linear.weight.T + linear.bias > 0).float()
    grads = ((w + critic.embed.weight[y]) * active) @ linear.weight
    torch.testing.assert_close(got, ((grads.norm(dim=1) - 1) ** 2).mean())


# -------------------------------------------------------------------------------------- training
def test_conditional_hinge_sngan_fit_on_digits_depends_on_the_label():
    torch.manual_seed(0)
    module = AdversarialModule(
        **SN_HINGE, **TINY_DCGAN, num_classes=10, z_dim=8, data_shape=(1, 8, 8), lr_g=1e-3, lr_d=1e-3, ema_decay=0.5
    )
    calls: list[torch.Tensor] = []  # the labels of every generator pass in training
    module.generator.register_forward_pre_hook(lambda net, args: calls.append(args[1].clone()))
    dm = DigitsDataModule(batch_size=16)
    trainer = L.Trainer(
        max_steps=20,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, dm)
    assert all(torch.isfinite(v) for v in module.step_losses.values()) and len(module.step_losses) == 2
    # n_critic = 1: passes alternate critic step (the real batch's labels) and generator step (drawn ones)
    stream = GlobalBatchStream(dm.stored, 16, dm.seed, labels=dm.stored_labels)
    for k, labels in enumerate(calls[0::2]):
        assert torch.equal(labels, stream.local_batches(k)[1])
    drawn = torch.cat(calls[1::2])
    assert len(calls) == 40 and drawn.min() >= 0 and drawn.max() <= 9 and len(drawn.unique()) > 5
    z = torch.randn(4, 8)
    generator = module.generator.eval()
    with torch.no_grad():
        assert (generator(z, torch.full((4,), 3)) - generator(z, torch.full((4,), 7))).abs().max() > 1e-3
    # held-out critic scores at the real rows' labels (and fakes of those labels)
    scores = trainer.validate(module, dm, verbose=False)[0]
    idx = torch.randperm(len(dm), generator=torch.Generator().manual_seed(dm.seed + 7))[:64]
    with torch.no_grad():
        expected = module.critic.eval()(dm.decode(dm.stored[idx]), dm.stored_labels[idx]).mean()
    assert scores["val/critic_real"] == pytest.approx(expected.item(), rel=1e-5)
    # fixed grids: the fixed noise at labels arange(n) % K, through the EMA generator
    ema = module.generator_ema.eval()
    torch.testing.assert_close(module.sample(12), ema(module.fixed_noise[:12], torch.arange(12) % 10))


def test_an_acgan_fit_on_digits_trains_its_classifier_head_on_the_real_labels():
    torch.manual_seed(0)
    module = AdversarialModule(
        **ACGAN, **TINY_DCGAN, num_classes=10, z_dim=8, data_shape=(1, 8, 8), lr_g=1e-3, lr_d=1e-3
    )
    dm = DigitsDataModule(batch_size=32)
    trainer = bare_trainer(60)
    trainer.fit(module, dm)
    critic = module.critic.eval()
    x, y = dm.decode(dm.stored[:1000]), dm.stored_labels[:1000]
    with torch.no_grad():
        accuracy = (critic.class_logits(critic.features(x)).argmax(1) == y).float().mean().item()
    assert accuracy > 0.5  # chance: 0.1; 0.72 here after 60 iterations of 32 images


def test_a_resumed_conditional_fit_ends_with_the_uninterrupted_weights(tmp_path, capsys):
    """The toy WGAN-GP on ring8's 8 components: 6 iterations straight, or 2, stop, and resume to 6
    (the stream restarts at its consumed batches, the label draws at the checkpointed draw count)."""

    def fit(root: str, steps: int) -> dict[str, torch.Tensor]:
        config = fit_yaml(
            tmp_path / f"{root}{steps}.yaml", model={"init_args": {"num_classes": 8}}, trainer={"max_steps": steps}
        )
        assert main(["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / root)]) == 0
        return torch.load(tmp_path / root / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]

    straight, stopped = fit("straight", 6), fit("resumed", 2)
    capsys.readouterr()
    resumed = fit("resumed", 6)
    assert f"resuming from {tmp_path / 'resumed' / 'checkpoints' / 'last.ckpt'}" in capsys.readouterr().out
    assert straight.keys() == resumed.keys() and any("embed" in k for k in straight)
    assert any(not torch.equal(stopped[k], straight[k]) for k in straight)  # the second part trained
    for name, value in straight.items():
        assert torch.equal(resumed[name], value), name


def test_num_classes_data_takes_the_classes_of_the_data_and_survives_a_checkpoint(tmp_path):
    from gan_modules.checkpoints import load_module

    config = fit_yaml(
        tmp_path, model={"init_args": {**ACGAN, "num_classes": "data"}}, data={"init_args": {"dataset": "grid25"}}
    )
    assert (
        main(["fit", "--config", str(config), "--trainer.max_steps", "2", "--trainer.default_root_dir", str(tmp_path)])
        == 0
    )
    module = load_module(tmp_path / "checkpoints" / "last.ckpt")
    assert module.num_classes == 25 and module.critic.classifier.out_features == 25
    assert (module.hparams.num_classes, module.hparams.data_classes) == (25, 25)  # the resolved K on record


def test_sample_generates_the_given_labels_from_the_seeded_noise():
    torch.manual_seed(0)
    nets = {"generator": {"arch": "mlp", "hidden": [4]}, "critic": {"arch": "mlp", "hidden": [4]}}
    module = AdversarialModule(z_dim=3, num_classes=4, **nets)
    with torch.no_grad():
        module.generator.net[1].bias.weight.normal_()  # labels must matter from the start
    labels = torch.tensor([3, 0, 0, 2, 1])
    expected = module.generator(module.seeded_noise(5, seed=11), labels)
    torch.testing.assert_close(module.sample(5, seed=11, labels=labels, batch_size=2), expected)
    with pytest.raises(ValueError, match=r"^labels=\[0, 4\] \(2 of them\) are invalid for 2 samples with model.num"):
        module.sample(2, seed=11, labels=torch.tensor([0, 4]))


def test_ema_standing_statistics_of_conditional_batch_norm_are_the_analytic_moments():
    # the normalisation precedes the class gain, so after Linear(z), z ~ N(0, I), the running
    # statistics are those of W z + b whatever the labels: mean b, variance sum_j W_ij^2
    torch.manual_seed(0)
    nets = {"generator": {"arch": "mlp", "hidden": [4], "batch_norm": True}, "critic": {"arch": "mlp", "hidden": [4]}}
    module = AdversarialModule(ema_decay=0.9, z_dim=3, num_classes=4, **nets)
    module.sample(8)  # recomputes the EMA generator's standing statistics (16 x 256 draws)
    linear, cbn = module.generator_ema.net[0], module.generator_ema.net[1]
    variance = linear.weight.detach().pow(2).sum(1)
    bn = cbn.normalise
    assert torch.allclose(bn.running_mean, linear.bias.detach(), atol=5 * (variance / 4096).sqrt().max())
    assert torch.allclose(bn.running_var, variance, rtol=5 * (2 / 4096) ** 0.5)


# -------------------------------------------------------------------------------------- refusals
def _fit_error(tmp_path, capsys, model: dict, data: dict) -> str:
    config = fit_yaml(tmp_path / "fit.yaml", model={"init_args": model}, data=data)
    assert main(["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / "run")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    ("num_classes", "dataset", "message"),
    [
        (10, "ring8", "model.num_classes=10 is invalid with data 'ring8', which has 8 classes; allowed: 8 (or 0"),
        (3, "swissroll", "model.num_classes=3 is invalid with data 'swissroll', which has no labels; allowed: 0"),
        ("data", "swissroll", "model.num_classes='data' is invalid with data that has no labels; allowed: 0"),
    ],
)
def test_labels_the_data_lacks_are_refused_in_one_line(tmp_path, capsys, num_classes, dataset, message):
    line = _fit_error(tmp_path, capsys, {"num_classes": num_classes}, {"init_args": {"dataset": dataset}})
    assert message in line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_the_same_refusal_from_a_plain_trainer():
    module = AdversarialModule(num_classes=10, z_dim=2)
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match=r"^model.num_classes=10 is invalid with data 'ring8', which has 8 classes"):
        trainer.fit(module, Toy2DDataModule("ring8", size=64, batch_size=8))
    assert module.global_step == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"num_classes": -1},
            "model.num_classes=-1 is invalid; allowed: 0 (unconditional), the data's number of classes, or data",
        ),
        (
            {"critic": {"arch": "mlp", "pack": 2}},
            "model.critic.pack=2 is invalid with model.num_classes=8 (a pack would mix the labels of its samples)",
        ),
        ({"critic": {"arch": "autoencoder"}}, "model.critic.arch='autoencoder' is invalid with model.num_classes=8"),
        ({"generator": {"arch": "mlp", "num_classes": 3}}, "model.generator.num_classes is not an option of the mlp"),
        (
            {"regularizers": ["auxiliary_classifier"]},
            "model.regularizers=auxiliary_classifier is invalid with model.conditioning='projection' (it reads the",
        ),
        (
            {"conditioning": "auxiliary_classifier"},
            "model.conditioning='auxiliary_classifier' is invalid; allowed: projection without model.regularizers",
        ),
        (
            {**ACGAN, "num_classes": 0},
            "model.conditioning='auxiliary_classifier' is invalid; allowed: projection with model.num_classes=0",
        ),
        ({"num_classes": 0, "label_input": True}, "model.label_input=true is invalid with model.num_classes=0"),
        (
            {"conditioning": "acgan"},
            "model.conditioning: Expected a typing.Literal['projection', 'auxiliary_classifier']. Got value: acgan",
        ),
    ],
)
def test_conditional_settings_that_cannot_work_are_refused_in_one_line(tmp_path, capsys, overrides, message):
    assert message in _fit_error(tmp_path, capsys, {"num_classes": 8, **overrides}, {})


def test_sample_class_and_the_per_class_grid_of_a_conditional_digits_run(tmp_path, capsys):
    """`gan-lab sample --class K` generates K for every sample (the module's own `sample` at those
    labels, rounded as images are); the image grid has one row per class: the first 10 x 6 fixed
    noise vectors at labels 0 0 0 0 0 0 1 1 ..., redrawn here from the final checkpoint."""
    from PIL import Image

    from gan_modules.callbacks.image_grid import save_image_grid
    from gan_modules.checkpoints import load_module
    from gan_modules.commands.sample import NAME

    root = tmp_path / "run"
    args = ["fit", "--model", "sngan", "--model.init_args.num_classes", "10", "--model.init_args.z_dim", "4"]
    args += [
        "--model.init_args.generator",
        "{arch: dcgan, width: 4}",
        "--model.init_args.critic",
        "{arch: dcgan, width: 4}",
    ]
    args += ["--data", "datamodules.DigitsDataModule", "--data.init_args.batch_size", "8", "--trainer.max_steps", "2"]
    args += [
        "--trainer.default_root_dir",
        str(root),
        "--trainer.enable_progress_bar",
        "false",
        "--image_grid.upscale",
        "1",
    ]
    assert main(args) == 0
    ckpt = root / "checkpoints" / "last.ckpt"
    module = load_module(ckpt)
    grid = np.asarray(Image.open(root / "samples" / "latest.png"))
    assert grid.shape[:2] == (10 * (8 + 2) + 2, 6 * (8 + 2) + 2)  # 10 rows of 6 8x8 digits, 2-pixel padding
    expected = save_image_grid(
        module.sample(60, labels=torch.arange(10).repeat_interleave(6)), tmp_path / "by_hand.png", 1, 6
    )
    assert np.array_equal(grid, np.asarray(Image.open(expected)))

    out = tmp_path / "three.npz"
    assert (
        main(["sample", "--ckpt_path", str(ckpt), "--num", "5", "--class", "3", "--seed", "4", "--out", str(out)]) == 0
    )
    saved = np.load(out)
    assert saved["labels"].tolist() == [3] * 5
    by_hand = module.sample(5, seed=4, labels=torch.full((5,), 3))
    assert np.array_equal(
        saved["samples"], ((by_hand.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    )
    capsys.readouterr()
    assert main(["sample", "--ckpt_path", str(ckpt), "--num", "5", "--class", "10", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"gan-lab {NAME}: error: --class=10 is invalid; allowed: 0 .. 9"


# ------------------------------------------------------------------------------------- configs
def test_the_cifar10_projection_config_is_the_papers_setting(monkeypatch):
    """Miyato & Koyama 2018's CIFAR-10 setting, as sn_cifar10_conditional.yml gives it: SNGAN's ResNets
    (generator 256 channels, critic 128, z 128), hinge, spectral norm, n_dis 5, Adam 2e-4 (0, 0.9),
    batch 64, 128 fakes per generator step, linear decay over 50,000 iterations, 10 classes through
    conditional BatchNorm and the projection."""
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    config = resolved_config(
        ["--model", "sngan", "--data", "cifar10", "--config", "configs/experiment/sngan/cifar10_projection.yaml"]
    )
    model = config["model"]["init_args"]
    paper = {
        "z_dim": 128, "loss": "hinge", "constraint": "spectral_norm", "n_critic": 5, "optimizer": "adam",
        "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.0, 0.9], "g_batch_size": 128, "lr_decay": "linear",
        "num_classes": "data", "conditioning": "projection", "label_input": False,
    }  # fmt: skip
    assert {k: model[k] for k in paper} == paper
    assert (model["generator"]["arch"], model["generator"]["width"]) == ("resnet", 256)
    assert (model["critic"]["arch"], model["critic"]["width"]) == ("resnet", 128)
    assert (config["data"]["init_args"]["batch_size"], config["trainer"]["max_steps"]) == (64, 50_000)


def test_the_digits_projection_config_composes_sngan_with_labels(monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    config = resolved_config(
        ["--model", "sngan", "--data", "digits", "--config", "configs/experiment/sngan/digits_projection.yaml"]
    )
    model = config["model"]["init_args"]
    expected = {"loss": "hinge", "constraint": "spectral_norm", "num_classes": "data", "conditioning": "projection",
                "label_input": True}  # fmt: skip
    assert {k: model[k] for k in expected} == expected
    assert config["trainer"]["max_steps"] == 3000  # the measured numbers in the file are at the family's budget
