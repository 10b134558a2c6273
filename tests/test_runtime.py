"""`gan_modules.runtime`: with a CUDA build of torch and no GPU, Lightning's NVML-based availability
check reloads NVML on every Adam step; the package restores the plain (cached) check."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from gan_modules import runtime

NO_GPU_CUDA_BUILD = torch.backends.cuda.is_built() and not torch.cuda.is_available()


def _nvml_loads_per_adam_steps(monkeypatch: pytest.MonkeyPatch, steps: int) -> int:
    """How often `steps` Adam steps load NVML (counted on torch's own NVML probe)."""
    calls = []
    probe = torch.cuda._raw_device_count_nvml
    monkeypatch.setattr(torch.cuda, "_raw_device_count_nvml", lambda: calls.append(1) or probe())
    param = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([param])
    for _ in range(steps):
        param.grad = torch.ones(3)
        opt.step()
    return len(calls)


@pytest.mark.skipif(not NO_GPU_CUDA_BUILD, reason="needs a CUDA build of torch on a machine without a GPU")
def test_adam_stops_loading_nvml_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runtime.NVML_CHECK, "1")  # as `import lightning` leaves it
    assert _nvml_loads_per_adam_steps(monkeypatch, 5) >= 5  # the cost being removed: one load per step
    assert runtime.drop_nvml_check_without_gpu()
    assert runtime.NVML_CHECK not in os.environ
    assert _nvml_loads_per_adam_steps(monkeypatch, 5) == 0
    assert not torch.cuda.is_available()  # the answer is unchanged


def test_a_visible_gpu_keeps_the_fork_safe_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runtime.NVML_CHECK, "1")
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not runtime.drop_nvml_check_without_gpu()
    assert os.environ[runtime.NVML_CHECK] == "1"


def test_importing_the_package_applies_it() -> None:
    """A fresh interpreter: Lightning sets the variable, importing gan_modules drops it iff no GPU."""
    code = (
        "import os, lightning; before = os.environ.get('PYTORCH_NVML_BASED_CUDA_CHECK'); "
        "import gan_modules, torch; "
        "print(before, os.environ.get('PYTORCH_NVML_BASED_CUDA_CHECK'), torch.cuda.is_available())"
    )
    env = {k: v for k, v in os.environ.items() if k != runtime.NVML_CHECK}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    before, after, gpu = out.stdout.split()
    assert before == "1"
    assert after == ("1" if gpu == "True" or not torch.backends.cuda.is_built() else "None")


def _nonzero_after_multiply(prelude: str) -> tuple[int, int]:
    """In a fresh 2-thread interpreter: `prelude`, then how many of 4M subnormal floats survive `x * 1`
    (the multiply runs on both intra-op threads), and the element count."""
    code = (
        f"import torch; {prelude}; x = torch.full((4_000_000,), 1e-40); print(int((x * 1).count_nonzero()), x.numel())"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    survived, total = out.stdout.split()[-2:]
    return int(survived), int(total)


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="the CPU cannot flush subnormal floats")
def test_commands_flush_subnormal_floats_on_every_thread_but_the_import_does_not() -> None:
    survived, total = _nonzero_after_multiply("import gan_modules.cli")
    assert survived == total  # importing the package leaves the caller's floating-point mode alone
    assert _nonzero_after_multiply("from gan_modules.cli import main; main(['--help'])") == (0, total)
