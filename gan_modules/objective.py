"""An objective is configuration: a loss, critic regularisers, a constraint and generator terms.

    loss: hinge                                   # or {name: least_squares, a: -1, b: 1, c: 0}
    regularizers: [{name: r1, weight: 10, every: 16}]
    constraint: spectral_norm                     # none | clip ({name: clip, c: 0.01}) | spectral_norm
    generator_terms: [{name: feature_matching, weight: 1}]

The equations live in `gan_modules.losses`, `gan_modules.penalties` and `gan_modules.constraints`;
this module only names them (one registry per kind) and checks that the parts fit together, so any
combination trains without new Python and one that cannot work fails before training, in one line
naming both settings. Presets (`configs/model/*.yaml`) name the papers' compositions.

A regulariser with `every: k` > 1 is lazy (Karras et al. 2020, StyleGAN2 Sec. 3.1 and App. B): it runs
as its own critic phase (stylegan2-ada-pytorch's Dreg) on every k-th critic step, on that step's
batches, with its weight multiplied by k; its critic optimiser then uses lr * r and betas ** r with
r = k / (k + 1), as in that code, so the momentum per real batch stays what it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import torch.nn.functional as F
from torch import Tensor, nn

from gan_modules import losses, penalties
from gan_modules.constraints import apply_spectral_norm, clip_weights
from gan_modules.registry import Registry, Spec

Logs = dict[str, Tensor]


class Draws(Protocol):
    """Random draws from the global-batch stream (`gan_modules.draws`), so DDP and resume agree."""

    def uniform(self, *shape: int) -> Tensor: ...


def _no_logs(d_real: Tensor, d_fake: Tensor, real: Tensor, fake: Tensor, loss: Tensor) -> Logs:
    return {}


@dataclass(frozen=True)
class AdversarialLoss:
    """A loss as functions of critic outputs: `critic(d_real, d_fake, real, fake)` (the inputs serve
    data-dependent margins) and `generator(d_fake)`."""

    critic: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
    generator: Callable[[Tensor], Tensor]
    logs: Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Logs] = _no_logs
    critic_arch: str | None = None  # the critic architecture whose outputs the loss reads, if one
    pretrain: Callable[[Tensor], Tensor] | None = None  # a critic-only loss of real outputs
    lower_is_real: bool = False  # realistic inputs score low (energies, learned losses): read by top-k


@dataclass(frozen=True)
class Regularizer:
    """`fn(critic, real, fake, draws)` -> a scalar the critic minimises."""

    fn: Callable[[nn.Module, Tensor, Tensor, Draws], Tensor]
    per_sample_gradient: bool = True  # a gradient w.r.t. single inputs: invalid under BatchNorm
    needs_dropout: bool = False
    reads_class_logits: bool = False  # needs the critic's classifier head (model.conditioning)


@dataclass(frozen=True)
class Constraint:
    """`wrap` transforms the critic once when it is built; `project` runs after every critic update
    (and once at the start)."""

    wrap: Callable[[nn.Module], nn.Module] | None = None
    project: Callable[[nn.Module], None] | None = None


@dataclass(frozen=True)
class GeneratorTerm:
    """`fn(critic, fake, real, codes)` -> a scalar the generator minimises; `codes` are the
    autoencoder critic's codes of the fakes from the generator step's own critic pass (else None)."""

    fn: Callable[[nn.Module, Tensor, Tensor, Tensor | None], Tensor]
    critic_arch: str | None = None
    reads_codes: bool = False
    reads_class_logits: bool = False


LOSSES: Registry[AdversarialLoss] = Registry("model.loss")
REGULARIZERS: Registry[Regularizer] = Registry("model.regularizers")
CONSTRAINTS: Registry[Constraint] = Registry("model.constraint")
GENERATOR_TERMS: Registry[GeneratorTerm] = Registry("model.generator_terms")


def _pair(critic: Callable[..., Tensor], generator: Callable[[Tensor], Tensor], **kw: Any) -> AdversarialLoss:
    """A loss whose critic term reads the two score batches only."""
    return AdversarialLoss(lambda d_real, d_fake, real, fake: critic(d_real, d_fake), generator, **kw)


def _estimate(key: str) -> Callable[..., Logs]:
    """Log minus the critic loss: the divergence or distance the critic estimates."""
    return lambda d_real, d_fake, real, fake, loss: {key: -loss.detach()}


# ------------------------------------------------------------------------------------------ losses
@LOSSES.register("minimax")
def minimax(real_label: float = 1.0) -> AdversarialLoss:
    """Goodfellow et al. 2014, Eq. 1; `real_label` < 1 is one-sided label smoothing (Salimans 2016)."""
    _check_real_label(real_label)
    return _pair(partial(losses.minimax_critic_loss, real_label=real_label), losses.minimax_generator_loss)


@LOSSES.register("non_saturating")
def non_saturating(real_label: float = 1.0) -> AdversarialLoss:
    """The minimax critic with the generator's -log D(G(z)) (Goodfellow et al. 2014, Sec. 3)."""
    _check_real_label(real_label)
    return _pair(partial(losses.minimax_critic_loss, real_label=real_label), losses.non_saturating_generator_loss)


def _check_real_label(real_label: float) -> None:
    if not 0.5 < real_label <= 1.0:
        raise ValueError(f"model.loss.real_label={real_label!r} is invalid; allowed: a float in (0.5, 1] (e.g. 0.9)")


@LOSSES.register("least_squares")
def least_squares(a: float = 0.0, b: float = 1.0, c: float = 1.0) -> AdversarialLoss:
    """Mao et al. 2017, Eq. 2 with fake/real/generator targets a, b, c."""
    if a == b:
        raise ValueError(f"model.loss.a={a!r} is invalid; allowed: a value different from model.loss.b={b!r}")
    return _pair(partial(losses.least_squares_critic_loss, a=a, b=b), partial(losses.least_squares_generator_loss, c=c))


@LOSSES.register("wasserstein")
def wasserstein() -> AdversarialLoss:
    """Arjovsky et al. 2017, Eq. 3; needs a Lipschitz critic (a constraint or a regulariser)."""
    return _pair(
        losses.wasserstein_critic_loss, losses.wasserstein_generator_loss, logs=_estimate("train/wasserstein_estimate")
    )


@LOSSES.register("hinge")
def hinge() -> AdversarialLoss:
    """Lim & Ye 2017; Miyato et al. 2018, Eq. 16-17."""
    return _pair(losses.hinge_critic_loss, losses.wasserstein_generator_loss)


@LOSSES.register("fgan")
def fgan(divergence: str = "js", alternative_generator_loss: bool = True) -> AdversarialLoss:
    """Nowozin et al. 2016: any f-divergence of Table 2."""
    chosen = losses.get_divergence(divergence)
    return _pair(
        partial(losses.fgan_critic_loss, divergence=chosen),
        partial(losses.fgan_generator_loss, divergence=chosen, alternative=alternative_generator_loss),
        logs=_estimate("train/divergence_estimate"),
    )


@LOSSES.register("ebgan")
def ebgan(margin: float = 1.0) -> AdversarialLoss:
    """Zhao et al. 2017, Eq. 1-2 on the autoencoder critic's energies; pretraining reconstructs reals."""
    if margin <= 0:
        raise ValueError(f"model.loss.margin={margin!r} is invalid; allowed: a float > 0")

    def logs(e_real: Tensor, e_fake: Tensor, real: Tensor, fake: Tensor, loss: Tensor) -> Logs:
        return {"train/energy_real": e_real.mean().detach(), "train/energy_fake": e_fake.mean().detach()}

    return _pair(
        partial(losses.ebgan_critic_loss, margin=margin),
        losses.ebgan_generator_loss,
        logs=logs,
        critic_arch="autoencoder",
        pretrain=lambda e_real: e_real.mean(),
        lower_is_real=True,
    )


LEARNED_LOSS_ACTIVATIONS = {"relu": F.relu, "softplus": F.softplus}


@LOSSES.register("loss_sensitive")
def loss_sensitive(real_weight: float = 1.0, delta_scale: float = 1.0, activation: str = "softplus") -> AdversarialLoss:
    """Qi 2017: the learned loss L = activation(critic score) >= 0 with margin delta_scale * ||x - G(z)||_1.

    real_weight = 1 is the paper's objective with lambda = 1 (1 / lambda in general); the authors'
    code uses 0 (its `gamma`). softplus rather than the authors' ReLU because a ReLU output is dead
    wherever all initial scores are negative (on ring8 the generator then gets no gradient).
    """
    if real_weight < 0:
        raise ValueError(f"model.loss.real_weight={real_weight!r} is invalid; allowed: a float >= 0")
    if delta_scale <= 0:
        raise ValueError(f"model.loss.delta_scale={delta_scale!r} is invalid; allowed: a float > 0")
    if activation not in LEARNED_LOSS_ACTIVATIONS:
        allowed = ", ".join(LEARNED_LOSS_ACTIVATIONS)
        raise ValueError(f"model.loss.activation={activation!r} is unknown; allowed: {allowed}")
    act = LEARNED_LOSS_ACTIVATIONS[activation]

    def critic(d_real: Tensor, d_fake: Tensor, real: Tensor, fake: Tensor) -> Tensor:
        delta = losses.l1_margin(real, fake, delta_scale)
        return losses.loss_sensitive_critic_loss(act(d_real), act(d_fake), delta, real_weight)

    def logs(d_real: Tensor, d_fake: Tensor, real: Tensor, fake: Tensor, loss: Tensor) -> Logs:
        gap = (act(d_fake) - act(d_real)).mean().detach()
        return {"train/margin": losses.l1_margin(real, fake, delta_scale).mean().detach(), "train/loss_gap": gap}

    def generator(d_fake: Tensor) -> Tensor:
        return losses.loss_sensitive_generator_loss(act(d_fake))

    return AdversarialLoss(critic, generator, logs, lower_is_real=True)


# ---------------------------------------------------------------------------------- regularisers
@REGULARIZERS.register("gradient_penalty")
def gradient_penalty(one_sided: bool = False) -> Regularizer:
    """WGAN-GP (Gulrajani et al. 2017, Eq. 3) on interpolates; `one_sided` penalises norms above 1 only."""
    return Regularizer(
        lambda critic, real, fake, draws: penalties.gradient_penalty(
            critic, real, fake, draws.uniform(len(real)), one_sided
        )
    )


@REGULARIZERS.register("dragan")
def dragan() -> Regularizer:
    """DRAGAN (Kodali et al. 2017): the gradient penalty on perturbed real data."""
    return Regularizer(
        lambda critic, real, fake, draws: penalties.dragan_penalty(
            critic, real, draws.uniform(*real.shape), draws.uniform(len(real))
        )
    )


@REGULARIZERS.register("consistency_term")
def consistency_term(margin: float = 0.0, feature_weight: float = 0.1, distance: str = "squared") -> Regularizer:
    """WGAN-CT (Wei et al. 2018): two dropout passes over the real batch must agree."""
    if distance not in penalties.CT_DISTANCES:
        allowed = ", ".join(penalties.CT_DISTANCES)
        raise ValueError(f"model.regularizers.distance={distance!r} is unknown; allowed: {allowed}")
    if margin < 0:
        raise ValueError(f"model.regularizers.margin={margin!r} is invalid; allowed: a float >= 0")
    return Regularizer(
        lambda critic, real, fake, draws: penalties.consistency_term(critic, real, margin, feature_weight, distance),
        per_sample_gradient=False,
        needs_dropout=True,
    )


@REGULARIZERS.register("r1")
def r1() -> Regularizer:
    """R1 (Mescheder et al. 2018, Eq. 9): E ||grad D(x)||^2 on real data. The paper's gamma / 2 is
    the weight, e.g. gamma = 10 -> weight 5."""
    return Regularizer(lambda critic, real, fake, draws: penalties.r1_penalty(critic, real))


@REGULARIZERS.register("r2")
def r2() -> Regularizer:
    """R2 (Mescheder et al. 2018, Eq. 10): E ||grad D(G(z))||^2 on the fakes; weight gamma / 2."""
    return Regularizer(lambda critic, real, fake, draws: penalties.r1_penalty(critic, fake))


@REGULARIZERS.register("auxiliary_classifier")
def auxiliary_classifier() -> Regularizer:
    """AC-GAN's class term for the critic (Odena et al. 2017, Eq. 3): the classifier head's cross-entropy
    on the real batch and on the fakes generated for the same labels (weight 1: the paper's L_S + L_C)."""

    def fn(critic: nn.Module, real: Tensor, fake: Tensor, draws: Draws) -> Tensor:
        real_logits, fake_logits = (
            critic.class_logits(critic.features(real)),
            critic.class_logits(critic.features(fake)),
        )
        return losses.auxiliary_class_loss(real_logits, critic.labels) + losses.auxiliary_class_loss(
            fake_logits, critic.labels
        )

    return Regularizer(fn, per_sample_gradient=False, reads_class_logits=True)


# ----------------------------------------------------------------------------------- constraints
@CONSTRAINTS.register("none")
def no_constraint() -> Constraint:
    return Constraint()


@CONSTRAINTS.register("clip")
def clip(c: float = 0.01) -> Constraint:
    """WGAN weight clipping (Arjovsky et al. 2017, Algorithm 1): w in [-c, c] from the start."""
    if c <= 0:
        raise ValueError(f"model.constraint.c={c!r} is invalid; allowed: a float > 0")
    return Constraint(project=partial(clip_weights, c=c))


@CONSTRAINTS.register("spectral_norm")
def spectral_norm(n_power_iterations: int = 1) -> Constraint:
    """SNGAN (Miyato et al. 2018): every critic weight layer divided by its spectral norm."""
    if n_power_iterations < 1:
        raise ValueError(f"model.constraint.n_power_iterations={n_power_iterations!r} is invalid; allowed: >= 1")
    return Constraint(wrap=partial(apply_spectral_norm, n_power_iterations=n_power_iterations))


# ------------------------------------------------------------------------------- generator terms
@GENERATOR_TERMS.register("feature_matching")
def feature_matching() -> GeneratorTerm:
    """Salimans et al. 2016, Sec. 3.1 (with `generator_adversarial_weight: 0`, their objective)."""
    return GeneratorTerm(
        lambda critic, fake, real, codes: losses.feature_matching_loss(critic.features(real), critic.features(fake))
    )


@GENERATOR_TERMS.register("pulling_away")
def pulling_away() -> GeneratorTerm:
    """EBGAN's pulling-away term on the autoencoder's codes of the fakes (Zhao et al. 2017, Sec. 2.4)."""
    return GeneratorTerm(lambda critic, fake, real, codes: losses.pulling_away_term(codes), "autoencoder", True)


@GENERATOR_TERMS.register("auxiliary_classifier")
def auxiliary_classifier_generator() -> GeneratorTerm:
    """AC-GAN's class term for the generator (Odena et al. 2017, Eq. 3): the critic's classifier must
    recognise each fake as the class it was generated for (weight 1: the paper's L_C - L_S)."""
    return GeneratorTerm(
        lambda critic, fake, real, codes: losses.auxiliary_class_loss(
            critic.class_logits(critic.features(fake)), critic.labels
        ),
        reads_class_logits=True,
    )


# ------------------------------------------------------------------------------------- resolution
@dataclass(frozen=True)
class Weighted:
    """A regulariser or generator term with its weight and interval (in critic steps)."""

    name: str
    term: Any
    weight: float
    every: int = 1


@dataclass(frozen=True)
class Objective:
    loss: AdversarialLoss
    regularizers: tuple[Weighted, ...] = ()
    constraint: Constraint = field(default_factory=Constraint)
    generator_terms: tuple[Weighted, ...] = ()

    @property
    def eager(self) -> tuple[Weighted, ...]:
        return tuple(r for r in self.regularizers if r.every == 1)

    @property
    def lazy_interval(self) -> int:
        """The interval of the lazy regularisers (1: none is lazy)."""
        return max((r.every for r in self.regularizers), default=1)

    def lazy_due(self, critic_step: int) -> tuple[Weighted, ...]:
        """The lazy regularisers that run after critic step `critic_step` (counted from 1)."""
        return tuple(r for r in self.regularizers if r.every > 1 and critic_step % r.every == 0)


def _weighted(registry: Registry[Any], spec: Spec, key: str) -> Weighted:
    options = {"name": spec} if isinstance(spec, str) else dict(spec)
    weight, every = options.get("weight", 1.0), options.get("every", 1)
    name, term = registry.build(options, key, reserved=("weight", "every"))
    if not isinstance(weight, (int, float)) or weight < 0:
        raise ValueError(f"{key}.weight={weight!r} is invalid for {name}; allowed: a float >= 0")
    if not isinstance(every, int) or every < 1:
        raise ValueError(f"{key}.every={every!r} is invalid for {name}; allowed: an integer >= 1")
    return Weighted(name, term, float(weight), every)


def resolve_objective(
    loss: Spec,
    regularizers: Sequence[Spec] | None,
    constraint: Spec,
    generator_terms: Sequence[Spec] | None,
    critic: Mapping[str, Any],
) -> Objective:
    """Build the objective and refuse combinations that cannot work, naming both settings."""
    loss_name, adversarial = LOSSES.build(loss)
    regs = tuple(_weighted(REGULARIZERS, spec, "model.regularizers") for spec in regularizers or ())
    gens = tuple(_weighted(GENERATOR_TERMS, spec, "model.generator_terms") for spec in generator_terms or ())
    _, chosen = CONSTRAINTS.build(constraint)
    arch = critic.get("arch")
    needs = [("model.loss", loss_name, adversarial.critic_arch)]
    needs += [("model.generator_terms", g.name, g.term.critic_arch) for g in gens]
    for key, name, wanted in needs:
        if wanted is not None and arch != wanted:
            raise ValueError(
                f"{key}={name} is invalid with model.critic.arch={arch!r}; allowed: model.critic.arch={wanted}"
            )
    for reg in regs:
        if reg.term.per_sample_gradient and critic.get("norm") == "batch":
            raise ValueError(
                f"model.regularizers={reg.name} is invalid with model.critic.norm='batch' (BatchNorm couples the "
                "samples a per-sample gradient penalty needs apart; Gulrajani et al. 2017, Sec. 4); allowed: "
                "model.critic.norm=none or layer"
            )
        if reg.term.per_sample_gradient and critic.get("minibatch_kernels", 0):
            raise ValueError(
                f"model.regularizers={reg.name} is invalid with model.critic.minibatch_kernels="
                f"{critic['minibatch_kernels']} (a score that reads the whole batch has no per-sample gradient, "
                "as under BatchNorm; Gulrajani et al. 2017, Sec. 4); allowed: model.critic.minibatch_kernels=0"
            )
        dropout = critic.get("dropout", 0.0)
        if reg.term.needs_dropout and max(dropout if isinstance(dropout, (list, tuple)) else [dropout]) <= 0:
            raise ValueError(
                f"model.critic.dropout={dropout!r} is invalid with model.regularizers={reg.name}; allowed: a float > 0 "
                "(the consistency term compares two dropout passes)"
            )
    intervals = sorted({r.every for r in regs if r.every > 1})
    if len(intervals) > 1:
        raise ValueError(
            f"model.regularizers every={intervals} is invalid; allowed: one interval for all lazy regularisers "
            "(they share one critic phase and its optimiser settings)"
        )
    return Objective(adversarial, regs, chosen, gens)
