"""Net options against hand computations and the papers' tables: critic pooling (and what it does to
WGAN-CT's term), the reference initialisations, SNGAN's standard CNN and EBGAN's energy."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gan_modules import penalties
from gan_modules.constraints import apply_spectral_norm
from gan_modules.nets import build_critic, build_generator

CIFAR = (3, 32, 32)
CT_CRITIC = {"arch": "resnet", "width": 8, "dropout": [0.2, 0.5, 0.5]}  # CT_gan_cifar_resnet.py's dropout


def _ct_by_hand(critic: nn.Module, x: torch.Tensor, seed: int) -> torch.Tensor:
    """CT_gan_cifar_resnet.py lines 179 and 288-291 (LAMBDA_2 aside, M = 0): D_ = the 8x8 ReLU map
    averaged over its 64 positions, CT = (D(x') - D(x''))^2 + 0.1 * mean_k (D_(x')_k - D_(x'')_k)^2."""
    torch.manual_seed(seed)  # the same two dropout masks as the term's two passes
    maps = [torch.relu(critic.blocks(x)) for _ in range(2)]
    assert maps[0].shape[-2:] == (8, 8)
    f1, f2 = (m.sum(dim=(2, 3)) / 64 for m in maps)
    w, b = critic.head.weight[0], critic.head.bias[0]
    s1, s2 = f1 @ w + b, f2 @ w + b
    width = f1.shape[1]
    return ((s1 - s2) ** 2 + 0.1 * ((f1 - f2) ** 2).sum(1) / width).mean()


def test_ct_term_on_a_mean_pooled_resnet_critic_matches_the_reference_code_by_hand():
    torch.manual_seed(0)
    critic = build_critic({**CT_CRITIC, "pooling": "mean"}, CIFAR).double()
    x = torch.randn(4, *CIFAR, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.manual_seed(7)
    got = penalties.consistency_term(critic, x)
    assert got.item() == pytest.approx(_ct_by_hand(critic, x, 7).item(), rel=1e-10)
    assert got.item() > 0


def test_sum_pooling_makes_the_ct_feature_term_4096_times_larger():
    torch.manual_seed(0)
    mean = build_critic({**CT_CRITIC, "pooling": "mean"}, CIFAR).double()
    summed = build_critic({**CT_CRITIC, "pooling": "sum"}, CIFAR).double()
    summed.load_state_dict(mean.state_dict())
    for critic in (mean, summed):  # equal scores: only the second-to-last-layer part remains
        nn.init.zeros_(critic.head.weight)
    x = torch.randn(4, *CIFAR, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    terms = []
    for critic in (mean, summed):
        torch.manual_seed(7)
        terms.append(penalties.consistency_term(critic, x).item())
    assert terms[1] / terms[0] == pytest.approx(64**2, rel=1e-9)  # (8 x 8 positions)^2


def test_unknown_pooling_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"^model.critic.pooling='max' is unknown; allowed: sum, mean$"):
        build_critic({"arch": "resnet", "width": 8, "pooling": "max"}, CIFAR)


# --- initialisation -----------------------------------------------------------------------------------
def _weights(net: nn.Module, kinds: tuple[type[nn.Module], ...]) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, kinds)]


def test_dcgan_init_is_normal_002_with_batchnorm_gamma_normal_1_002():
    torch.manual_seed(0)
    gen = build_generator({"arch": "dcgan", "width": 64, "init": "dcgan"}, 100, CIFAR)
    critic = build_critic({"arch": "dcgan", "width": 64, "norm": "batch", "init": "dcgan"}, CIFAR)
    for net in (gen, critic):
        layers = _weights(net, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))
        w = torch.cat([m.weight.flatten() for m in layers])
        assert w.mean().item() == pytest.approx(0.0, abs=2e-4)
        assert w.std().item() == pytest.approx(0.02, rel=0.01)  # > 10^6 weights
        assert all(float(m.bias.abs().max()) == 0.0 for m in layers)
        norms = _weights(net, (nn.BatchNorm1d, nn.BatchNorm2d))
        gamma = torch.cat([m.weight for m in norms])
        assert gamma.mean().item() == pytest.approx(1.0, abs=3e-3)
        assert gamma.std().item() == pytest.approx(0.02, rel=0.15)  # ~ 500 gammas
        assert all(float(m.bias.abs().max()) == 0.0 for m in norms)


def test_glorot_init_follows_sngans_chainer_code():
    """Glorot-uniform bound gain * sqrt(6 / (fan_in + fan_out)), fan = channels * k * k: gain sqrt(2) on
    the residual 3x3 convs, 1 on the 1x1 shortcuts and the linear layers (resblocks.py, resnet_32.py)."""
    torch.manual_seed(0)
    width = 32
    critic = build_critic({"arch": "resnet", "width": width, "init": "glorot"}, CIFAR)
    gen = build_generator({"arch": "resnet", "width": width, "init": "glorot"}, 128, CIFAR)
    cases = [
        (critic.blocks[1].conv1.weight, math.sqrt(2) * math.sqrt(6 / (width * 9 + width * 9))),
        (critic.blocks[0].conv1.weight, math.sqrt(2) * math.sqrt(6 / (3 * 9 + width * 9))),
        (critic.blocks[0].skip.weight, math.sqrt(6 / (3 + width))),
        (critic.head.weight, math.sqrt(6 / (width + 1))),
        (gen.blocks[0].conv2.weight, math.sqrt(2) * math.sqrt(6 / (width * 9 + width * 9))),
        (gen.blocks[0].skip.weight, math.sqrt(6 / (width + width))),
        (gen.linear.weight, math.sqrt(6 / (128 + width * 16))),
        (gen.out[2].weight, math.sqrt(6 / (width * 9 + 3 * 9))),
    ]
    for w, bound in cases:
        assert 0.75 * bound < float(w.abs().max()) <= bound
        if w.numel() >= 1000:
            assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)  # U[-a, a]: std a / sqrt(3)
    assert float(critic.blocks[1].conv1.bias.abs().max()) == 0.0


def test_init_comes_before_spectral_normalisation():
    torch.manual_seed(0)
    # as the engine builds an SNGAN critic: the net with its init, then the spectral_norm constraint
    critic = apply_spectral_norm(build_critic({"arch": "resnet", "width": 32, "init": "glorot"}, CIFAR))
    original = critic.blocks[1].conv1.parametrizations.weight.original
    bound = math.sqrt(2) * math.sqrt(6 / (32 * 9 * 2))
    assert bound * 0.9 < float(original.abs().max()) <= bound


def test_default_init_is_pytorchs_and_unknown_init_is_a_one_line_error():
    torch.manual_seed(3)
    plain = build_critic({"arch": "dcgan", "width": 8}, CIFAR)
    torch.manual_seed(3)
    default = build_critic({"arch": "dcgan", "width": 8, "init": "default"}, CIFAR)
    pairs = zip(plain.state_dict().values(), default.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    with pytest.raises(ValueError, match=r"^model.critic.init='xavier' is unknown; allowed: default, dcgan, glorot$"):
        build_critic({"arch": "dcgan", "width": 8, "init": "xavier"}, CIFAR)


# --- SNGAN's standard CNN (Miyato et al. 2018, Table 3) -------------------------------------------------
def _conv(k: int, c_in: int, c_out: int) -> int:
    return k * k * c_in * c_out + c_out


def test_standard_cnn_critic_matches_table_3():
    critic = build_critic({"arch": "standard_cnn"}, CIFAR)
    table = [(3, 3, 64), (4, 64, 64), (3, 64, 128), (4, 128, 128), (3, 128, 256), (4, 256, 256), (3, 256, 512)]
    expected = sum(_conv(k, a, b) for k, a, b in table) + (4 * 4 * 512 + 1)  # dense -> 1 on 4x4x512
    assert sum(p.numel() for p in critic.parameters()) == expected == 2_935_873
    shapes = []
    for m in critic.body:
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
    assert critic(torch.zeros(2, *CIFAR)).shape == (2,)
    sizes = [32, 16, 16, 8, 8, 4, 4]
    assert shapes == [(c, s, s) for (_, _, c), s in zip(table, sizes, strict=True)]
    slopes = {m.negative_slope for m in critic.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.1}  # Table 3 caption


def test_standard_cnn_generator_matches_table_3():
    gen = build_generator({"arch": "standard_cnn"}, 128, CIFAR)
    expected = (
        (128 * 4 * 4 * 512 + 4 * 4 * 512)  # dense -> 4x4x512
        + 2 * 4 * 4 * 512  # its batch norm (per unit, as in chainer-gan-lib's DCGANGenerator bn0)
        + sum(_conv(4, a, b) + 2 * b for a, b in [(512, 256), (256, 128), (128, 64)])  # deconv + BN
        + _conv(3, 64, 3)
    )
    assert sum(p.numel() for p in gen.parameters()) == expected == 3_828_739
    assert gen(torch.zeros(3, 128)).shape == (3, *CIFAR)
    stl = build_generator({"arch": "standard_cnn"}, 128, (3, 48, 48))  # M_g = 6 for STL-10
    assert stl(torch.zeros(2, 128)).shape == (2, 3, 48, 48)
    assert build_critic({"arch": "standard_cnn"}, (3, 48, 48))(torch.zeros(2, 3, 48, 48)).shape == (2,)
    with pytest.raises(ValueError, match=r"^standard_cnn cannot handle 28x28 images; allowed sizes are multiples of 8"):
        build_generator({"arch": "standard_cnn"}, 128, (1, 28, 28))


# --- EBGAN's energy (Zhao et al. 2017, Sec. 2.3) --------------------------------------------------------
@pytest.mark.parametrize(("energy", "expected"), [("l2", [5.0, 1.0]), ("mse", [12.5, 0.5])])
def test_ebgan_energy_is_the_papers_norm_or_the_mean_square(energy, expected):
    critic = build_critic({"arch": "autoencoder", "hidden": [4], "code_dim": 2, "energy": energy}, (2,))
    nn.init.zeros_(critic.decoder[-1].weight)  # reconstruction 0: the error is x itself
    nn.init.zeros_(critic.decoder[-1].bias)
    x = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    assert critic(x).tolist() == pytest.approx(expected)  # ||x|| = 5, 1; ||x||^2 / 2 = 12.5, 0.5


def test_ebgan_image_energy_l2_is_the_norm_over_all_pixels():
    critic = build_critic({"arch": "autoencoder", "width": 4, "code_dim": 3, "energy": "l2"}, (1, 8, 8))
    nn.init.zeros_(critic.decoder[-1].weight)
    nn.init.zeros_(critic.decoder[-1].bias)
    x = torch.full((2, 1, 8, 8), 0.5)
    assert critic(x).tolist() == pytest.approx([4.0, 4.0])  # sqrt(64 * 0.25)
    with pytest.raises(ValueError, match=r"^model.critic.energy='l1' is unknown; allowed: mse, l2$"):
        build_critic({"arch": "autoencoder", "energy": "l1"}, (2,))


def test_sngan_resnet_head_has_no_bias_as_snresnet_32():
    """SNGAN's `l5 = SNLinear(ch, 1, nobias=True)`: the score is exactly w . features, one parameter
    fewer than WGAN-GP's tflib head (which has a bias)."""
    torch.manual_seed(0)
    plain = build_critic({"arch": "resnet", "width": 8}, CIFAR).double()
    nobias = build_critic({"arch": "resnet", "width": 8, "head_bias": False}, CIFAR).double()
    assert nobias.head.bias is None
    assert sum(p.numel() for p in plain.parameters()) - sum(p.numel() for p in nobias.parameters()) == 1
    x = torch.randn(3, *CIFAR, dtype=torch.float64)
    torch.testing.assert_close(nobias(x), nobias.features(x) @ nobias.head.weight[0], rtol=1e-12, atol=1e-12)


# --- the generator's spectral normalisation (SAGAN, Zhang et al. 2019, Sec. 4) ------------------------------
def _as_matrix(layer: nn.Module, w: torch.Tensor) -> torch.Tensor:
    """The matrix torch normalises: (C_out, rest); a transposed conv's weight is (C_in, C_out, k, k)."""
    return (w.transpose(0, 1) if isinstance(layer, nn.ConvTranspose2d) else w).flatten(1)


def test_generator_spectral_norm_gives_each_weight_largest_singular_value_1():
    torch.manual_seed(0)
    spec = {"arch": "dcgan", "width": 4, "spectral_norm": True}
    generator = build_generator(spec, 8, (1, 16, 16))
    for _ in range(50):  # power iterations: one per training-mode forward
        generator(torch.randn(4, 8))
    layers = [m for m in generator.modules() if isinstance(m, (nn.Linear, nn.ConvTranspose2d, nn.Conv2d))]
    assert len(layers) >= 3
    for layer in layers:
        raw = layer.parametrizations.weight.original.detach()
        used = layer.weight.detach()
        raw_sigma = torch.linalg.matrix_norm(_as_matrix(layer, raw), 2).item()
        assert abs(raw_sigma - 1) > 0.05  # the layer's own weight is not already normalised
        assert torch.linalg.matrix_norm(_as_matrix(layer, used), 2).item() == pytest.approx(1, abs=1e-3)
        torch.testing.assert_close(used, raw / raw_sigma, rtol=1e-3, atol=1e-6)


def test_generator_spectral_norm_leaves_conditional_gains_alone_and_rejects_a_non_boolean():
    generator = build_generator({"arch": "mlp", "hidden": [16], "spectral_norm": True}, 8, (1, 4, 4), num_classes=3)
    embeddings = [m for m in generator.modules() if isinstance(m, nn.Embedding)]
    linears = [m for m in generator.modules() if isinstance(m, nn.Linear)]
    assert embeddings and linears
    assert all(parametrize.is_parametrized(m, "weight") for m in linears)
    assert not any(parametrize.is_parametrized(m) for m in embeddings)
    with pytest.raises(ValueError, match=r"^model.generator.spectral_norm=1 is invalid; allowed: true, false$"):
        build_generator({"arch": "mlp", "spectral_norm": 1}, 8, (1, 4, 4))
