"""Every loss against values computed by hand (plain `math`) on hand-made critic outputs, and the
f-GAN table against Fenchel duality and closed-form divergences between 1D Gaussians."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, stats

from gan_modules import losses
from gan_modules.losses import DIVERGENCES

T = torch.tensor


def sigmoid(s: float) -> float:
    return 1.0 / (1.0 + math.exp(-s))


# ----------------------------------------------------------------------------------- original GAN
def test_minimax_critic_loss_is_binary_cross_entropy():
    real, fake = [2.0, -1.0], [0.5, -3.0]
    expected = -np.mean([math.log(sigmoid(s)) for s in real]) - np.mean([math.log(1 - sigmoid(s)) for s in fake])
    assert losses.minimax_critic_loss(T(real), T(fake)).item() == pytest.approx(expected, rel=1e-6)
    assert losses.minimax_critic_loss(T([0.0]), T([0.0])).item() == pytest.approx(2 * math.log(2), rel=1e-6)


def test_one_sided_label_smoothing_only_changes_the_real_target():
    real, fake = [2.0, -1.0], [0.5, -3.0]
    smoothed = np.mean([-(0.9 * math.log(sigmoid(s)) + 0.1 * math.log(1 - sigmoid(s))) for s in real])
    expected = smoothed - np.mean([math.log(1 - sigmoid(s)) for s in fake])  # fakes keep target 0
    got = losses.minimax_critic_loss(T(real), T(fake), real_label=0.9).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_saturating_and_non_saturating_generator_losses():
    fake = [1.5, -2.0, 0.0]
    assert losses.minimax_generator_loss(T(fake)).item() == pytest.approx(
        np.mean([math.log(1 - sigmoid(s)) for s in fake]), rel=1e-6
    )
    assert losses.non_saturating_generator_loss(T(fake)).item() == pytest.approx(
        -np.mean([math.log(sigmoid(s)) for s in fake]), rel=1e-6
    )


def test_saturating_loss_gives_vanishing_gradient_where_the_critic_rejects_fakes():
    """The reason for NS-GAN (Goodfellow 2014, Sec. 3): d/ds log(1 - sigmoid(s)) = -sigmoid(s) -> 0."""
    s = T([-8.0], requires_grad=True)
    (g_sat,) = torch.autograd.grad(losses.minimax_generator_loss(s), s)
    (g_ns,) = torch.autograd.grad(losses.non_saturating_generator_loss(s), s)
    assert g_sat.item() == pytest.approx(-sigmoid(-8.0), rel=1e-5)
    assert g_ns.item() == pytest.approx(-(1 - sigmoid(-8.0)), rel=1e-5)


# ------------------------------------------------------------------------------------------ LSGAN
@pytest.mark.parametrize("a, b", [(-1.0, 1.0), (0.0, 1.0)])
def test_least_squares_critic_loss(a, b):
    real, fake = [1.0, 0.5], [0.0, -1.0]
    expected = 0.5 * np.mean([(r - b) ** 2 for r in real]) + 0.5 * np.mean([(f - a) ** 2 for f in fake])
    assert losses.least_squares_critic_loss(T(real), T(fake), a, b).item() == pytest.approx(expected)
    assert losses.least_squares_generator_loss(T(fake), 1.0).item() == pytest.approx(0.5 * (1 + 4) / 2)


def test_lsgan_coding_a_minus1_b1_c0_minimises_pearson_chi2():
    """Mao et al. 2017, Sec. 3.2: with b - c = 1 and b - a = 2, 2 C(G) at the optimal critic
    D* = (b p_d + a p_g) / (p_d + p_g) equals chi^2_Pearson(p_d + p_g || 2 p_g)."""
    counts_d, counts_g = [8, 6, 4, 2], [2, 4, 6, 8]  # two distributions over 4 points, in 1/20ths
    p_d, p_g = np.array(counts_d) / 20, np.array(counts_g) / 20
    a, b, c = -1.0, 1.0, 0.0
    d_star = (b * p_d + a * p_g) / (p_d + p_g)
    # the same optimum from the critic loss itself: zero gradient at D*
    scores = torch.tensor(d_star, requires_grad=True)
    real = scores.repeat_interleave(torch.tensor(counts_d))
    fake = scores.repeat_interleave(torch.tensor(counts_g))
    (grad,) = torch.autograd.grad(losses.least_squares_critic_loss(real, fake, a, b), scores)
    assert grad.abs().max().item() < 1e-12
    two_c = 2 * (losses.least_squares_generator_loss(real, c) + losses.least_squares_generator_loss(fake, c))
    chi2 = np.sum((2 * p_g - (p_d + p_g)) ** 2 / (p_d + p_g))
    assert two_c.item() == pytest.approx(chi2, rel=1e-10)


# ------------------------------------------------------------------------------------ WGAN, hinge
def test_wasserstein_and_hinge_losses():
    real, fake = [2.0, 0.5], [-2.0, 0.5]
    assert losses.wasserstein_critic_loss(T(real), T(fake)).item() == pytest.approx(-0.75 - 1.25)
    assert losses.wasserstein_generator_loss(T(fake)).item() == pytest.approx(0.75)
    # max(0, 1 - D(x)): [0, 0.5]; max(0, 1 + D(G(z))): [0, 1.5]
    assert losses.hinge_critic_loss(T(real), T(fake)).item() == pytest.approx(0.25 + 0.75)


# ------------------------------------------------------------------------------------------ EBGAN
def test_ebgan_fakes_above_the_margin_contribute_nothing():
    e_real = T([0.2, 0.4])
    e_fake = T([3.0, 5.0], requires_grad=True)
    loss = losses.ebgan_critic_loss(e_real, e_fake, margin=2.0)
    assert loss.item() == pytest.approx(0.3)
    (grad,) = torch.autograd.grad(loss, e_fake)
    assert torch.equal(grad, torch.zeros(2))
    # one fake below the margin: [m - D]^+ = [1, 0]
    assert losses.ebgan_critic_loss(e_real, T([1.0, 3.0]), margin=2.0).item() == pytest.approx(0.3 + 0.5)
    assert losses.ebgan_generator_loss(T([1.0, 3.0])).item() == pytest.approx(2.0)


def test_pulling_away_term():
    # cos^2 between [1, 0] and [1, 1] is 1/2; two ordered pairs / (N (N - 1)) = 2 * 0.5 / 2
    assert losses.pulling_away_term(T([[1.0, 0.0], [1.0, 1.0]])).item() == pytest.approx(0.5)
    assert losses.pulling_away_term(torch.eye(4)).item() == pytest.approx(0.0)  # orthogonal codes
    same = T([[1.0, 2.0]]).repeat(5, 1) * T([[1.0], [2.0], [3.0], [0.5], [7.0]])
    assert losses.pulling_away_term(same).item() == pytest.approx(1.0)  # one direction, any lengths
    codes = torch.randn(6, 3, 2, generator=torch.Generator().manual_seed(0))  # flattened per sample
    flat = codes.flatten(1).double()
    naive = sum(
        (flat[i] @ flat[j] / (flat[i].norm() * flat[j].norm())) ** 2 for i in range(6) for j in range(6) if i != j
    ) / (6 * 5)
    assert losses.pulling_away_term(codes).item() == pytest.approx(naive.item(), rel=1e-5)


def test_pulling_away_term_refuses_a_batch_of_one():
    with pytest.raises(ValueError, match=r"^pulling_away_term needs a batch of at least 2 codes .*; got 1$"):
        losses.pulling_away_term(torch.ones(1, 3))


# ---------------------------------------------------------------------------- Loss-Sensitive GAN
def test_loss_sensitive_critic_loss_and_l1_margin():
    real, fake = T([[1.0, 2.0], [0.0, 0.0]]), T([[0.0, 0.0], [0.0, -0.5]])
    delta = losses.l1_margin(real, fake, scale=0.5)
    assert delta.tolist() == pytest.approx([0.5 * 3.0, 0.5 * 0.5])  # summed |x - G(z)|, scaled
    l_real, l_fake = T([0.2, 1.0]), T([2.0, 1.2])
    # hinge terms: max(0, 1.5 + 0.2 - 2.0) = 0, max(0, 0.25 + 1.0 - 1.2) = 0.05
    assert losses.loss_sensitive_critic_loss(l_real, l_fake, delta, real_weight=1.0).item() == pytest.approx(
        0.6 + 0.025
    )
    assert losses.loss_sensitive_critic_loss(l_real, l_fake, delta, real_weight=0.0).item() == pytest.approx(0.025)
    assert losses.loss_sensitive_generator_loss(l_fake).item() == pytest.approx(1.6)


def test_feature_matching_loss_and_its_gradient_reaches_only_the_fakes():
    f_real = T([[1.0, 2.0], [1.0, 2.0]], requires_grad=True)
    f_fake = T([[0.0, 1.0], [0.0, -1.0]], requires_grad=True)
    loss = losses.feature_matching_loss(f_real, f_fake)
    assert loss.item() == pytest.approx(1.0 + 4.0)  # ||[1, 2] - [0, 0]||^2
    loss.backward()
    assert f_real.grad is None
    assert torch.allclose(f_fake.grad, T([[-1.0, -2.0], [-1.0, -2.0]]))  # -2 (m_real - m_fake) / N


# ------------------------------------------------------------------------------------------ f-GAN
F = {  # Nowozin 2016, Table 1, written out independently of gan_modules.losses
    "kl": lambda u: u * np.log(u),
    "reverse_kl": lambda u: -np.log(u),
    "pearson": lambda u: (u - 1) ** 2,
    "squared_hellinger": lambda u: (np.sqrt(u) - 1) ** 2,
    "js": lambda u: -(u + 1) * np.log((1 + u) / 2) + u * np.log(u),
    "gan": lambda u: u * np.log(u) - (u + 1) * np.log(u + 1),
}
F_PRIME = {  # f'(u)
    "kl": lambda u: 1 + np.log(u),
    "reverse_kl": lambda u: -1 / u,
    "pearson": lambda u: 2 * (u - 1),
    "squared_hellinger": lambda u: 1 - 1 / np.sqrt(u),
    "js": lambda u: np.log(2 * u / (1 + u)),
    "gan": lambda u: np.log(u / (1 + u)),
}
CONJUGATE_GRID = {  # t inside dom f* where the supremum is attained at some u > 0
    "kl": (-3.0, 3.0),
    "reverse_kl": (-5.0, -0.2),
    "pearson": (-1.5, 3.0),
    "squared_hellinger": (-3.0, 0.9),
    "js": (-3.0, 0.6),
    "gan": (-3.0, -0.05),
}


def test_divergence_table_covers_nowozin_table_2():
    assert set(DIVERGENCES) == set(F)
    u = np.array([0.05, 0.5, 1.0, 2.0, 20.0])
    for name, div in DIVERGENCES.items():
        assert np.allclose(div.f(torch.from_numpy(u)).numpy(), F[name](u), rtol=1e-12), name
    with pytest.raises(ValueError, match=r"model.loss.divergence='tv' is unknown; allowed: kl, "):
        losses.get_divergence("tv")


@pytest.mark.parametrize("name", sorted(F_PRIME))
def test_fenchel_conjugate_is_the_supremum(name):
    """f*(t) = sup_u (u t - f(u)), maximised numerically (unimodal in log u); f(1) = 0 except for the
    GAN row, whose divergence is 2 JS - log 4 (Nowozin 2016, Table 1)."""
    div = DIVERGENCES[name]
    assert F[name](1.0) == pytest.approx(-math.log(4) if name == "gan" else 0.0, abs=1e-12)
    for t in np.linspace(*CONJUGATE_GRID[name], 9):
        res = optimize.minimize_scalar(
            lambda w, t=t: -(math.exp(w) * t - F[name](math.exp(w))),
            bounds=(-25, 25),
            method="bounded",
            options={"xatol": 1e-10},
        )
        expected = -res.fun
        got = div.conjugate(torch.tensor(t, dtype=torch.float64)).item()
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-7), (name, t)


@pytest.mark.parametrize("name", sorted(F_PRIME))
def test_output_activation_maps_into_dom_f_star_and_stable_forms_agree(name):
    div = DIVERGENCES[name]
    v = torch.linspace(-8, 8, 161, dtype=torch.float64)
    t = div.activation(v)
    upper = {"reverse_kl": 0.0, "squared_hellinger": 1.0, "js": math.log(2), "gan": 0.0}.get(name, math.inf)
    assert bool((t < upper).all())
    assert bool((torch.diff(t) > 0).all())  # g_f is increasing: a larger V means "more real"
    assert torch.allclose(div.conjugate_of_activation(v), div.conjugate(t), rtol=1e-9, atol=1e-9)
    # Fenchel-Young equality at t = f'(u): f*(f'(u)) = u f'(u) - f(u)
    for u in (0.3, 1.0, 2.5):
        tu = torch.tensor(F_PRIME[name](u), dtype=torch.float64)
        assert div.conjugate(tu).item() == pytest.approx(u * F_PRIME[name](u) - F[name](u), rel=1e-9, abs=1e-12)


P, Q = (0.0, 1.0), (0.5, 1.2)  # (mean, std) of the two 1D Gaussians


def _closed_form(name: str) -> float:
    (m1, s1), (m2, s2) = P, Q
    kl_pq = math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    kl_qp = math.log(s1 / s2) + (s2**2 + (m1 - m2) ** 2) / (2 * s1**2) - 0.5
    if name == "kl":
        return kl_pq
    if name == "reverse_kl":
        return kl_qp
    if name == "pearson":  # int p^2 / q - 1
        return s2**2 / (s1 * math.sqrt(2 * s2**2 - s1**2)) * math.exp((m1 - m2) ** 2 / (2 * s2**2 - s1**2)) - 1
    if name == "squared_hellinger":  # int (sqrt p - sqrt q)^2 = 2 - 2 * Bhattacharyya coefficient
        bc = math.sqrt(2 * s1 * s2 / (s1**2 + s2**2)) * math.exp(-((m1 - m2) ** 2) / (4 * (s1**2 + s2**2)))
        return 2 - 2 * bc
    # no closed form for JS between Gaussians: adaptive quadrature of int q f(p / q)
    p, q = stats.norm(*P), stats.norm(*Q)

    def integrand(x: float) -> float:
        return q.pdf(x) * F[name](p.pdf(x) / q.pdf(x))

    return integrate.quad(integrand, -20, 20, limit=200)[0]


def _inverse_activation(div, t: torch.Tensor) -> torch.Tensor:
    """g_f^{-1} by bisection (g_f is increasing), so the test does not reuse any closed form."""
    lo, hi = torch.full_like(t, -60.0), torch.full_like(t, 60.0)
    for _ in range(70):
        mid = (lo + hi) / 2
        below = div.activation(mid) < t
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize("name", sorted(F_PRIME))
def test_variational_bound_at_the_optimal_critic_equals_the_divergence(name):
    """Nowozin 2016, Eq. 4-6: with T*(x) = f'(p(x) / q(x)) the bound E_P[T*] - E_Q[f*(T*)] is tight."""
    div = DIVERGENCES[name]
    p, q = stats.norm(*P), stats.norm(*Q)
    quantiles = (np.arange(50_000) + 0.5) / 50_000  # stratified samples: accurate expectations

    def optimal_critic(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(F_PRIME[name](p.pdf(x) / q.pdf(x)))
        return _inverse_activation(div, t)

    v_p, v_q = optimal_critic(p.ppf(quantiles)), optimal_critic(q.ppf(quantiles))
    bound = losses.fgan_bound(v_p, v_q, div).item()
    assert bound == pytest.approx(_closed_form(name), rel=3e-3, abs=1e-4)
    # the critic's loss is minus the bound, and a perturbed critic gives a lower bound
    assert losses.fgan_critic_loss(v_p, v_q, div).item() == pytest.approx(-bound)
    assert losses.fgan_bound(v_p + 0.3, v_q + 0.3, div).item() < bound


def test_fgan_generator_losses():
    div = DIVERGENCES["gan"]
    v = T([0.5, -1.0])
    # alternative (Sec. 3.2): maximise E_Q[g_f(V)] = E log sigmoid(V), i.e. the NS-GAN loss
    assert losses.fgan_generator_loss(v, div, alternative=True).item() == pytest.approx(
        -np.mean([math.log(sigmoid(s)) for s in (0.5, -1.0)]), rel=1e-6
    )
    # saddle form: minimise -E_Q[f*(g_f(V))] = -E softplus(V) = E log(1 - sigmoid(V))
    assert losses.fgan_generator_loss(v, div, alternative=False).item() == pytest.approx(
        np.mean([math.log(1 - sigmoid(s)) for s in (0.5, -1.0)]), rel=1e-6
    )


def test_loss_pairs_validate_their_name():
    assert losses.get_loss_pair("hinge") == (losses.hinge_critic_loss, losses.wasserstein_generator_loss)
    with pytest.raises(ValueError, match=r"^model.loss='bce' is unknown; allowed: minimax, non_saturating"):
        losses.get_loss_pair("bce")
