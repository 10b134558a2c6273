"""The lecture experiments at their small size: each claim checked against an independent reference
(analytic values, POT's exact EMD, exact spectral norms, a numpy re-count of the mode protocol)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from datamodules.toy2d import Toy2DDataModule
from gan_modules import cli
from gan_modules.lecture import EXPERIMENTS, get_experiment
from gan_modules.lecture.clipping_vs_gp import CLIP
from gan_modules.lecture.ebgan_pretrain import SIZES as EBGAN_SIZES
from gan_modules.lecture.js_vs_emd import GP_WEIGHT
from gan_modules.lecture.mode_collapse import SIZES as MODE_SIZES
from gan_modules.metrics.toy import mode_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.xdist_group("lecture")  # one worker builds the module fixtures, once


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("lecture")


@pytest.fixture(scope="module")
def results(out_dir) -> dict:
    """Each experiment run once at the small size (lazily, on first use)."""

    class Lazy(dict):
        def __missing__(self, name: str) -> dict:
            self[name] = get_experiment(name)(size="small", out_dir=out_dir, seed=0)
            return self[name]

    return Lazy()


def assert_png(path: str) -> None:
    with open(path, "rb") as f:
        head = f.read(8)
    assert head == PNG_MAGIC, f"{path} is not a PNG"


def test_js_stays_at_log2_while_critic_tracks_exact_emd(results) -> None:
    r = results["js-vs-emd"]
    theta = np.array(r["theta"])
    emd, w_est = np.array(r["exact_emd"]), np.array(r["w_estimate"])
    # disjoint supports: JS = log 2 exactly (analytic), whatever the separation
    assert np.allclose(r["js_estimate"], math.log(2), atol=0.02), r["js_estimate"]
    # the reference itself: W between a segment and its shift by theta is theta (analytic)
    assert np.allclose(emd, theta, atol=0.05), emd
    # the critic's estimate follows the exact EMD, overshooting by the soft penalty's theta / (2 lambda) ...
    assert np.all(np.abs(w_est - emd) / emd < 0.2), (w_est, emd)
    assert np.corrcoef(w_est, emd)[0, 1] > 0.99
    # ... and lands on the analytic optimum of the penalised objective, theta * (1 + theta / (2 lambda))
    assert np.allclose(w_est, theta * (1 + theta / (2 * GP_WEIGHT)), rtol=0.05), w_est
    assert np.all(np.diff(w_est) < 0), "estimates must shrink as the supports approach"
    assert_png(r["figure"])


def test_sigmoid_discriminator_gradient_vanishes_lsgan_and_wgan_do_not(results) -> None:
    r = results["vanishing-gradient"]
    final, initial = r["final"], r["initial"]
    minimax = final["minimax (sigmoid D)"]
    assert r["sigmoid_D_at_fakes"] < 1e-3, "the sigmoid discriminator must be well trained"
    assert minimax < 1e-2 * initial["minimax (sigmoid D)"], "minimax gradient must decay as D trains"
    for other in ("least squares (LSGAN D)", "Wasserstein (WGAN-GP critic)", "non-saturating (sigmoid D)"):
        assert minimax < 1e-2 * final[other], (other, minimax, final[other])
    # WGAN-GP: the per-sample gradient norm is the critic's gradient norm, held near 1 by the penalty
    assert 0.7 < final["Wasserstein (WGAN-GP critic)"] < 1.5
    assert len(r["steps"]) == len(r["curves"]["minimax (sigmoid D)"])
    assert_png(r["figure"])


def test_clipping_piles_weights_at_the_bounds_gradient_penalty_does_not(results) -> None:
    r = results["clipping-vs-gp"]
    assert max(abs(w) for w in r["clip_weights"]) <= CLIP + 1e-7  # clipping's definition
    assert r["clip_at_bound"] > 0.3, r
    assert r["clip_at_bound"] > 10 * r["clip_at_bound_init"], "the pile-up must come from training"
    assert r["gp_at_bound"] < 0.02, r
    assert r["gp_abs_max"] > CLIP, "the penalised critic's weights are not confined to the box"
    assert_png(r["figure"])


def test_gradient_penalty_holds_only_between_data_and_fakes_spectral_norm_everywhere(results) -> None:
    r = results["where-lipschitz"]
    gp, sn = r["gp"], r["sn"]
    assert gp["interp_off_by_25pct"] < 0.1, gp
    assert gp["elsewhere_off_by_25pct"] > 0.2, gp
    assert gp["elsewhere_off_by_25pct"] > 3 * gp["interp_off_by_25pct"]
    # spectral norm: the product of exact layer norms (torch.linalg, not power iteration) certifies
    # ||grad f|| <= bound everywhere, and the bound is ~1
    assert sn["certificate"] < 1.05, sn
    assert sn["plane_max"] <= sn["certificate"] * (1 + 1e-4), sn
    assert sn["plane_max"] <= 1.05
    assert_png(r["figure"])


def test_pretrained_autoencoder_separates_data_from_noise(results) -> None:
    r = results["ebgan-pretrain"]
    assert r["pretrain_steps_done"] == EBGAN_SIZES["small"]["pretrain_steps"]
    assert r["generator_steps"] == 0, "no adversarial step may have been taken"
    assert 0.5 < r["ratio_before"] < 2, "untrained: noise and data have comparable energy"
    assert r["ratio_after"] > 20, r
    assert r["auc_after"] > 0.95, r
    assert_png(r["figure"])


def test_mode_collapse_table_is_the_protocol_applied_to_the_trained_generators(results) -> None:
    r = results["mode-collapse"]
    small = MODE_SIZES["small"]
    assert set(r["table"]) == set(small["datasets"])
    for dataset, rows in r["table"].items():
        dm = Toy2DDataModule(dataset)
        modes, std = dm.modes, dm.mode_std
        assert set(rows) == {*small["variants"], "real"}
        for variant in small["variants"]:
            module = r["modules"][f"{dataset}/{variant}"]
            assert module.trainer.global_step == small["max_steps"]
            m = rows[variant]
            assert 0 <= m["modes"] <= len(modes) and 0 <= m["hq_pct"] <= 100
            assert m["reverse_kl"] >= 0
            samples = module.sample(r["num_samples"], seed=r["sample_seed"])
            assert mode_metrics(samples, modes, std) == m
            # an independent numpy count of the protocol: nearest mode, within 3 std
            d = np.linalg.norm(samples.numpy()[:, None, :] - modes.numpy()[None], axis=2)
            good = d.min(1) <= 3 * std
            assert m["hq_pct"] == pytest.approx(100 * good.mean())
            assert m["modes"] == len(np.unique(d.argmin(1)[good]))
        # real data: every mode covered, ~98.9% within 3 std (2D Gaussian: 1 - exp(-4.5)), uniform histogram
        assert rows["real"]["modes"] == len(modes)
        assert rows["real"]["hq_pct"] == pytest.approx(100 * (1 - math.exp(-4.5)), abs=2.0)
        assert rows["real"]["reverse_kl"] < 0.05
    assert_png(r["figure"])


def test_cli_runs_an_experiment_and_writes_its_figure(tmp_path, capsys) -> None:
    assert cli.main(["lecture", "ebgan-pretrain", "--size", "small", "--out", str(tmp_path), "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "E[energy] real" in out and "done in" in out
    assert_png(str(tmp_path / "ebgan-pretrain.png"))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["lecture", "no-such-claim"], "allowed: " + ", ".join(EXPERIMENTS)),
        (["lecture", "js-vs-emd", "--size", "huge"], "size='huge' is invalid; allowed: small, full"),
    ],
)
def test_cli_bad_input_is_one_line_error(argv, needle, tmp_path, capsys) -> None:
    assert cli.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err
    assert not any(tmp_path.iterdir()), "nothing may run on bad input"


def test_run_rejects_unknown_size_and_restores_thread_count() -> None:
    before = torch.get_num_threads()
    with pytest.raises(ValueError, match="size='medium' is invalid"):
        get_experiment("where-lipschitz")(size="medium")
    assert torch.get_num_threads() == before
