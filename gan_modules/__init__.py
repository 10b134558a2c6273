"""gan-lab: one adversarial engine whose objective (loss, regularisers, constraint) is configuration."""

from gan_modules.engine import AdversarialModule, NonFiniteLossError
from gan_modules.runtime import drop_nvml_check_without_gpu

drop_nvml_check_without_gpu()  # every entry point (CLI, notebooks, tests) imports the package

__all__ = ["AdversarialModule", "NonFiniteLossError"]
