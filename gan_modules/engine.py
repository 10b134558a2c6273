"""The adversarial LightningModule: schedules, optimisers and bookkeeping; no paper's loss.

The objective (loss, critic regularisers, constraint, generator terms) is configuration, resolved
by `gan_modules.objective`; the papers' compositions are presets in `configs/model/`. Every critic
step consumes one fresh real batch; after every `n_critic` critic steps comes one generator step.
The phases follow stylegan2-ada-pytorch's: Dmain (the loss and every eager regulariser, one
backward), Dreg (lazy regularisers, on every k-th critic step), Gmain. The datamodule hands over the
`n_critic` real batches of a generator iteration as one Lightning batch (`real_batches_per_step`),
so Lightning's per-batch loop runs once per generator iteration, as a plain loop's would. Only
generator steps advance `global_step`, so `--trainer.max_steps N` means N generator iterations (the
unit papers report), and checkpoints, logs and the progress bar count the same thing.

A class-conditional GAN (`num_classes` K > 0; Miyato & Koyama 2018) reads a label with every real
row: the critic step's fakes take the labels of its real batch, so the loss and every regulariser
see one label per row, and the generator step draws its labels uniformly from the global draw
stream. Losses, regularisers and generator terms read the critic with those labels bound
(`LabelledCritic`), so they stay functions of a critic of one input.

A self-conditioned GAN (`self_conditioning`; Liu et al. 2020) trains the same conditional nets on
unlabelled data: a real row's label is its cluster of the critic's features
(`gan_modules.self_conditioning`), the generator's labels are drawn from the clusters' sizes, and
to everything outside the module (metrics, grids, `gan-lab sample`) it is an unconditional
generator, the mixture over that prior.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor, nn

from gan_modules import augment as diffaugment
from gan_modules import losses
from gan_modules.draws import Z_PRIORS, GlobalDraws, draw
from gan_modules.nets import build_critic, build_generator
from gan_modules.nets.conditional import LabelledCritic, uniform_labels
from gan_modules.nets.pack import pack_samples, pack_space
from gan_modules.nets.standing_stats import recompute_batchnorm_stats
from gan_modules.objective import Logs, resolve_objective
from gan_modules.registry import Spec
from gan_modules.self_conditioning import ClusterLabels

# Standing statistics of an EMA generator with BatchNorm ("standing statistics", Brock et al. 2019):
# 16 x 256 noise draws (not from a paper: under a second for the nets here), from their own seed.
STANDING_STATS_BATCHES, STANDING_STATS_BATCH_SIZE, STANDING_STATS_SEED_OFFSET = 16, 256, 7919
VALIDATION_SEED_OFFSET = 104729  # validation's own noise stream, apart from training's
CLUSTER_LABEL_SEED_OFFSET = 15485863  # a self-conditioned generator's sampled labels, apart from its noise
WARMUP_CRITIC_STEPS = 100  # WGAN reference code: 100 critic steps for the first 25 G iterations and every 500th


def _default_net(data_shape: tuple[int, ...]) -> dict[str, Any]:
    return {"arch": "mlp"} if len(data_shape) == 1 else {"arch": "dcgan"}


def _noop() -> None:
    return None


class AdversarialModule(L.LightningModule):
    """Generator + critic trained by alternating manual optimisation under a configured objective.

    Args:
        loss: the adversarial loss, a name or ``{name: ..., **options}`` of
            `gan_modules.objective.LOSSES` (minimax, non_saturating, least_squares, wasserstein, hinge,
            fgan, ebgan, loss_sensitive) or an import path to a factory.
        regularizers: critic regularisers, each ``{name, weight, every, **options}`` (gradient_penalty,
            dragan, consistency_term, r1, r2); ``every: k`` > 1 makes it lazy (module docstring).
        constraint: none, ``{name: clip, c: 0.01}`` or spectral_norm.
        generator_terms: extra generator objectives, ``{name, weight}`` (feature_matching, pulling_away).
        generator_adversarial_weight: weight of the loss's generator term (0 with feature matching
            alone: Salimans et al. 2016, Sec. 3.1).
        critic_pretrain_steps: critic-only steps on real data before training (EBGAN's autoencoder
            pretraining; the loss must define one). They consume real batches, no generator iterations.
        augment: DiffAugment policy (Zhao et al. 2020), comma-separated ops of color, translation,
            cutout ("" = none): every critic input in training is augmented, penalty inputs included
            (`gan_modules.augment.AugmentedCritic`). Images only.
        generator / critic: network specs, ``{"arch": "mlp"|"dcgan"|"resnet"|..., **kwargs}``.
        num_classes: K > 0 makes the GAN class-conditional on the data's K labels (module docstring):
            a conditional-BatchNorm generator and a conditional critic (`gan_modules.nets.conditional`);
            0: unconditional; "data": the data's own number of classes (`data_classes`), so one
            conditional preset fits every labelled data set.
        data_classes: the data's number of classes (0: no labels), filled in from the datamodule by
            the CLI; read only when num_classes is "data".
        conditioning: how a conditional critic reads the label: "projection" (Miyato & Koyama 2018,
            Eq. 3) or "auxiliary_classifier" (AC-GAN, Odena et al. 2017: a class head beside an
            unconditional score, trained by the `auxiliary_classifier` regulariser and generator term).
        label_input: a conditional generator also takes the one-hot label beside its noise (AC-GAN's
            generator input; `gan_modules.nets.conditional.LabelInput`), not only through its
            conditional BatchNorm.
        self_conditioning: ``{clusters: k, images: n, every: r}`` makes the GAN self-conditioned
            (module docstring): k-means of the critic's features of n real images into k classes, at
            the start and every r generator iterations (Liu et al. 2020; their Stacked MNIST setting
            is k 100, n 25,000, r 25,000). Unlabelled data; the critic conditions by projection.
        data_shape: filled in from the datamodule by the CLI.
        z_prior: the generator's noise, "normal" N(0, I) or "uniform" U[-1, 1)^z_dim (Goodfellow et
            al. 2014's code; DCGAN). A bounded prior puts less mass where the generator must cross
            the gaps between separated modes (docs/benchmarks.md).
        n_critic: critic steps per generator step, each on a fresh real batch.
        g_batch_size: fakes in each generator step, counted over all ranks like `data.batch_size`
            (null: the real batch's size; BigGAN-PyTorch's `G_batch_size`).
        top_k: {gamma, nu, every}: top-k generator updates (Sinha et al. 2020): the loss's generator
            term reads only the k fakes of the global batch the critic rates most realistic, k
            annealed from the batch by gamma every `every` generator iterations down to the fraction
            nu (`losses.top_k_size`). The paper anneals once per epoch: every = data size /
            (batch size * n_critic).
        optimizer, lr_g, lr_d, betas: separate learning rates give TTUR (Heusel et al. 2017).
        lr_decay: "linear" decays both learning rates to 0 over `trainer.max_steps` generator
            iterations (WGAN-GP and SNGAN CIFAR setups).
        wgan_warmup: WGAN's schedule of 100 critic steps for the first 25 and every 500th
            generator iteration (Arjovsky et al. 2017 reference code).
        ema_decay: keep an exponential moving average of the generator for sampling (e.g. 0.999).
        grad_clip: clip each network's gradient norm (after AMP unscaling) to this value.
        fused_adam: torch's fused Adam kernel, one kernel per step instead of ~10 per tensor. The
            same update rounded differently, so off by default.
        seed: seeds the noise/penalty draws and the fixed evaluation noise.
        iterations_per_batch: generator iterations per Lightning batch. Lightning's per-batch loop
            costs about 0.6 ms per batch on a 2-core x86 CPU whatever the step does
            (docs/performance.md); k iterations per batch pay it once per k. The batches, noise and
            weights are the same as with 1. The callbacks' step intervals must then be multiples of k,
            and schedules that make a batch hold other than k iterations (WGAN's warm-up, critic
            pretraining) are refused.
    """

    def __init__(
        self,
        loss: Spec = "non_saturating",
        regularizers: list[Spec] | None = None,
        constraint: Spec = "none",
        generator_terms: list[Spec] | None = None,
        generator_adversarial_weight: float = 1.0,
        critic_pretrain_steps: int = 0,
        augment: str = "",
        generator: dict[str, Any] | None = None,
        critic: dict[str, Any] | None = None,
        num_classes: int | Literal["data"] = 0,
        data_classes: int = 0,
        conditioning: Literal["projection", "auxiliary_classifier"] = "projection",
        label_input: bool = False,
        self_conditioning: dict[str, int] | None = None,
        data_shape: tuple[int, ...] = (2,),
        z_dim: int = 64,
        z_prior: Literal["normal", "uniform"] = "normal",
        n_critic: int = 1,
        g_batch_size: int | None = None,
        top_k: dict[str, int | float] | None = None,
        optimizer: Literal["adam", "rmsprop", "sgd"] = "adam",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        lr_decay: Literal["none", "linear"] = "none",
        wgan_warmup: bool = False,
        ema_decay: float | None = None,
        grad_clip: float | None = None,
        fused_adam: bool = False,
        seed: int = 0,
        num_fixed_samples: int = 64,
        iterations_per_batch: int = 1,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        _check(n_critic >= 1, "model.n_critic", n_critic, "an integer >= 1")
        _check(g_batch_size is None or g_batch_size >= 1, "model.g_batch_size", g_batch_size, "null or an integer >= 1")
        _check(z_dim >= 1, "model.z_dim", z_dim, "an integer >= 1")
        if num_classes == "data":
            if data_classes <= 0:
                raise ValueError(
                    "model.num_classes='data' is invalid with data that has no labels; allowed: 0 (unconditional)"
                )
            num_classes = data_classes
        _check(
            isinstance(num_classes, int) and num_classes >= 0,
            "model.num_classes",
            num_classes,
            "0 (unconditional), the data's number of classes, or data",
        )
        _check(
            conditioning == "projection" or num_classes > 0,
            "model.conditioning",
            conditioning,
            "projection with model.num_classes=0 (an unconditional critic has no classifier head)",
        )
        _check(z_prior in Z_PRIORS, "model.z_prior", z_prior, ", ".join(Z_PRIORS))
        _check(lr_g > 0, "model.lr_g", lr_g, "a float > 0")
        _check(lr_d > 0, "model.lr_d", lr_d, "a float > 0")
        _check(optimizer in ("adam", "rmsprop", "sgd"), "model.optimizer", optimizer, "adam, rmsprop, sgd")
        _check(lr_decay in ("none", "linear"), "model.lr_decay", lr_decay, "none, linear")
        _check(len(betas) == 2 and all(0 <= b < 1 for b in betas), "model.betas", betas, "two floats in [0, 1)")
        _check(ema_decay is None or 0 <= ema_decay < 1, "model.ema_decay", ema_decay, "null or a float in [0, 1)")
        _check(grad_clip is None or grad_clip > 0, "model.grad_clip", grad_clip, "null or a float > 0")
        _check(
            generator_adversarial_weight >= 0,
            "model.generator_adversarial_weight",
            generator_adversarial_weight,
            "a float >= 0",
        )
        _check(critic_pretrain_steps >= 0, "model.critic_pretrain_steps", critic_pretrain_steps, "an integer >= 0")
        _check(iterations_per_batch >= 1, "model.iterations_per_batch", iterations_per_batch, "an integer >= 1")
        _check(
            iterations_per_batch == 1 or not wgan_warmup,
            "model.iterations_per_batch",
            iterations_per_batch,
            "1 with model.wgan_warmup=true (its 100-critic-step iterations do not fill whole batches)",
        )
        _check(
            iterations_per_batch == 1 or critic_pretrain_steps == 0,
            "model.iterations_per_batch",
            iterations_per_batch,
            "1 with model.critic_pretrain_steps > 0 (pretraining batches do not fill whole generator iterations)",
        )
        self.data_shape = tuple(data_shape)
        generator = generator or _default_net(self.data_shape)
        critic = critic or _default_net(self.data_shape)
        self.objective = resolve_objective(loss, regularizers, constraint, generator_terms, critic)
        _check(
            critic_pretrain_steps == 0 or self.objective.loss.pretrain is not None,
            "model.critic_pretrain_steps",
            critic_pretrain_steps,
            f"0 with model.loss={loss!r} (only a loss with a critic-only form, e.g. ebgan, pretrains)",
        )
        self._check_conditioning(conditioning)
        self._check_top_k(top_k, generator_adversarial_weight)
        clusters = self._check_self_conditioning(self_conditioning, num_classes, conditioning, critic)
        self.save_hyperparameters()
        self.hparams.update(generator=generator, critic=critic)
        self.z_dim, self.n_critic, self.g_batch_size = z_dim, n_critic, g_batch_size
        self.iterations_per_batch = iterations_per_batch
        self.num_classes = num_classes  # read by the datamodule: it then streams labels with the rows
        self.net_classes = num_classes or clusters  # the classes the nets are conditioned on
        self.z_draw = Z_PRIORS[z_prior]
        self.generator = build_generator(generator, z_dim, self.data_shape, self.net_classes, label_input)
        self.critic = build_critic(critic, self.data_shape, self.net_classes, conditioning)
        if self.objective.constraint.wrap is not None:
            self.critic = self.objective.constraint.wrap(self.critic)
        if diffaugment.parse_policy(augment):
            self._check_augment(augment)
            self.critic = diffaugment.AugmentedCritic(self.critic, augment, self.augment_draws)
        self._project_critic()
        self.clusters: ClusterLabels | None = None
        if clusters:
            base = self.unaugmented_critic
            self.clusters = ClusterLabels(clusters, self_conditioning["images"], base, base.feature_dim)
        self.generator_ema: nn.Module | None = None
        if ema_decay is not None:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
        self.register_buffer("fixed_noise", self.seeded_noise(num_fixed_samples, seed))
        self.draws = GlobalDraws(seed)
        self._ema_stats_stale = True  # the EMA generator's BatchNorm statistics need recomputing
        self.real_batches_consumed = 0  # read by the datamodule to resume the data stream exactly
        self.critic_steps_since_generator = 0
        self.step_losses: dict[str, Tensor] = {}  # this step's losses, for NonFiniteGuard's message
        self.stop_on_nonfinite = True  # NonFiniteGuard(policy="skip") turns the post-step check off
        self._unchecked: list[tuple[int, Tensor, Tensor]] = []  # losses not yet checked for NaN/Inf
        self._lazy_logs: Logs = {}  # the last Dreg phase's values, logged with the next iteration

    # ---------------------------------------------------------------------------------- objective
    def _check_augment(self, policy: str) -> None:
        shape = self.data_shape
        _check(len(shape) == 3, "model.augment", policy, f"'' for data of shape {shape} (the ops act on images)")
        for reg in self.objective.regularizers:
            if reg.term.needs_dropout:
                raise ValueError(
                    f"model.augment={policy!r} is invalid with model.regularizers={reg.name} (the term compares two "
                    "dropout passes of one input; each would see another augmentation); allowed: model.augment=''"
                )

    def _check_conditioning(self, conditioning: str) -> None:
        """AC-GAN's class terms need the classifier head, and the head needs the critic's class term."""
        objective = self.objective
        classifying = [
            (key, t.name)
            for key, terms in (
                ("model.regularizers", objective.regularizers),
                ("model.generator_terms", objective.generator_terms),
            )
            for t in terms
            if t.term.reads_class_logits
        ]
        for key, name in classifying:
            if conditioning != "auxiliary_classifier":
                raise ValueError(
                    f"{key}={name} is invalid with model.conditioning={conditioning!r} (it reads the critic's class "
                    "head); allowed: model.conditioning=auxiliary_classifier with model.num_classes > 0"
                )
        _check(
            conditioning != "auxiliary_classifier" or "model.regularizers" in {key for key, _ in classifying},
            "model.conditioning",
            conditioning,
            "projection without model.regularizers auxiliary_classifier (it trains the classifier head)",
        )

    @staticmethod
    def _check_top_k(spec: dict[str, int | float] | None, adversarial_weight: float) -> None:
        if spec is None:
            return
        if set(spec) != {"gamma", "nu", "every"} or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec.values()
        ):
            raise ValueError(
                f"model.top_k={spec!r} is invalid; allowed: null or {{gamma: in (0, 1], nu: in (0, 1], every: "
                "iterations >= 1} (Sinha et al. 2020 anneal k once per epoch)"
            )
        _check(0 < spec["gamma"] <= 1, "model.top_k.gamma", spec["gamma"], "a float in (0, 1]")
        _check(0 < spec["nu"] <= 1, "model.top_k.nu", spec["nu"], "a float in (0, 1]")
        every = spec["every"]
        _check(isinstance(every, int) and every >= 1, "model.top_k.every", every, "an integer >= 1")
        _check(
            adversarial_weight > 0,
            "model.top_k",
            spec,
            "null with model.generator_adversarial_weight=0 (it selects the fakes of the loss's generator term)",
        )

    @staticmethod
    def _check_self_conditioning(
        spec: dict[str, int] | None, num_classes: int, conditioning: str, critic: dict[str, Any]
    ) -> int:
        """The clusters of a valid `self_conditioning` (0: none)."""
        if spec is None:
            return 0
        keys = {"clusters", "images", "every"}
        if set(spec) != keys or not all(isinstance(v, int) and not isinstance(v, bool) for v in spec.values()):
            raise ValueError(
                f"model.self_conditioning={spec!r} is invalid; allowed: null or {{clusters: k >= 2, images: n >= k, "
                "every: r >= 1}} (integers)"
            )
        _check(spec["clusters"] >= 2, "model.self_conditioning.clusters", spec["clusters"], "an integer >= 2")
        _check(
            spec["images"] >= spec["clusters"],
            "model.self_conditioning.images",
            spec["images"],
            f"an integer >= clusters ({spec['clusters']})",
        )
        _check(spec["every"] >= 1, "model.self_conditioning.every", spec["every"], "an integer >= 1")
        _check(
            num_classes == 0,
            "model.num_classes",
            num_classes,
            "0 with model.self_conditioning (the clusters are the classes)",
        )
        _check(
            conditioning == "projection",
            "model.conditioning",
            conditioning,
            "projection with model.self_conditioning (the clusters train no classifier head)",
        )
        _check(
            critic.get("pack", 1) == 1,
            "model.critic.pack",
            critic.get("pack"),
            "1 with model.self_conditioning (a pack would mix the labels of its samples)",
        )
        return spec["clusters"]

    @property
    def unaugmented_critic(self) -> nn.Module:
        """The critic as evaluation reads it: without DiffAugment's wrapper or torch.compile's."""
        critic = self.penalty_critic
        return critic.inner if isinstance(critic, diffaugment.AugmentedCritic) else critic

    def recluster(self) -> None:
        """Self-conditioning: cluster the fixed real images in the critic's current features."""
        assert self.clusters is not None
        spec, seed = self.hparams.self_conditioning, self.hparams.seed
        dm = self.trainer.datamodule
        if not hasattr(dm, "real_samples"):
            raise ValueError(
                f"model.self_conditioning is invalid with data {type(dm).__name__}; allowed: a gan-lab datamodule "
                "(the clusters are of its real_samples)"
            )
        images = dm.real_samples(spec["images"], seed=seed)
        self.clusters.fit(self.unaugmented_critic, images, seed=seed + self.global_step)

    def on_fit_start(self) -> None:
        """The first clustering, before any callback samples (a resumed fit restored its clusters)."""
        if self.clusters is not None and not self.clusters.fitted:
            self.recluster()

    def _project_critic(self) -> None:
        if self.objective.constraint.project is not None:
            self.objective.constraint.project(self.critic)

    @property
    def pack(self) -> int:
        """Samples per critic input (PacGAN's m): terms on the critic's inputs read packs of them."""
        return self.hparams.critic.get("pack", 1)

    @staticmethod
    def labelled(critic: nn.Module, labels: Tensor | None) -> nn.Module:
        """The critic as losses and regularisers read it: with the batch's labels bound, if any."""
        return critic if labels is None else LabelledCritic(critic, labels)

    def critic_loss(self, real: Tensor, fake: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Logs]:
        """Dmain: the loss on one real batch and detached fakes (of the same `labels`, if conditional),
        plus every eager regulariser."""
        critic = self.labelled(self.critic, labels)
        d_real, d_fake = critic(real), critic(fake)
        adversarial = self.objective.loss
        real_in, fake_in = pack_samples(real, self.pack), pack_samples(fake, self.pack)  # a margin is between packs
        loss = adversarial.critic(d_real, d_fake, real_in, fake_in)
        logs = adversarial.logs(d_real, d_fake, real_in, fake_in, loss)
        total, reg_logs = self.regularizer_loss(self.objective.eager, real, fake, gain=1, labels=labels)
        return (loss if total is None else loss + total), {**logs, **reg_logs}

    def regularizer_loss(
        self, terms: tuple, real: Tensor, fake: Tensor, gain: int, labels: Tensor | None = None
    ) -> tuple[Tensor | None, Logs]:
        """sum_i gain * weight_i * R_i(critic, real, fake, draws); `gain` is a lazy phase's interval."""
        total, logs = None, {}
        critic, real, fake = pack_space(self.labelled(self.penalty_critic, labels), self.pack, real, fake)
        for reg in terms:
            value = reg.term.fn(critic, real, fake, self)
            logs[f"train/{reg.name}"] = value.detach()
            weighted = (gain * reg.weight) * value
            total = weighted if total is None else total + weighted
        return total, logs

    def generator_loss(self, fake: Tensor, real: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Logs]:
        """Gmain: the loss's generator term plus the generator terms, on fakes that carry gradient
        (generated from `labels`, if conditional)."""
        weight, terms, total, logs = self.hparams.generator_adversarial_weight, self.objective.generator_terms, None, {}
        critic = self.labelled(self.critic, labels)
        codes = None
        if any(t.term.reads_codes for t in terms):  # one autoencoder pass gives energies and codes
            d_fake, codes = self.critic.energy_and_code(fake)
        elif weight:
            d_fake = critic(fake)
        if weight:
            total = self.adversarial_generator_loss(d_fake, logs)
            total = total if weight == 1 else weight * total
        for term in terms:
            value = term.term.fn(critic, fake, real, codes)
            logs[f"train/{term.name}"] = value.detach()
            weighted = term.weight * value
            total = weighted if total is None else total + weighted
        if total is None:
            raise ValueError("model.generator_adversarial_weight=0 is invalid without model.generator_terms")
        return total, logs

    def adversarial_generator_loss(self, d_fake: Tensor, logs: Logs) -> Tensor:
        """The loss's generator term; with `top_k`, on the k fakes of the global batch the critic rates
        most realistic. Each rank weights the mean over its share of the k by share * ranks / k, so
        DDP's average of the ranks' gradients is that of the mean over the k, as on one process."""
        spec, loss = self.hparams.top_k, self.objective.loss
        if spec is None:
            return loss.generator(d_fake)
        trainer = self._trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        scores = d_fake.detach()
        if world > 1:
            scores = self.all_gather(scores).reshape(-1)  # rank-major: the global batch's order
        k = losses.top_k_size(len(scores), self.global_step, **spec)
        logs["train/top_k"] = torch.tensor(float(k))
        keep = torch.zeros(len(scores), dtype=torch.bool, device=scores.device)
        keep[losses.top_k_indices(scores, k, loss.lower_is_real)] = True
        mine = keep[rank * len(d_fake) : (rank + 1) * len(d_fake)]
        kept = int(mine.sum())
        if not kept:  # no gradient from this rank, but every parameter stays in the graph for DDP
            return 0.0 * d_fake.sum()
        return loss.generator(d_fake[mine]) * (kept * world / k)

    @property
    def penalty_critic(self) -> nn.Module:
        """The critic for gradient penalties: the eager module under a `torch.compile` wrapper (same
        parameters), because compiled graphs (aot_autograd) do not support the double backward a
        penalty on input gradients needs; loss terms keep the compiled `self.critic`."""
        return getattr(self.critic, "_orig_mod", self.critic)

    # ------------------------------------------------------------------------------------ randomness
    def _draw(self, kind: str, shape: tuple[int, ...]) -> Tensor:
        trainer = self._trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return self.draws.draw(kind, shape, self.device, rank, world)

    def noise(self, n: int) -> Tensor:
        """Training noise from the global draw stream."""
        return self._draw(self.z_draw, (n, self.z_dim))

    def draw_labels(self, n: int, generator: torch.Generator) -> Tensor:
        """n labels for the generator: uniform over the classes, or from the clusters' sizes."""
        if self.clusters is not None:
            return self.clusters.draw(n, generator)
        return uniform_labels(self.num_classes, n, generator)

    def generator_labels(self, n: int) -> Tensor | None:
        """A generator step's labels (`draw_labels`) from the global draw stream (None: unconditional)."""
        if not self.net_classes:
            return None
        trainer = self._trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        make = lambda m, gen: {"y": self.draw_labels(m, gen)}  # noqa: E731
        return self.draws.draw_many(make, n, rank, world)["y"].to(self.device)

    @staticmethod
    def generate(net: nn.Module, z: Tensor, labels: Tensor | None) -> Tensor:
        """G(z), or G(z, y) for a conditional generator."""
        return net(z) if labels is None else net(z, labels)

    def seeded_noise(self, n: int, seed: int) -> Tensor:
        """Reproducible noise outside the training stream (evaluation, fixed grids), on the CPU."""
        return draw(self.z_draw, (n, self.z_dim), torch.Generator().manual_seed(seed))

    def augment_draws(self, groups: tuple[str, ...], shape: tuple[int, ...]) -> dict[str, Tensor]:
        """DiffAugment's draws for a batch of `shape` on this rank, from the global draw stream."""
        trainer = self._trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        make = lambda n, gen: diffaugment.draw(groups, (n, *shape[1:]), gen)  # noqa: E731
        return self.draws.draw_many(make, shape[0], rank, world)

    def uniform(self, *shape: int) -> Tensor:
        return self._draw("uniform", tuple(shape))

    def normal(self, *shape: int) -> Tensor:
        return self._draw("normal", tuple(shape))

    # -------------------------------------------------------------------------------------- sampling
    @property
    def sampler(self) -> nn.Module:
        """The network used for evaluation: the EMA generator when there is one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    @torch.no_grad()
    def sample(
        self, n: int | None = None, seed: int | None = None, labels: Tensor | None = None, batch_size: int = 500
    ) -> Tensor:
        """n samples in data space ([-1, 1] images or 2D data units), in eval mode.

        With `seed` the noise is reproducible; without, the fixed evaluation noise is used
        (n <= num_fixed_samples). A conditional generator samples `labels`, by default
        `arange(n) % num_classes`, so every class appears (in fixed grids: in the same places). A
        self-conditioned generator draws its own labels from the clusters' sizes, seeded like the noise.
        """
        if seed is None:
            z = self.fixed_noise[:n]
        else:
            z = self.seeded_noise(n or len(self.fixed_noise), seed)
        if self.num_classes and labels is None:
            labels = torch.arange(len(z)) % self.num_classes
        if labels is not None:
            labels = torch.as_tensor(labels)
            if (
                not self.num_classes
                or labels.shape != (len(z),)
                or not 0 <= labels.min() <= labels.max() < self.num_classes
            ):
                values = labels.flatten().tolist()
                raise ValueError(
                    f"labels={values[:8]}{'...' if len(values) > 8 else ''} ({len(values)} of them) are invalid for "
                    f"{len(z)} samples with model.num_classes={self.num_classes}; allowed: {len(z)} labels in "
                    "0 .. num_classes - 1 (a conditional model only)"
                )
        if self.clusters is not None:
            seed = self.hparams.seed if seed is None else seed
            labels = self.clusters.draw(len(z), torch.Generator().manual_seed(seed + CLUSTER_LABEL_SEED_OFFSET))
        net = self.sampler
        was_training = net.training
        net.eval()
        if net is self.generator_ema and self._ema_stats_stale:
            self._recompute_ema_batchnorm_stats()
        chunks = z.split(batch_size)
        ys = [None] * len(chunks) if labels is None else [y.to(self.device) for y in labels.split(batch_size)]
        out = torch.cat([self.generate(net, c.to(self.device), y) for c, y in zip(chunks, ys, strict=True)])
        net.train(was_training)
        return out

    # ------------------------------------------------------------------------------------- training
    def current_n_critic(self) -> int:
        it = self.global_step
        if self.hparams.wgan_warmup and (it < 25 or it % 500 == 0):
            return WARMUP_CRITIC_STEPS
        return self.n_critic

    @property
    def real_batches_per_step(self) -> int:
        """Real batches the datamodule stacks into one Lightning batch: one per critic step of
        `iterations_per_batch` generator iterations (during WGAN's warm-up a generator iteration
        spans several batches)."""
        return self.n_critic * self.iterations_per_batch

    def real_batches(self, batch: Tensor | list[Tensor] | tuple[Tensor, ...]) -> list[tuple[Tensor, Tensor | None]]:
        """The (real batch, its labels) pairs in one Lightning batch: a stack of batches (shape
        (n, B, *data_shape), from `GlobalBatchStream`) or a single one (any other loader). The labels
        are the second element of a (data, labels) batch for a conditional model, else None."""
        real = batch[0] if isinstance(batch, (list, tuple)) else batch
        labels = batch[1] if self.num_classes and isinstance(batch, (list, tuple)) else None
        if real.dim() != len(self.data_shape) + 2:
            return [(real, labels)]
        return list(zip(real.unbind(0), [None] * len(real) if labels is None else labels.unbind(0), strict=True))

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        max_steps = self.trainer.max_steps
        for real, labels in self.real_batches(batch):
            if 0 < max_steps <= self.global_step:
                break  # a warm-up iteration ended mid-batch on the last generator iteration
            self.train_on_real_batch(real, labels)

    def train_on_real_batch(self, real: Tensor, labels: Tensor | None = None) -> None:
        """One critic step on `real` (Dmain, then Dreg when a lazy regulariser is due), and the
        generator step (Gmain) when it completes an iteration; `labels`: the real rows' classes."""
        pretrain = self.objective.loss.pretrain
        if pretrain is not None and self.real_batches_consumed < self.hparams.critic_pretrain_steps:
            self.critic_update(pretrain(self.critic(real)))
            return
        g_opt = self.optimizers()[1]
        if self.clusters is not None:  # self-conditioned: each row's cluster is its label
            labels = self.clusters(real)
        with torch.no_grad():  # the critic step needs no graph through the generator (BatchNorm still updates)
            fake = self.generate(self.generator, self.noise(len(real)), labels)
        d_loss, d_logs = self.critic_loss(real, fake, labels)
        self.step_losses = {"critic": d_loss.detach()}
        self.critic_update(d_loss)
        lazy = self.objective.lazy_due(self.real_batches_consumed - self.hparams.critic_pretrain_steps)
        if lazy:
            reg_loss, reg_logs = self.regularizer_loss(lazy, real, fake, gain=lazy[0].every, labels=labels)
            self.critic_update(reg_loss, consumes_batch=False)
            self._lazy_logs = reg_logs
        self.critic_steps_since_generator += 1
        if self.critic_steps_since_generator < self.current_n_critic():
            return
        self.critic_steps_since_generator = 0

        self.toggle_optimizer(g_opt)  # critic params need no grad in the generator step
        n = self.generator_batch_size(real)
        z, g_labels = self.noise(n), self.generator_labels(n)
        g_loss, g_logs = self.generator_loss(self.generate(self.generator, z, g_labels), real, g_labels)
        self.step_losses["generator"] = g_loss.detach()
        g_opt.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        g_opt.step()  # advances global_step: one generator iteration
        self.untoggle_optimizer(g_opt)
        if self.stop_on_nonfinite:
            self._guard_finite(d_loss, g_loss)
        self._update_ema()
        self._broadcast_buffers()
        for scheduler in self.lr_schedulers() or []:
            scheduler.step()
        if self.clusters is not None and self.global_step % self.hparams.self_conditioning["every"] == 0:
            self.recluster()
        logs = {"train/critic_loss": d_loss, "train/generator_loss": g_loss, **d_logs, **self._lazy_logs, **g_logs}
        self.log_metrics(logs)

    def _guard_finite(self, d_loss: Tensor, g_loss: Tensor) -> None:
        """Queue this iteration's losses and check them, in one host-device transfer, on the steps
        where anything is written (logs, checkpoints, grids) or training ends: no checkpoint is
        written after a non-finite step, and a GPU is not synchronised every iteration."""
        self._unchecked.append((self.global_step, d_loss.detach(), g_loss.detach()))
        step, trainer = self.global_step, self._trainer
        every = [max(trainer.log_every_n_steps, 1), *step_intervals(trainer).values()] if trainer else [1]
        if not any(step % e == 0 for e in every) and step < (trainer.max_steps if trainer else 0):
            return
        steps = [s for s, _, _ in self._unchecked]
        values = torch.stack([torch.stack([d, g]) for _, d, g in self._unchecked]).float().cpu()
        self._unchecked = []
        _check_finite(steps, values)

    def generator_batch_size(self, real: Tensor) -> int:
        """This rank's fakes in a generator step: its share of `g_batch_size`, else len(real)."""
        if self.g_batch_size is None:
            return len(real)
        return self.g_batch_size // (self._trainer.world_size if self._trainer is not None else 1)

    def critic_update(self, loss: Tensor, consumes_batch: bool = True) -> None:
        """One critic optimiser step (a Dmain step on a real batch, or a Dreg phase)."""
        d_opt = self.optimizers()[0]
        d_opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        # Through the strategy (AMP scaling, clipping hook, DDP) but not LightningOptimizer.step,
        # which would advance global_step: critic steps are not generator iterations.
        self.trainer.strategy.optimizer_step(d_opt.optimizer, _noop)
        self._project_critic()
        self.real_batches_consumed += int(consumes_batch)

    def _recompute_ema_batchnorm_stats(self) -> None:
        """Standing statistics for the EMA generator (`gan_modules.nets.standing_stats`); a no-op
        without BatchNorm. Recomputed at most once per generator iteration that is sampled."""
        gen = torch.Generator().manual_seed(self.hparams.seed + STANDING_STATS_SEED_OFFSET)

        def inputs(n: int) -> tuple[Tensor, ...]:  # noise, and labels (`draw_labels`) for a conditional generator
            z = draw(self.z_draw, (n, self.z_dim), gen).to(self.device)
            return (z,) if not self.net_classes else (z, self.draw_labels(n, gen).to(self.device))

        recompute_batchnorm_stats(self.generator_ema, inputs, STANDING_STATS_BATCHES, STANDING_STATS_BATCH_SIZE)
        self._ema_stats_stale = False

    def _update_ema(self) -> None:
        if self.generator_ema is None:
            return
        self._ema_stats_stale = True
        decay = self.hparams.ema_decay
        with torch.no_grad():  # one multi-tensor op per group instead of one op per tensor
            torch._foreach_lerp_(list(self.generator_ema.parameters()), list(self.generator.parameters()), 1 - decay)
            buffers_ema, buffers = list(self.generator_ema.buffers()), list(self.generator.buffers())
            if buffers:  # foreach ops reject empty lists (nets without BatchNorm have no buffers)
                torch._foreach_copy_(buffers_ema, buffers)

    def _broadcast_buffers(self) -> None:
        """Under DDP, copy rank 0's buffers to every rank after each generator iteration.

        DDP itself broadcasts buffers only at the start of the next step, so without this each rank
        would evaluate and sample with BatchNorm running statistics updated by its own last local
        batch (spectral-norm vectors are identical anyway: they depend on the synchronised weights
        only). Afterwards every rank holds rank 0's statistics, the ones the checkpoint stores.
        `trainer.sync_batchnorm: true` (GPUs) makes the statistics those of the global batch.
        """
        trainer = self._trainer
        if trainer is None or trainer.world_size == 1 or not torch.distributed.is_initialized():
            return
        groups: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
        for buf in self.buffers():
            groups.setdefault((buf.dtype, buf.device), []).append(buf)
        for bufs in groups.values():  # one collective per dtype/device instead of one per buffer
            flat = torch.cat([b.reshape(-1) for b in bufs])
            torch.distributed.broadcast(flat, src=0)
            for buf, part in zip(bufs, flat.split([b.numel() for b in bufs]), strict=True):
                buf.copy_(part.view_as(buf))

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Clip here, where AMP has already unscaled the gradients (Lightning #18089)."""
        if self.hparams.grad_clip is not None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.hparams.grad_clip)

    def log_metrics(self, metrics: dict[str, Tensor | float], prog_bar: bool = True) -> None:
        """Log at step = generator iterations, every `trainer.log_every_n_steps` of them.

        Lightning's own logger step counts batches, which are not generator iterations during WGAN's
        warm-up or EBGAN's pretraining, so the loggers are written directly; `self.log` still feeds
        the progress bar and checkpoint monitors.
        """
        if self.global_step % max(self.trainer.log_every_n_steps, 1):
            return  # skipping off-schedule steps entirely: `log_dict` costs ~30% of a toy step
        values = {k: float(v.detach()) if isinstance(v, Tensor) else float(v) for k, v in metrics.items()}
        self.log_dict(values, prog_bar=prog_bar, logger=False, on_step=True, on_epoch=False)
        if self.trainer.is_global_zero:
            for logger in self.trainer.loggers:
                logger.log_metrics(values, step=self.global_step)

    # ------------------------------------------------------------------------------------ validation
    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        """Held-out critic scores: their gap is the WGAN critic's distance estimate. The noise has its
        own stream per batch, so turning validation on leaves the training run unchanged. A conditional
        model generates the real rows' labels and scores both at them."""
        ((real, labels),) = self.real_batches(batch)
        if self.clusters is not None:
            labels = self.clusters(real)
        trainer = self._trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        stream = GlobalDraws(self.hparams.seed + VALIDATION_SEED_OFFSET + batch_idx)
        z = stream.draw(self.z_draw, (len(real), self.z_dim), self.device, rank, world)
        critic = self.labelled(self.critic, labels)
        critic_real, critic_fake = critic(real).mean(), critic(self.generate(self.generator, z, labels)).mean()
        self.log_dict(
            {
                "val/critic_real": critic_real,
                "val/critic_fake": critic_fake,
                "val/critic_gap": critic_real - critic_fake,
            },
            sync_dist=True,  # averaged over DDP ranks (each holds an equal share of the validation batches)
        )

    test_step = validation_step

    # ------------------------------------------------------------------------------------ optimisers
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        if self._trainer is not None:
            self.check_trainer(self._trainer)
        k = self.objective.lazy_interval
        ratio = k / (k + 1) if k > 1 else 1.0  # stylegan2-ada-pytorch's mb_ratio for a lazy Dreg phase
        opts = [
            self._optimizer(self.critic.parameters(), hp.lr_d, ratio),
            self._optimizer(self.generator.parameters(), hp.lr_g),
        ]
        if hp.lr_decay == "none":
            return opts
        total = self.trainer.max_steps  # > 0: check_trainer refused anything else
        scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda it: max(0.0, 1.0 - it / total)) for o in opts]
        return opts, [{"scheduler": s, "interval": "step"} for s in scheds]

    def _optimizer(self, params: Any, lr: float, ratio: float = 1.0) -> torch.optim.Optimizer:
        """`ratio` < 1 (a lazy regulariser's k / (k + 1)) scales lr and raises the betas to that power."""
        hp = self.hparams
        lr = lr * ratio if ratio != 1.0 else lr
        if hp.optimizer == "adam":
            betas = tuple(b**ratio for b in hp.betas) if ratio != 1.0 else tuple(hp.betas)
            return torch.optim.Adam(params, lr=lr, betas=betas, fused=hp.fused_adam)
        if hp.optimizer == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr)
        return torch.optim.SGD(params, lr=lr)

    def check_trainer(self, trainer: L.Trainer) -> None:
        """Settings that conflict with the trainer's; the CLI calls this before training starts.

        `g_batch_size` is split evenly over the ranks, like the real batch.

        Fused Adam unscales fp16 gradients inside `step()`, so `on_before_optimizer_step` (gradient
        clipping, the non-finite guard) would see them still scaled.
        """
        world = trainer.world_size
        if trainer.datamodule is not None:
            self.check_data(trainer.datamodule, world)
        if self.hparams.lr_decay == "linear" and (trainer.max_steps is None or trainer.max_steps <= 0):
            raise ValueError(
                f"model.lr_decay='linear' is invalid with trainer.max_steps={trainer.max_steps}; allowed: "
                "trainer.max_steps >= 1 (the decay runs over that many generator iterations), or model.lr_decay=none"
            )
        if self.g_batch_size is not None and self.g_batch_size % world:
            raise ValueError(
                f"model.g_batch_size={self.g_batch_size} is invalid with {world} processes; allowed: a multiple of "
                f"{world} (it is the global count, split evenly over the ranks)"
            )
        k = self.iterations_per_batch
        for key, every in step_intervals(trainer).items():
            if k > 1 and every % k:
                raise ValueError(
                    f"{key}={every} is invalid with model.iterations_per_batch={k}; allowed: a multiple of {k} "
                    "(the step is checked once per Lightning batch)"
                )
        if self.hparams.fused_adam and uses_grad_scaler(trainer):
            raise ValueError(
                f"model.fused_adam=True is invalid with trainer.precision={trainer.precision!r} (a GradScaler); "
                "allowed: model.fused_adam=false, or a precision without one (32-true, bf16-mixed)"
            )

    def check_data(self, datamodule: L.LightningDataModule, world: int = 1) -> None:
        """A conditional model needs data with exactly its number of classes, a self-conditioned one
        at least as many rows as it clusters, a packed critic batches of whole packs on each of the
        `world` ranks (the CLI calls this before training, and so does `check_trainer` once the
        trainer holds the data)."""
        k, classes = self.num_classes, getattr(datamodule, "num_classes", 0)
        name = getattr(datamodule, "name", type(datamodule).__name__)
        pack = self.pack
        batches = {"data.batch_size": getattr(datamodule, "batch_size", None), "model.g_batch_size": self.g_batch_size}
        for key, batch in batches.items():
            _check(
                batch is None or (batch // world) % pack == 0,
                key,
                batch,
                f"a multiple of {pack * world} with model.critic.pack={pack} on {world} process(es) (each rank's "
                "batch is scored in packs)",
            )
        spec = self.hparams.self_conditioning
        if spec is not None:
            rows = len(datamodule.reference) if hasattr(datamodule, "reference") else 0
            _check(
                spec["images"] <= rows,
                "model.self_conditioning.images",
                spec["images"],
                f"an integer <= {rows}, the rows of data {name!r}",
            )
        if k and k != classes:
            has = f"has {classes} classes" if classes else "has no labels"
            allowed = f"{classes} (or 0: unconditional)" if classes else "0 (unconditional)"
            raise ValueError(f"model.num_classes={k} is invalid with data {name!r}, which {has}; allowed: {allowed}")

    # ---------------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gan_lab"] = {
            "module_class": f"{type(self).__module__}.{type(self).__qualname__}",
            "draws": self.draws.state_dict(),
            "real_batches_consumed": self.real_batches_consumed,
            "critic_steps_since_generator": self.critic_steps_since_generator,
        }
        dm = self._trainer.datamodule if self._trainer is not None else None
        if dm is not None:
            checkpoint["gan_lab"]["datamodule_class"] = f"{type(dm).__module__}.{type(dm).__qualname__}"

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("gan_lab", {})
        if "draws" in state:
            self.draws.load_state_dict(state["draws"])
        self.real_batches_consumed = int(state.get("real_batches_consumed", 0))
        self.critic_steps_since_generator = int(state.get("critic_steps_since_generator", 0))


def step_intervals(trainer: L.Trainer) -> dict[str, int]:
    """The callbacks' intervals in generator iterations, by config key (a gan-lab callback's
    `config_key`, else its class name): they act at the end of a Lightning batch, when `global_step`
    is a multiple of them. (`log_metrics` runs inside each iteration, so `log_every_n_steps` needs no
    such care.)"""
    intervals = {}
    for callback in trainer.callbacks:
        name = getattr(callback, "config_key", type(callback).__name__)
        if isinstance(getattr(callback, "every_n_steps", None), int):
            intervals[f"{name}.every_n_steps"] = callback.every_n_steps
        if getattr(callback, "_every_n_train_steps", 0):
            intervals[f"{name}.every_n_train_steps"] = callback._every_n_train_steps
    return intervals


def uses_grad_scaler(trainer: L.Trainer) -> bool:
    """fp16 mixed precision: gradients are scaled until the GradScaler unscales them."""
    return getattr(trainer.precision_plugin, "scaler", None) is not None


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{key}={value!r} is invalid; allowed: {allowed}")


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN/Inf; the message names the iteration and the loss."""


def _check_finite(steps: list[int], values: Tensor) -> None:
    """Raise before the step's checkpoint is written, so the last checkpoint on disk stays good;
    `values` holds (critic, generator) losses per generator iteration in `steps`."""
    bad = (~torch.isfinite(values)).nonzero()
    if len(bad):
        row, col = bad[0].tolist()
        which = ("critic", "generator")[col]
        raise NonFiniteLossError(
            f"{which} loss is {values[row, col].item()} at generator iteration {steps[row]}; stopping"
        )
