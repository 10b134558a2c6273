"""Process-wide settings that make CPU training as fast as it should be.

**NVML.** `import lightning` sets `PYTORCH_NVML_BASED_CUDA_CHECK=1`, so that asking whether a GPU
exists cannot poison `fork` (it asks NVML instead of initialising CUDA). When no GPU exists, torch
never caches that answer: every `torch.cuda.is_available()` loads NVML again (a `dlopen`), and
`torch.optim.Adam` asks on every `step()` (its graph-capture health check). On a CPU with the
default Linux wheel that is ~0.4 ms per optimiser step, about 10% of a 2D-toy generator iteration
(`gan-lab speed --workloads toy_bench`). With no GPU there is nothing for `fork` to poison, so the
plain check (answered once by the CUDA runtime, then cheap) is restored.

**Subnormal floats.** Adam's moment estimates of nearly dead ReLU units decay below 1.2e-38 (30% of
the optimiser state of a trained 2D-toy WGAN-GP), and x86 CPUs compute on such subnormal numbers
through slow microcode: 7% of a 2D-toy run's time. The commands flush them to zero, as TensorFlow's
thread pools do; the trained models are unchanged at the precision anything reports (a 20,000
iteration grid25 run scored identical metrics both ways). Only the `gan-lab` commands do this, not
`import gan_modules`: a library must not change its caller's floating-point mode.
"""

from __future__ import annotations

import os

import lightning  # noqa: F401  (sets the variable first, so the order of imports does not matter)
import torch

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def drop_nvml_check_without_gpu() -> bool:
    """Unset `NVML_CHECK` when torch is a CUDA build and no GPU is visible; True if it did."""
    if os.environ.get(NVML_CHECK) != "1" or not torch.backends.cuda.is_built() or torch.cuda.is_available():
        return False
    del os.environ[NVML_CHECK]
    return True


def flush_subnormal_floats() -> bool:
    """Flush subnormal floats to zero on CPU; True where supported (x86 with SSE3, AArch64).

    The mode belongs to a thread and is inherited by threads it starts later, so this runs first
    thing in a command, before torch starts its intra-op worker threads.
    """
    return torch.set_flush_denormal(True)
