"""The presets are the former variant classes, as configuration.

Two fixtures hold what the variant classes of the code before the objective became configuration
(commit 57ae06c) produced, computed by that code:
- `legacy_paper_settings.json`: the resolved `--print_config` of every former
  `configs/<variant>/<dataset>.yaml`;
- `legacy_preset_weights.json`: a fingerprint (sum, sum of |w|, 16 fixed entries) of every weight
  tensor after 50 generator iterations of each variant's ring8 config (CPU, seed 0). DRAGAN's was
  computed with one correction applied to that code, the perturbation's ddof-0 std of the authors'
  notebook (`penalties.dragan_penalty`).
The paper settings since corrected against the reference code are listed in `CORRECTED`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import resolved_config

from gan_modules.cli import run_lightning
from gan_modules.compose import expand, presets

FIXTURES = Path(__file__).parent / "fixtures"
LEGACY = json.loads((FIXTURES / "legacy_paper_settings.json").read_text())
ENGINE_KEYS = [
    "generator",
    "critic",
    "z_dim",
    "z_prior",
    "n_critic",
    "g_batch_size",
    "optimizer",
    "lr_g",
    "lr_d",
    "betas",
    "lr_decay",
    "wgan_warmup",
    "ema_decay",
    "grad_clip",
    "fused_adam",
    "seed",
    "num_fixed_samples",
    "iterations_per_batch",
]


def former_objective(variant: str, old: dict) -> dict:
    """What each former variant class composed, written from its docstring and code."""
    gp = {"name": "gradient_penalty", "weight": old.get("gp_weight"), "one_sided": old.get("one_sided")}
    objective = {
        "gan": lambda: {"loss": {"name": "minimax", "real_label": old["real_label"]}},
        "ns_gan": lambda: {"loss": {"name": "non_saturating", "real_label": old["real_label"]}},
        "lsgan": lambda: {"loss": {"name": "least_squares", "a": old["a"], "b": old["b"], "c": old["c"]}},
        "wgan": lambda: {"loss": "wasserstein", "constraint": {"name": "clip", "c": old["clip"]}},
        "wgan_gp": lambda: {"loss": "wasserstein", "regularizers": [gp]},
        "wgan_ct": lambda: {
            "loss": "wasserstein",
            "regularizers": [
                gp,
                {
                    "name": "consistency_term",
                    "weight": old["ct_weight"],
                    "margin": old["ct_margin"],
                    "feature_weight": old["ct_feature_weight"],
                    "distance": old["ct_distance"],
                },
            ],
        },
        "dragan": lambda: {
            "loss": "non_saturating",
            "regularizers": [{"name": "dragan", "weight": old["penalty_weight"]}],
        },
        "sngan": lambda: {"loss": old["loss"], "constraint": "spectral_norm"},
        "ebgan": lambda: {
            "loss": {"name": "ebgan", "margin": old["margin"]},
            "generator_terms": [{"name": "pulling_away", "weight": old["pt_weight"]}],
            "critic_pretrain_steps": old["pretrain_steps"],
        },
        "loss_sensitive_gan": lambda: {
            "loss": {
                "name": "loss_sensitive",
                "real_weight": old["real_weight"],
                "delta_scale": old["delta_scale"],
                "activation": old["loss_activation"],
            }
        },
        "fgan": lambda: {
            "loss": {
                "name": "fgan",
                "divergence": old["divergence"],
                "alternative_generator_loss": old["alternative_generator_loss"],
            }
        },
    }[variant]()
    if old.get("feature_matching"):
        objective["generator_terms"] = [{"name": "feature_matching"}]
        objective["generator_adversarial_weight"] = 0.0
    return objective


def canonical(objective: dict) -> dict:
    """Names and defaults made explicit, so that `hinge` equals `{name: hinge}`."""
    from gan_modules.registry import split_spec

    def spec(s, defaults=None):
        name, options = split_spec(s, "")
        options = {k: v for k, v in options.items() if v is not None}
        return {"name": name, **(defaults or {}), **options}

    out = {
        "loss": spec(objective.get("loss", "non_saturating")),
        "constraint": spec(objective.get("constraint") or "none"),
        "regularizers": [spec(r, {"weight": 1.0, "every": 1}) for r in objective.get("regularizers") or []],
        "generator_terms": [spec(g, {"weight": 1.0, "every": 1}) for g in objective.get("generator_terms") or []],
        "generator_adversarial_weight": objective.get("generator_adversarial_weight", 1.0),
        "critic_pretrain_steps": objective.get("critic_pretrain_steps", 0),
    }
    defaults = {"minimax": {"real_label": 1.0}, "non_saturating": {"real_label": 1.0}}
    out["loss"] = {**defaults.get(out["loss"]["name"], {}), **out["loss"]}
    for reg in out["regularizers"]:
        if reg["name"] == "gradient_penalty":
            reg.setdefault("one_sided", False)
    return out


# Values set from the reference code after the fixture was made: pair -> {"model"|"data": {key: value}}.
_DCGAN_INIT = {
    "generator": {"arch": "dcgan", "width": 64, "init": "dcgan"},
    "critic": {"arch": "dcgan", "width": 64, "norm": "batch", "init": "dcgan"},
}
_TF_RESNET = {"g_batch_size": 128, "generator": {"arch": "resnet", "width": 128, "init": "glorot"}}
CORRECTED: dict[str, dict[str, dict]] = {
    # the paper settings that collapse on the 2D mixtures (configs/experiment/*/toy2d.yaml say why)
    **{f"dragan/{d}": {"model": {"penalty_weight": 0.1}} for d in ("ring8", "grid25", "swissroll")},
    **{f"loss_sensitive_gan/{d}": {"model": {"delta_scale": 0.1}} for d in ("ring8", "grid25", "swissroll")},
    **{f"{v}/cifar10": {"model": _DCGAN_INIT} for v in ("gan", "ns_gan", "lsgan", "fgan", "loss_sensitive_gan")},
    "wgan/cifar10": {"model": {**_DCGAN_INIT, "wgan_warmup": True}},
    "dragan/cifar10": {"model": {"generator": _DCGAN_INIT["generator"]}},
    # EBGAN's image energy is the paper's norm, its margin the former MSE margin 1.0 in the norm's units
    **{
        f"ebgan/{d}": {
            "model": {"critic": {"arch": "autoencoder", "width": w, "code_dim": c, "energy": "l2"}, "margin": m}
        }
        for d, w, c, m in (("digits", 32, 32, 16.0), ("mnist", 64, 64, 28.0))
    },
    "ebgan/cifar10": {
        "model": {
            "generator": _DCGAN_INIT["generator"],
            "critic": {"arch": "autoencoder", "width": 64, "code_dim": 128, "energy": "l2"},
            "margin": 55.0,
        }
    },
    "wgan_gp/cifar10": {
        "model": {**_TF_RESNET, "critic": {"arch": "resnet", "width": 128, "pooling": "mean", "init": "glorot"}},
        "data": {"dequantize": True},
    },
    "wgan_ct/cifar10": {
        "model": {
            **_TF_RESNET,
            "critic": {"arch": "resnet", "width": 128, "dropout": [0.2, 0.5, 0.5], "pooling": "mean", "init": "glorot"},
        },
        "data": {"dequantize": True},
    },
    "sngan/cifar10": {
        "model": {
            "g_batch_size": 128,
            "generator": {"arch": "resnet", "width": 256, "init": "glorot"},
            "critic": {"arch": "resnet", "width": 128, "pooling": "sum", "head_bias": False, "init": "glorot"},
        },
        "data": {"dequantize": True},
    },
    **{
        f"sngan/cifar10_setting_{s}": {
            "model": {
                "generator": {"arch": "standard_cnn", "init": "dcgan"},
                "critic": {"arch": "standard_cnn", "init": "dcgan"},
            },
            "data": {"dequantize": False},
        }
        for s in "ABCDEF"
    },
}


def composed_args(pair: str) -> list[str]:
    variant, dataset = pair.split("/")
    if dataset.startswith("cifar10_setting_"):
        table = "configs/experiment/sngan/cifar10_table1.yaml"
        return [
            "--model",
            variant,
            "--data",
            "cifar10",
            "--config",
            table,
            "--config",
            f"configs/experiment/sngan/{dataset}.yaml",
            f"--trainer.default_root_dir=runs/{pair}",
        ]
    return ["--model", variant, "--data", dataset]


@pytest.mark.slow
@pytest.mark.parametrize("pair", sorted(LEGACY))
def test_composed_config_resolves_to_the_former_paper_setting(pair, monkeypatch):
    monkeypatch.chdir(Path(__file__).parent.parent)
    old, new = json.loads(json.dumps(LEGACY[pair])), resolved_config(composed_args(pair))
    old["model"].update(CORRECTED.get(pair, {}).get("model", {}))
    if "Toy2D" not in old["data"]["class_path"]:
        # options added since, at their defaults unless corrected
        old["data"]["init_args"].setdefault("dequantize", False)
        old["data"]["init_args"].setdefault("fraction", 1.0)
    old["data"]["init_args"].update(CORRECTED.get(pair, {}).get("data", {}))
    model = new["model"]["init_args"]
    assert new["model"]["class_path"] == "gan_modules.AdversarialModule"
    assert {k: model[k] for k in ENGINE_KEYS} == {k: old["model"][k] for k in ENGINE_KEYS}
    assert model["critic"] == old["model"]["critic"]
    assert canonical(model) == canonical(former_objective(pair.split("/")[0], old["model"]))
    assert new["data"] == old["data"]
    assert {k: new["trainer"][k] for k in old["trainer"]} == old["trainer"]
    assert (new["checkpoint"]["every_n_train_steps"], new["image_grid"]) == (old["checkpoint"], old["image_grid"])


WITHOUT_FORMER_CLASS = {"acgan"}  # presets with no former variant class to compare with


def test_every_preset_has_its_former_settings_checked():
    assert set(presets()) - WITHOUT_FORMER_CLASS == {pair.split("/")[0] for pair in LEGACY}


def fingerprint(module: torch.nn.Module) -> dict:
    """The fixture's fingerprint: per floating tensor its sum, sum of |w| and 16 seeded entries."""
    out, gen = {}, torch.Generator().manual_seed(0)
    for name, tensor in module.state_dict().items():
        if tensor.is_floating_point():
            flat = tensor.detach().double().flatten()
            idx = torch.randint(0, flat.numel(), (16,), generator=gen)
            out[name] = {"sum": flat.sum().item(), "abs": flat.abs().sum().item(), "sample": flat[idx].tolist()}
    return out


GOLDEN = json.loads((FIXTURES / "legacy_preset_weights.json").read_text())
# The former ring8 values of the two presets whose toy settings were corrected (see CORRECTED).
FORMER_TOY = {
    "dragan": ["--model.init_args.regularizers=[{name: dragan, weight: 10.0}]"],
    "loss_sensitive_gan": ["--model.init_args.loss={name: loss_sensitive, real_weight: 0.0, delta_scale: 1.2}"],
}
# The former classes' parameter names, where the composition names the same tensor differently.
RENAMED: dict[str, str] = {}


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(GOLDEN))
def test_preset_trains_to_the_former_variants_weights(preset, tmp_path, monkeypatch):
    """50 generator iterations of `--model <preset> --data ring8` give the former class's weights
    (its own ring8 config, same seed) to 1e-5."""
    monkeypatch.chdir(Path(__file__).parent.parent)
    args = [
        "fit",
        "--model",
        preset,
        "--data",
        "ring8",
        "--trainer.max_steps=50",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    cli = run_lightning(expand([*args, *FORMER_TOY.get(preset, [])])[0])
    assert cli.trainer.global_step == 50
    got, want = fingerprint(cli.model), GOLDEN[preset]
    assert set(got) == {RENAMED.get(k, k) for k in want}
    for name, ref in want.items():
        new = got[RENAMED.get(name, name)]
        for key in ("sum", "abs"):
            assert new[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-5), (name, key)
        assert new["sample"] == pytest.approx(ref["sample"], rel=1e-5, abs=1e-5), name
