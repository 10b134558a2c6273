"""`gan-lab speed` compares like with like: the plain PyTorch loop it times against the engine is
checked here to produce the engine's very parameters; the command's report is checked for content."""

from __future__ import annotations

import dataclasses
import json
import statistics

import pytest
import torch

from gan_modules.bench import speed
from gan_modules.trainers import bare_trainer


@pytest.mark.parametrize(
    ("fused_adam", "g_batch_size", "iterations_per_batch"),
    [(False, None, 1), (True, None, 1), (False, 48, 1), (False, None, 3)],
)
def test_plain_loop_is_the_same_computation_as_the_engine(fused_adam, g_batch_size, iterations_per_batch):
    """Same networks, optimisers, batches, noise and n_critic: after 3 generator iterations the plain
    loop's weights equal the LightningModule's (so the timing compares the same work), also when the
    engine takes all 3 iterations in one Lightning batch."""
    w = speed.QUICK_WORKLOADS["toy"]
    dm = w.data(w.batch_size)
    dm.setup("fit")
    module = speed.wgan_gp_module(
        w, dm, fused_adam=fused_adam, g_batch_size=g_batch_size, iterations_per_batch=iterations_per_batch
    )
    plain = speed.plain_twin(module, dm)
    assert plain.opt_d.defaults["fused"] is plain.opt_g.defaults["fused"] is fused_adam
    bare_trainer(3).fit(module, dm)
    for _ in range(3):
        plain.iteration()
    engine_params = [*module.generator.parameters(), *module.critic.parameters()]
    plain_params = [*plain.generator.parameters(), *plain.critic.parameters()]
    initial = speed.wgan_gp_module(w, dm)  # the same seed rebuilds the starting weights
    initial_params = [*initial.generator.parameters(), *initial.critic.parameters()]
    moved = [(a - b).abs().max() for a, b in zip(engine_params, initial_params, strict=True)]
    assert max(moved) > 1e-4  # training did change the weights, so equality below is not vacuous
    for a, b in zip(engine_params, plain_params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_speed_command_reports_every_section(tmp_path):
    from gan_modules.commands import speed as command

    out = tmp_path / "speed.json"
    argv = ["--quick", "--reps", "2", "--iterations", "2", "--critic_steps", "2", "--metric_samples", "100"]
    assert command.main([*argv, "--workloads", "toy", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    (overhead,) = report["engine_vs_plain"]
    assert overhead["device"] == ("cuda" if torch.cuda.is_available() else "cpu")  # --device auto
    # the reported per-iteration times are the medians of the repetitions (an independent statistics call)
    assert len(overhead["engine_ms_all"]) == len(overhead["plain_ms_all"]) == 2
    assert overhead["engine_ms_per_iteration"] == pytest.approx(statistics.median(overhead["engine_ms_all"]))
    assert overhead["plain_ms_per_iteration"] == pytest.approx(statistics.median(overhead["plain_ms_all"]))
    (costs,) = report["penalty_costs"]
    assert set(costs["relative_to_wgan"]) == {"wgan", "wgan_gp", "dragan", "wgan_ct"}
    ms = costs["ms_per_critic_step"]  # the ratios are those of the reported step times (no timing asserted)
    assert costs["relative_to_wgan"] == pytest.approx({k: v / ms["wgan"] for k, v in ms.items()})
    (fakes,) = report["fake_graph_cost"]  # the saving is n_critic times the per-step difference it reports
    assert fakes["samples"] == 200 and min(fakes["no_grad_ms"], fakes["graph_ms"]) > 0
    per_step = fakes["graph_ms"] - fakes["no_grad_ms"]
    assert fakes["saved_ms_per_iteration"] == pytest.approx(fakes["n_critic"] * per_step)
    md = report["minibatch_similarity"]  # the layer's gradient is the autograd reference's, its ratio the times'
    assert md["samples"] == 20 and max(md["max_grad_difference"], md["compiled_max_grad_difference"]) < 1e-5
    assert md["speedup"] == pytest.approx(md["autograd_ms"] / md["layer_ms"])
    assert md["compiled_speedup"] == pytest.approx(md["autograd_ms"] / md["compiled_ms"])
    metric = report["metric_throughput"]
    assert metric["num_fake"] == metric["num_real"] == 100
    assert min(metric["callback_cold_s"], metric["callback_warm_s"], metric["torch_fidelity_s"]) > 0
    assert report["peak_rss_mb"] >= report["peak_rss_mb_after_training"] > 0
    if not torch.cuda.is_available():
        assert report["gpu"] == "skipped: no CUDA device"


def test_gpu_table_measures_eager_rows_first_and_hands_each_row_over_as_measured():
    """The GPU table's code path (engine, bf16 autocast, channels_last), run on CPU at a tiny size: every
    precision x layout in the documented order, each row passed to `on_row` the moment it exists (what
    `gan-lab speed` saves, so a run cut short keeps its rows), eager rows before compiled ones."""
    seen: list[dict] = []
    quick = speed.gpu_table_options("eager", quick=True)  # what `gan-lab speed --quick` passes
    assert quick == {"archs": ("dcgan32",), "compile_modes": (False,)}
    rows = speed.gpu_table("cpu", iterations=2, batch_size=2, on_row=seen.append, **quick)
    assert seen == rows
    assert [(r["precision"], r["channels_last"]) for r in rows] == [
        ("32-true", False), ("32-true", True), ("bf16-mixed", False), ("bf16-mixed", True)
    ]  # fmt: skip
    assert all("error" not in r and not r["compile"] for r in rows), rows
    # images/s counts real images: batch x n_critic (WGAN-GP's 5) per generator iteration
    for r in rows:
        assert r["images_per_s"] == pytest.approx(2 * 5 * 1000 / r["ms_per_generator_iteration"])


def test_gpu_table_options_follow_the_flag():
    """--gpu_table all: eager and compiled rows of every architecture (gpu_table's defaults); eager:
    no compiled rows; none: no table."""
    import inspect

    defaults = inspect.signature(speed.gpu_table).parameters
    assert defaults["compile_modes"].default == (False, True) and set(defaults["archs"].default) == set(speed.GPU_ARCHS)
    assert speed.gpu_table_options("all") == {}
    assert speed.gpu_table_options("eager") == {"compile_modes": (False,)}
    assert speed.gpu_table_options("none") is None
    assert speed.gpu_table_options("none", quick=True) is None


def test_speed_rejects_bad_arguments(capsys):
    from gan_modules.commands import speed as command

    with pytest.raises(SystemExit):
        command.main(["--reps", "1"])
    assert "--reps=1 is invalid; allowed: an integer >= 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        command.main(["--gpu_table", "compiled"])
    err = capsys.readouterr().err  # argparse's quoting of the choices differs between Python versions
    assert "--gpu_table: invalid choice: 'compiled' (choose from " in err
    assert all(choice in err.split("choose from ")[1] for choice in ("all", "eager", "none"))
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            command.main(["--device", "cuda"])
        assert "--device=cuda is invalid here: torch sees no CUDA device" in capsys.readouterr().err


def test_gradient_penalty_under_torch_compile_uses_the_eager_critic():
    """Compiled graphs have no double backward, so a penalty on input gradients through a compiled
    critic raises; the engine's penalty critic is the eager module under the wrapper, and a compiled
    WGAN-GP critic step gives the eager step's gradients (aot_eager: the same autograd path as
    inductor, without a C++ compiler)."""
    from gan_modules import penalties
    from gan_modules.compose import preset
    from gan_modules.engine import AdversarialModule

    def module() -> AdversarialModule:
        torch.manual_seed(0)
        return preset(
            "wgan_gp", generator={"arch": "mlp", "hidden": [8]}, critic={"arch": "mlp", "hidden": [8]}, data_shape=(2,)
        )

    real, fake, eps = torch.randn(6, 2), torch.randn(6, 2), torch.rand(6)
    eager, compiled = module(), module()
    compiled.critic = torch.compile(compiled.critic, backend="aot_eager")
    with pytest.raises(RuntimeError, match="double backward"):
        penalties.gradient_penalty(compiled.critic, real, fake, eps).backward()
    assert compiled.penalty_critic is compiled.critic._orig_mod and eager.penalty_critic is eager.critic
    for m in (eager, compiled):
        m.zero_grad()
        m.uniform = lambda n: eps  # the same interpolation points on both sides
        m.critic_loss(real, fake)[0].backward()
    for a, b in zip(eager.critic.parameters(), compiled.critic.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)


def test_a_workloads_repeat_multiplies_the_iterations_it_times(monkeypatch):
    """Tiny workloads (toy_bench: ~5 ms steps) time `repeat` times more iterations per repetition."""
    w = dataclasses.replace(speed.QUICK_WORKLOADS["toy"], repeat=3)
    ran = []
    original = speed.PlainWGANGP.iteration
    monkeypatch.setattr(speed.PlainWGANGP, "iteration", lambda self: ran.append(1) or original(self))
    row = speed.engine_vs_plain(w, reps=2, iterations=2)
    assert len(ran) == 2 * (2 + 2 * 3)  # counted where they run: 2 reps x (2 warm-up + 2 x repeat timed)
    assert row["iterations_per_rep"] == 6
    assert speed.WORKLOADS["toy_bench"].repeat > 1 and "toy_bench" in speed.CPU_DEFAULT_WORKLOADS


def test_the_iteration_clock_divides_by_iterations_not_batches():
    """With several generator iterations per Lightning batch, stamps come every k iterations."""
    clock = speed._IterationClock(warmup=2)
    clock.stamps = [(4, 10.0), (8, 10.2), (12, 10.4)]
    assert clock.seconds_per_iteration() == pytest.approx(0.4 / 8)


def test_speed_command_passes_iterations_per_batch_to_the_engine_only(tmp_path, capsys, monkeypatch):
    """The engine gets k iterations per Lightning batch; the plain loop still runs one iteration per
    call, as many as without the option."""
    from gan_modules.commands import speed as command

    built, plain_iterations = [], []
    build = speed.wgan_gp_module
    monkeypatch.setattr(speed, "wgan_gp_module", lambda *a, **kw: built.append(build(*a, **kw)) or built[-1])
    iteration = speed.PlainWGANGP.iteration
    monkeypatch.setattr(speed.PlainWGANGP, "iteration", lambda self: plain_iterations.append(1) or iteration(self))
    out = tmp_path / "speed.json"
    argv = ["--quick", "--reps", "2", "--iterations", "4", "--metric_samples", "0", "--workloads", "toy"]
    assert command.main([*argv, "--iterations_per_batch", "2", "--json", str(out), "--critic_steps", "2"]) == 0
    (row,) = json.loads(out.read_text())["engine_vs_plain"]
    assert row["iterations_per_batch"] == 2
    assert [m.real_batches_per_step for m in built] == [2 * row["n_critic"]]
    assert len(plain_iterations) == 2 * (2 + 4)  # 2 reps x (2 warm-up + 4 timed)
    assert "2 iterations per Lightning batch" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        command.main([*argv, "--iterations_per_batch", "0"])
    assert "--iterations_per_batch=0 is invalid; allowed: an integer >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        command.main([*argv, "--iterations_per_batch", "3"])
    assert "--iterations=4 is invalid with --iterations_per_batch=3; allowed: at least 6" in capsys.readouterr().err
