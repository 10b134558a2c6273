"""Performance measurements behind `gan-lab speed` (a benchmark that prints numbers, never a test).

Every comparison runs both sides in one process on the same machine, interleaved (A B B A ...) so
that load from other processes hits both alike, and reports medians over repetitions:

- engine overhead: time per generator iteration of `AdversarialModule` composed as WGAN-GP (the
  wasserstein loss + the gradient_penalty regulariser) under a Lightning `Trainer` vs
  `PlainWGANGP`, plain PyTorch with the same networks, optimisers, batches, noise and n_critic (it
  reproduces the engine's parameters exactly, which tests check);
- penalty cost: time per critic step of the wgan_gp, dragan and wgan_ct presets relative to wgan
  (weight clipping);
- minibatch discrimination: the layer's forward and backward (one L1 backward on the symmetrised
  gradient) vs autograd through cdist, at the size of the Stacked MNIST config;
- metric throughput: the metrics callback's evaluator vs `torch_fidelity.calculate_metrics` on the
  same generated samples and the same extractor;
- peak memory (process RSS; CUDA max allocated per section on GPUs);
- on CUDA only: images/s for DCGAN-32 and ResNet-32 WGAN-GP, fp32 vs bf16, torch.compile and
  channels_last on/off.
"""

from __future__ import annotations

import copy
import functools
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from datamodules import DigitsDataModule, GANDataModule, ImageDataModule, Toy2DDataModule
from datamodules.stream import GlobalBatchStream
from gan_modules.compose import preset
from gan_modules.draws import GlobalDraws
from gan_modules.engine import AdversarialModule
from gan_modules.nets import build_generator
from gan_modules.trainers import bare_trainer

# The WGAN-GP composition every engine measurement trains: the wgan_gp preset (wasserstein loss,
# gradient_penalty with lambda 10, n_critic 5, Adam 1e-4) with the betas (0, 0.9) of Gulrajani et
# al. 2017, Algorithm 1, which `PlainWGANGP` uses too.
WGAN_GP_BETAS = (0.0, 0.9)


def wgan_gp(**overrides: Any) -> AdversarialModule:
    """The engine side of the measurements: `preset("wgan_gp")` with Algorithm 1's betas."""
    return preset("wgan_gp", **{"betas": WGAN_GP_BETAS, **overrides})


@dataclass(frozen=True)
class Workload:
    """A network/data/batch setting that the overhead and penalty measurements run on."""

    name: str
    data: Callable[[int], GANDataModule]  # batch size -> datamodule
    generator: dict[str, Any]
    critic: dict[str, Any]
    z_dim: int
    batch_size: int
    n_critic: int = 5
    repeat: int = 1  # iterations and critic steps per repetition are multiplied by this: ~5 ms steps need many


class RandomImages(ImageDataModule):
    """Random uint8 32x32 RGB images: throughput does not depend on pixel values, and needs no download."""

    name = "random32"
    channels = 3
    native_size = 32

    def __init__(self, size: int = 4096, batch_size: int = 64, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.size = size

    def load_native(self) -> Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        return torch.randint(0, 256, (self.size, 3, 32, 32), generator=gen, dtype=torch.uint8)


GPU_ARCHS = {
    # Gulrajani et al. 2017 (DCGAN-like and ResNet CIFAR-10 models, width 128; Adam 1e-4 (0, 0.9), n_critic 5)
    "dcgan32": ({"arch": "dcgan", "width": 64}, {"arch": "dcgan", "width": 64}),
    "resnet32": ({"arch": "resnet", "width": 128}, {"arch": "resnet", "width": 128}),
}


WORKLOADS = {
    # WGAN-GP's 2D toy networks (Gulrajani et al. 2017, toy script: 3 x 512 ReLU MLPs, batch 256, 5 critic steps)
    "toy": Workload("toy", lambda b: Toy2DDataModule("ring8", batch_size=b), {"arch": "mlp"}, {"arch": "mlp"}, 2, 256),
    # the 2D benchmark's networks, batch and n_critic (configs/bench/toy_base.yaml + toy_long.yaml: 3 x 128
    # MLPs, batch 128, one critic step); a step this small is mostly per-call overhead: the engine's worst case
    "toy_bench": Workload(
        "toy_bench",
        lambda b: Toy2DDataModule("grid25", batch_size=b),
        {"arch": "mlp", "hidden": [128, 128, 128]},
        {"arch": "mlp", "hidden": [128, 128, 128]},
        2,
        128,
        1,
        repeat=50,
    ),
    # the quickstart's DCGAN on 16x16 digits, as a WGAN-GP critic (no batch norm)
    "digits": Workload(
        "digits",
        lambda b: DigitsDataModule(image_size=16, batch_size=b),
        {"arch": "dcgan", "width": 32},
        {"arch": "dcgan", "width": 32},
        32,
        64,
    ),
    # Gulrajani et al. 2017's CIFAR-10 ResNet WGAN-GP at batch 64 on random 32x32 images: the size a GPU
    # run trains, so the overhead that matters there (minutes per repetition on a CPU: GPU default only)
    "resnet32": Workload(
        "resnet32", lambda b: RandomImages(batch_size=b), GPU_ARCHS["resnet32"][0], GPU_ARCHS["resnet32"][1], 128, 64
    ),
}
CPU_DEFAULT_WORKLOADS = ("toy", "toy_bench", "digits")
QUICK_WORKLOADS = {
    "toy": Workload(
        "toy",
        lambda b: Toy2DDataModule("ring8", size=512, batch_size=b),
        {"arch": "mlp", "hidden": [32, 32]},
        {"arch": "mlp", "hidden": [32, 32]},
        2,
        32,
        2,
    ),
}


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------- engine vs plain
class _IterationClock(L.Callback):
    """(generator iteration, wall time) at every batch end that advanced `global_step` (one or
    `model.iterations_per_batch` iterations), after `warmup` of them."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.stamps, self._step = warmup, [], -1

    def on_train_batch_end(self, trainer: L.Trainer, *_: Any) -> None:
        if trainer.global_step != self._step:
            self._step = trainer.global_step
            if trainer.global_step >= self.warmup:
                if trainer.strategy.root_device.type == "cuda":
                    torch.cuda.synchronize()
                self.stamps.append((trainer.global_step, time.perf_counter()))

    def seconds_per_iteration(self) -> float:
        (first_step, first_time), (last_step, last_time) = self.stamps[0], self.stamps[-1]
        return (last_time - first_time) / (last_step - first_step)


def engine_seconds_per_iteration(
    module: AdversarialModule, dm: GANDataModule, iterations: int, warmup: int = 2, device: str = "cpu", **trainer: Any
) -> float:
    """Mean seconds per generator iteration of `iterations` engine iterations after `warmup` (one fit)."""
    clock = _IterationClock(warmup)  # a new Trainer counts generator iterations from 0
    bare_trainer(warmup + iterations, [clock], accelerator=device, **trainer).fit(module, dm)
    return clock.seconds_per_iteration()


def wgan_gp_critic_loss(critic: nn.Module, real: Tensor, fake: Tensor, eps: Tensor, gp_weight: float) -> Tensor:
    """Plain WGAN-GP critic objective (Gulrajani et al. 2017, Algorithm 1), written out in torch."""
    x_hat = eps.view(-1, *[1] * (real.dim() - 1)) * real + (1 - eps.view(-1, *[1] * (real.dim() - 1))) * fake
    x_hat = x_hat.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    penalty = (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
    return critic(fake).mean() - critic(real).mean() + gp_weight * penalty


@dataclass
class PlainWGANGP:
    """A hand-written WGAN-GP training loop: what a user would write without the template."""

    generator: nn.Module
    critic: nn.Module
    batches: Iterator[Tensor]
    draws: GlobalDraws
    z_dim: int
    n_critic: int = 5
    gp_weight: float = 10.0
    lr: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.9)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    fused_adam: bool = False  # the engine's `model.fused_adam`: the comparison is of the loops, not the kernels
    g_batch_size: int | None = None  # the engine's `model.g_batch_size`: fakes per generator step (None: len(real))

    def __post_init__(self) -> None:
        adam = {"lr": self.lr, "betas": self.betas, "fused": self.fused_adam}
        self.opt_d = torch.optim.Adam(self.critic.parameters(), **adam)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), **adam)

    def _draw(self, kind: str, *shape: int) -> Tensor:
        return self.draws.draw(kind, shape, self.device)

    def iteration(self) -> None:
        """n_critic critic steps, each on a fresh real batch, then one generator step."""
        reals = next(self.batches).to(self.device)  # the iteration's real batches, fetched together
        for real in reals.unbind(0) if self.n_critic > 1 else (reals,):
            fake = self.generator(self._draw("normal", len(real), self.z_dim)).detach()
            loss = wgan_gp_critic_loss(self.critic, real, fake, self._draw("uniform", len(real)), self.gp_weight)
            self.opt_d.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_d.step()
        self.critic.requires_grad_(False)
        g_loss = -self.critic(self.generator(self._draw("normal", self.g_batch_size or len(real), self.z_dim))).mean()
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        self.critic.requires_grad_(True)

    def seconds_per_iteration(self, iterations: int, warmup: int = 2) -> float:
        for _ in range(warmup):
            self.iteration()
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(iterations):
            self.iteration()
        _sync(self.device)
        return (time.perf_counter() - start) / iterations


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def wgan_gp_module(
    w: Workload,
    dm: GANDataModule,
    seed: int = 0,
    fused_adam: bool = False,
    g_batch_size: int | None = None,
    iterations_per_batch: int = 1,
) -> AdversarialModule:
    torch.manual_seed(seed)
    return wgan_gp(
        generator=w.generator,
        critic=w.critic,
        data_shape=dm.data_shape,
        z_dim=w.z_dim,
        n_critic=w.n_critic,
        seed=seed,
        fused_adam=fused_adam,
        g_batch_size=g_batch_size,
        iterations_per_batch=iterations_per_batch,
    )


def _name(spec: str | dict[str, Any]) -> str:
    return spec if isinstance(spec, str) else spec["name"]


def gradient_penalty_weight(module: AdversarialModule) -> float:
    """The lambda of `module`'s gradient penalty, after checking that its objective is the one
    `PlainWGANGP` writes out: the wasserstein loss plus one eager, two-sided gradient_penalty."""
    hp = module.hparams
    regs = [{"name": r} if isinstance(r, str) else r for r in hp.regularizers or []]
    if (
        _name(hp.loss) != "wasserstein"
        or [(r["name"], r.get("every", 1), r.get("one_sided", False)) for r in regs] != [("gradient_penalty", 1, False)]
        or _name(hp.constraint) != "none"
        or hp.generator_terms
    ):
        raise ValueError(
            "the plain loop writes out WGAN-GP only (model.loss wasserstein, model.regularizers [gradient_penalty]); "
            f"got loss={hp.loss!r}, regularizers={hp.regularizers!r}, constraint={hp.constraint!r}, "
            f"generator_terms={hp.generator_terms!r}"
        )
    return module.objective.eager[0].weight


def plain_twin(module: AdversarialModule, dm: GANDataModule, device: str = "cpu") -> PlainWGANGP:
    """The plain loop on copies of `module`'s current networks, its data stream and its noise seed."""
    stream = GlobalBatchStream(dm.stored, dm.batch_size, dm.seed, decode=dm.decode, batches_per_step=module.n_critic)
    hp = module.hparams
    return PlainWGANGP(
        copy.deepcopy(module.generator).to(device),
        copy.deepcopy(module.critic).to(device),
        iter(stream),
        GlobalDraws(hp.seed),
        module.z_dim,
        module.n_critic,
        gradient_penalty_weight(module),
        hp.lr_d,
        tuple(hp.betas),
        torch.device(device),
        hp.fused_adam,
        module.g_batch_size,
    )


def engine_vs_plain(
    w: Workload,
    reps: int,
    iterations: int,
    device: str = "cpu",
    fused_adam: bool = False,
    iterations_per_batch: int = 1,
) -> dict[str, Any]:
    """Median seconds per generator iteration, engine and plain loop interleaved A B B A; both sides
    use torch's fused Adam kernel with `fused_adam` (`model.fused_adam`). The engine runs
    `iterations_per_batch` generator iterations per Lightning batch; the plain loop is unchanged."""
    iterations *= w.repeat
    dm = w.data(w.batch_size)
    dm.setup("fit")
    module = wgan_gp_module(w, dm, fused_adam=fused_adam, iterations_per_batch=iterations_per_batch)
    plain = plain_twin(module, dm, device)
    engine_times, plain_times = [], []
    for rep in range(reps):
        order = ("engine", "plain") if rep % 2 == 0 else ("plain", "engine")
        for side in order:
            if side == "engine":
                engine_times.append(engine_seconds_per_iteration(module, dm, iterations, device=device))
            else:
                plain_times.append(plain.seconds_per_iteration(iterations))
    engine_ms, plain_ms = 1000 * median(engine_times), 1000 * median(plain_times)
    return {
        "workload": w.name,
        "device": device,
        "batch_size": w.batch_size,
        "n_critic": w.n_critic,
        "fused_adam": fused_adam,
        "iterations_per_batch": iterations_per_batch,
        "iterations_per_rep": iterations,
        "reps": reps,
        "engine_ms_per_iteration": engine_ms,
        "plain_ms_per_iteration": plain_ms,
        "overhead_pct": 100 * (engine_ms / plain_ms - 1),
        "engine_ms_all": [1000 * t for t in engine_times],
        "plain_ms_all": [1000 * t for t in plain_times],
    }


# ---------------------------------------------------------------------------------- penalty costs
# preset -> (init args that differ from it, extra critic options), each timed as one critic step
PENALTY_PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "wgan": ({}, {}),
    "wgan_gp": ({"betas": WGAN_GP_BETAS}, {}),
    "dragan": ({}, {}),
    "wgan_ct": ({"betas": WGAN_GP_BETAS}, {"dropout": 0.5}),  # the consistency term needs a stochastic critic
}


def critic_step_seconds(module: AdversarialModule, batches: Iterator[Tensor], steps: int, device: str) -> float:
    """Mean seconds of one critic step (fakes, loss with its regularisers, backward, update, the
    constraint's projection: weight clipping for wgan)."""
    opt = module._optimizer(module.critic.parameters(), module.hparams.lr_d)
    dev = torch.device(device)

    def step() -> None:
        real = next(batches).to(dev)
        with torch.no_grad():  # as the engine's critic step makes them
            fake = module.generator(module.noise(len(real)))
        loss, _ = module.critic_loss(real, fake)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        module._project_critic()

    step()
    _sync(dev)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(dev)
    return (time.perf_counter() - start) / steps


def penalty_costs(w: Workload, reps: int, steps: int, device: str = "cpu") -> dict[str, Any]:
    """Median time per critic step of each Wasserstein-family preset, and its ratio to wgan's."""
    steps *= w.repeat
    dm = w.data(w.batch_size)
    dm.setup("fit")
    modules = {}
    for name, (overrides, critic_extra) in PENALTY_PRESETS.items():
        torch.manual_seed(0)
        modules[name] = preset(
            name,
            generator=w.generator,
            critic={**w.critic, **critic_extra},
            data_shape=dm.data_shape,
            z_dim=w.z_dim,
            **overrides,
        ).to(device)
    batches = iter(GlobalBatchStream(dm.stored, dm.batch_size, 0, decode=dm.decode))
    times: dict[str, list[float]] = {name: [] for name in modules}
    for rep in range(reps):
        names = list(modules) if rep % 2 == 0 else list(reversed(modules))
        for name in names:
            times[name].append(critic_step_seconds(modules[name], batches, steps, device))
    base = median(times["wgan"])
    return {
        "workload": w.name,
        "device": device,
        "batch_size": w.batch_size,
        "reps": reps,
        "steps_per_rep": steps,
        "ms_per_critic_step": {n: 1000 * median(t) for n, t in times.items()},
        "relative_to_wgan": {n: median(t) / base for n, t in times.items()},
    }


def fake_graph_cost(w: Workload, reps: int, device: str = "cpu") -> dict[str, Any]:
    """What generating the critic step's fakes under `torch.no_grad()` saves against building their
    autograd graph and detaching them (the two ways to feed a critic step): median milliseconds of
    the training-mode generator forward, interleaved, and the saving per generator iteration
    (n_critic critic steps)."""
    dm = w.data(w.batch_size)
    torch.manual_seed(0)
    generator = build_generator(w.generator, w.z_dim, dm.data_shape).to(device).train()
    dev, times = torch.device(device), {"no_grad": [], "graph": []}
    z = torch.randn(w.batch_size, w.z_dim, generator=torch.Generator().manual_seed(0)).to(dev)
    for rep in range(max(reps, 1) * 100):  # ~1 ms forwards: many short interleaved samples
        for side in ("no_grad", "graph") if rep % 2 == 0 else ("graph", "no_grad"):
            _sync(dev)
            start = time.perf_counter()
            if side == "no_grad":
                with torch.no_grad():
                    generator(z)
            else:
                generator(z).detach()
            _sync(dev)
            times[side].append(time.perf_counter() - start)
    no_grad_ms, graph_ms = 1000 * median(times["no_grad"]), 1000 * median(times["graph"])
    return {
        "workload": w.name,
        "device": device,
        "batch_size": w.batch_size,
        "n_critic": w.n_critic,
        "samples": len(times["graph"]),
        "no_grad_ms": no_grad_ms,
        "graph_ms": graph_ms,
        "saved_ms_per_iteration": w.n_critic * (graph_ms - no_grad_ms),
    }


# ----------------------------------------------------------------------- minibatch discrimination
# The minibatch-discrimination layer of configs/bench/stacked_mnist_ours.yaml: batch 128, 100 kernels
# of dimension 5 (Salimans et al. 2016's MinibatchLayer), on the critic's 256 features.
MINIBATCH_SHAPE = {"batch": 128, "features": 256, "kernels": 100, "kernel_dim": 5}


def minibatch_similarity_cost(reps: int, batch: int, features: int, kernels: int, kernel_dim: int) -> dict[str, Any]:
    """Forward + backward of the minibatch-discrimination layer (its kernels' similarities within the
    batch, `MinibatchDiscrimination`), eager (cdist) and compiled (`minibatch_compile`), against the
    same layer differentiated by autograd through cdist: median milliseconds, interleaved, on the CPU
    (the compiled kernels built before timing), and each one's largest gradient difference."""
    from gan_modules.nets.minibatch import MinibatchDiscrimination, cdist_similarity

    torch.manual_seed(0)
    layer = MinibatchDiscrimination(features, kernels, kernel_dim)
    f = torch.randn(batch, features, requires_grad=True)
    weights = torch.randn(batch, features + kernels)

    def layer_step(compiled: bool) -> Tensor:
        layer.compiled = compiled
        (layer(f) * weights).sum().backward()
        return f.grad

    def reference_step() -> Tensor:
        m = (f @ layer.T).view(batch, kernels, kernel_dim).transpose(0, 1)
        out = torch.cat([f, cdist_similarity(m, m).t()], dim=1)  # the DDP path's autograd, in one process
        (out * weights).sum().backward()
        return f.grad

    steps = {
        "layer": functools.partial(layer_step, False),
        "compiled": functools.partial(layer_step, True),
        "autograd": reference_step,
    }
    grads = {}
    for name, step in steps.items():  # also builds the compiled kernels
        f.grad = None
        grads[name] = step().clone()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for rep in range(max(reps, 1) * 10):
        for name in list(steps)[rep % 3 :] + list(steps)[: rep % 3]:
            f.grad = layer.T.grad = None
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    ms = {name: 1000 * median(t) for name, t in times.items()}
    return {
        "batch_size": batch,
        "kernels": kernels,
        "kernel_dim": kernel_dim,
        "samples": len(times["layer"]),
        "layer_ms": ms["layer"],
        "compiled_ms": ms["compiled"],
        "autograd_ms": ms["autograd"],
        "speedup": ms["autograd"] / ms["layer"],
        "compiled_speedup": ms["autograd"] / ms["compiled"],
        "max_grad_difference": (grads["layer"] - grads["autograd"]).abs().max().item(),
        "compiled_max_grad_difference": (grads["compiled"] - grads["autograd"]).abs().max().item(),
    }


# ------------------------------------------------------------------------------- metric throughput
def metric_throughput(num: int, extractor: str, weights_path: str | None, metrics: list[str]) -> dict[str, Any]:
    """The callback's evaluator vs torch-fidelity alone, same generated samples, same extractor.

    callback_cold: first evaluation (extracts real features too), callback_warm: later evaluations
    (real features cached, as during training); torch_fidelity: `calculate_metrics` on the same fake
    and real images, without its cache. Both compute the same metric set.
    """
    import torch_fidelity

    from datamodules import to_uint8_images
    from gan_modules.metrics.classifier import DigitClassifier, default_classifier_path, save_classifier
    from gan_modules.metrics.collective import SingleProcess
    from gan_modules.metrics.extractors import EXTRACTORS
    from gan_modules.metrics.suite import ImageEvaluator, MetricSettings, generated_samples

    note = ""
    if (
        extractor.endswith("-classifier")
        and weights_path is None
        and not default_classifier_path(extractor.removesuffix("-classifier")).is_file()
    ):  # timing does not depend on the weights: an untrained classifier costs the same
        weights_path = str(save_classifier(DigitClassifier(), Path(tempfile.mkdtemp()) / f"{extractor}.pt"))
        note = "untrained classifier weights (timing only; `gan-lab train-evaluator` makes the real ones)"
    settings = MetricSettings(num_fake=num, num_real=num, extractor=extractor, weights_path=weights_path,
                              metrics=metrics, kid_subset_size=min(1000, num), cache_dir=None)  # fmt: skip
    dm = DigitsDataModule(image_size=16)
    dm.setup("fit")
    torch.manual_seed(0)
    module = wgan_gp(generator={"arch": "dcgan", "width": 32}, data_shape=dm.data_shape, z_dim=32).eval()
    evaluator = ImageEvaluator(settings, "cpu", say=lambda _: None)
    evaluator.cache.load = lambda key: (None, "no cache in the speed benchmark")  # time real extraction, cold
    evaluator.cache.save = lambda key, features: "not saved"

    def timed(fn: Callable[[], Any]) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    cold = timed(lambda: evaluator.evaluate(module, dm, SingleProcess()))
    warm = timed(lambda: evaluator.evaluate(module, dm, SingleProcess()))
    spec = EXTRACTORS[extractor]
    fake = to_uint8_images(generated_samples(module, num, settings.batch_size, settings.seed))
    real = to_uint8_images(dm.real_samples(num, seed=settings.seed))
    if spec.channels == 3 and fake.shape[1] == 1:
        fake, real = fake.expand(-1, 3, -1, -1), real.expand(-1, 3, -1, -1)
    weights = spec.weights(weights_path)
    kwargs = {"feature_extractor_weights_path": str(weights)} if weights is not None else {}
    fidelity = timed(
        lambda: torch_fidelity.calculate_metrics(
            input1=_Images(fake), input2=_Images(real), feature_extractor=spec.fidelity_name,
            feature_layer_fid=spec.fid_layer, feature_layer_isc=spec.logits_layer, feature_layer_kid=spec.fid_layer,
            feature_layer_prc=spec.fid_layer, fid="fid" in metrics, isc="is" in metrics, kid="kid" in metrics,
            prc="pr" in metrics, kid_subset_size=min(1000, num), cuda=False, cache=False, verbose=False,
            batch_size=settings.batch_size, **kwargs,
        )
    )  # fmt: skip
    return {
        "extractor": extractor,
        "weights": note or str(weights),
        "metrics": metrics,
        "num_fake": num,
        "num_real": num,
        "callback_cold_s": cold,
        "callback_warm_s": warm,
        "torch_fidelity_s": fidelity,
        "callback_cold_images_per_s": 2 * num / cold,
        "callback_warm_fake_images_per_s": num / warm,
        "torch_fidelity_images_per_s": 2 * num / fidelity,
    }


class _Images(torch.utils.data.Dataset):
    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Tensor:
        return self.images[i]


# ---------------------------------------------------------------------------------- GPU throughput
def images_per_second(
    arch: str,
    precision: str,
    compile: bool,
    channels_last: bool,
    device: str,
    batch_size: int = 64,
    iterations: int = 20,
    warmup: int = 3,
) -> dict[str, Any]:
    """Real images consumed per second by WGAN-GP training through the engine (n_critic 5).

    `compile` compiles generator and critic; the gradient penalty differentiates the eager critic
    (`AdversarialModule.penalty_critic`: compiled graphs have no double backward)."""
    generator, critic = GPU_ARCHS[arch]
    dm = RandomImages(batch_size=batch_size)
    out: dict[str, Any] = {"arch": arch, "precision": precision, "compile": compile, "channels_last": channels_last}
    try:
        torch.manual_seed(0)
        module = wgan_gp(generator=generator, critic=critic, data_shape=dm.data_shape, z_dim=128)
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        if compile:
            torch._dynamo.reset()  # fresh recompile budget per row: every row's nets share forward code objects
            module.generator = torch.compile(module.generator)
            module.critic = torch.compile(module.critic)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds = engine_seconds_per_iteration(module, dm, iterations, warmup, device, precision=precision)
        out["images_per_s"] = batch_size * module.n_critic / seconds
        out["ms_per_generator_iteration"] = 1000 * seconds
        if device == "cuda":
            out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    except Exception as err:
        out["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    return out


def gpu_table_options(mode: str, quick: bool = False) -> dict[str, Any] | None:
    """`gpu_table` keywords for `gan-lab speed --gpu_table {all,eager,none}` (None: no table);
    `--quick` keeps one architecture's eager rows."""
    if mode == "none":
        return None
    options: dict[str, Any] = {} if mode == "all" and not quick else {"compile_modes": (False,)}
    if quick:
        options["archs"] = ("dcgan32",)
    return options


def gpu_table(
    device: str = "cuda",
    iterations: int = 20,
    batch_size: int = 64,
    on_row: Callable[[dict[str, Any]], None] = lambda row: None,
    archs: tuple[str, ...] = tuple(GPU_ARCHS),
    compile_modes: tuple[bool, ...] = (False, True),
) -> list[dict[str, Any]]:
    """Every arch x precision x layout, eager rows first (compiling is slow: if time runs out, the
    eager table is complete); `on_row` sees each row as soon as it is measured."""
    rows = []
    for compile_ in compile_modes:
        for arch in archs:
            for precision in ("32-true", "bf16-mixed"):
                for channels_last in (False, True):
                    rows.append(
                        images_per_second(arch, precision, compile_, channels_last, device, batch_size, iterations)
                    )
                    on_row(rows[-1])
    return rows
