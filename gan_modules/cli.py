"""`gan-lab`: LightningCLI's fit/validate/test plus the project's own subcommands.

Extra subcommands live in `gan_modules/commands/<name>.py`, each with `NAME`, `HELP` and
`main(argv) -> int`; they are discovered, so adding one touches no other file.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from lightning.pytorch.cli import LightningCLI

from datamodules import GANDataModule
from gan_modules.callbacks import GeneratorProgressBar, ImageGrid, RunCheckpoint
from gan_modules.engine import AdversarialModule

LIGHTNING_COMMANDS = ("fit", "validate", "test")


class GanLabCLI(LightningCLI):
    """LightningCLI with the data shape linked into the model and run-local outputs."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.link_arguments("data.data_shape", "model.init_args.data_shape", apply_on="instantiate")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.add_lightning_class_args(ImageGrid, "image_grid")
        parser.set_defaults({"trainer.default_root_dir": "runs", "trainer.logger": False})

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        root = Path(config["trainer"]["default_root_dir"])
        loggers = config["trainer"].get("logger")
        for spec in loggers if isinstance(loggers, list) else [loggers]:
            init = getattr(spec, "init_args", None)
            if init is not None and init.get("save_dir") is not None and not Path(init["save_dir"]).is_absolute():
                init["save_dir"] = str(root / init["save_dir"])  # every output of a run lives under its root
        if self.subcommand == "fit" and config.get("ckpt_path") is None:
            last = root / "checkpoints" / "last.ckpt"
            if last.is_file():
                print(f"gan-lab: resuming from {last} (use another --trainer.default_root_dir for a fresh run)")
                config["ckpt_path"] = str(last)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
        if config.get("enable_progress_bar") is not False:  # count generator iterations, not batches
            callbacks = [*callbacks, GeneratorProgressBar()]
        return super()._instantiate_trainer(config, callbacks)

    def after_fit(self) -> None:
        root = Path(self.trainer.default_root_dir)
        ckpts = root / "checkpoints"
        print(f"gan-lab: done after {self.trainer.global_step} generator iterations")
        print(f"gan-lab:   checkpoints -> {ckpts}")
        print(f"gan-lab:   samples     -> {root / 'samples' / 'latest.png'}")
        for logger in self.trainer.loggers:
            print(f"gan-lab:   {type(logger).__name__:<12}-> {logger.log_dir or logger.save_dir}")


def _commands() -> dict[str, ModuleType]:
    from gan_modules import commands

    found = {}
    for info in pkgutil.iter_modules(commands.__path__):
        module = importlib.import_module(f"gan_modules.commands.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "main"):
            found[module.NAME] = module
    return found


def run_lightning(args: list[str]) -> GanLabCLI:
    return GanLabCLI(
        AdversarialModule,
        GANDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"description": "gan-lab: train and compare GANs (fit/validate/test via LightningCLI)"},
        auto_configure_optimizers=False,
    )


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    extra = _commands()
    if args and args[0] in extra:
        return int(extra[args[0]].main(args[1:]) or 0)
    if not args or args[0] in ("-h", "--help"):
        print("usage: gan-lab {fit,validate,test," + ",".join(sorted(extra)) + "} ...\n")
        print("  fit/validate/test  train or evaluate through LightningCLI (see gan-lab fit --help)")
        for name, module in sorted(extra.items()):
            print(f"  {name:<18} {module.HELP}")
        return 0
    try:
        run_lightning(args)
    except ValueError as err:  # config validation: one line naming the key, value and what is allowed
        print(f"gan-lab: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
