"""`gan-lab`: LightningCLI's fit/validate/test plus the project's own subcommands.

Extra subcommands live in `gan_modules/commands/<name>.py`, each with `NAME`, `HELP` and
`main(argv) -> int`; they are discovered, so adding one touches no other file.

What the CLI adds to LightningCLI, in the order a run meets it:
- `--model wgan_gp --data grid25`: a preset and a data set composed with their overlays
  (`gan_modules.compose`); `configs/defaults.yaml` holds the trainer and logger block of every run;
- every output under `trainer.default_root_dir`, and the same command resumes from its `last.ckpt`
  (inside a W&B sweep each agent run gets its own folder);
- Weights & Biases as the default logger (`gan_modules.loggers`), with the full resolved config;
- DDP made correct for alternating GAN updates (`make_ddp_gan_safe`);
- Ctrl-C, SIGTERM and SLURM's requeue signal acted on at a step boundary, with a checkpoint
  (`gan_modules.callbacks.interrupt`, docs/interrupts.md);
- checks that fail in one line, before any training and before any file of the run is written:
  every invalid value names its key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import os
import pkgutil
import re
import signal
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from datamodules import GANDataModule
from gan_modules.callbacks import GeneratorProgressBar, ImageGrid, RunCheckpoint
from gan_modules.callbacks.interrupt import StepBoundarySignals
from gan_modules.callbacks.metrics import GenerativeMetrics
from gan_modules.callbacks.nan_guard import NonFiniteGuard
from gan_modules.checkpoints import check_resumable, read_checkpoint
from gan_modules.compose import CONFIGS, expand, presets
from gan_modules.engine import AdversarialModule, NonFiniteLossError
from gan_modules.loggers import WandbRunLogger
from gan_modules.runtime import flush_subnormal_floats

LIGHTNING_COMMANDS = ("fit", "validate", "test")
DEFAULTS = CONFIGS / "defaults.yaml"  # the trainer and logger block of every run
SUMMARY_METRICS = (
    "fid",
    "classes_covered",
    "class_accuracy",
    "modes",
    "high_quality",
    "emd",
)  # the closing line's, when measured
LIGHTNING_CKPT_NAMES = ("best", "last", "hpc", "registry")  # `--ckpt_path` values Lightning resolves itself


def make_ddp_gan_safe(strategy: Any, model: LightningModule) -> None:
    """Make the trainer's DDP (from `ddp`, `ddp_spawn`, `ddp_fork`, a DDPStrategy, or `auto` with
    several devices) correct for GANs, before anything is launched.

    Lightning wraps the whole LightningModule in one `DistributedDataParallel`. A critic step
    leaves every generator parameter without a gradient and a generator step every critic
    parameter (they are frozen by `toggle_optimizer`), so DDP must be told to expect unused
    parameters: `find_unused_parameters=True` marks them ready at once, and neither step waits for
    the other network's gradients. (The price: each backward also all-reduces the other network's
    zero buckets.) `static_graph=True` is wrong here, the used set changes between steps.

    Gradient penalties and DDP (known pitfalls: pytorch/pytorch#47562, wrong gradients with a
    penalty; #63812, `backward(create_graph=True)` through DDP). The sound pattern, the one
    PyTorch's maintainers give in #63812, is what the penalties do: differentiate w.r.t. the
    *inputs* only, out of place (`torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)`).
    That call runs no parameter AccumulateGrad node, so DDP's reducer hooks do not fire and nothing
    is all-reduced yet; the single ordinary `backward` of (loss + lambda * penalty) then produces
    each parameter's whole gradient, first- and second-order parts together, once, and DDP
    all-reduces it once. Never call `backward(create_graph=True)` or `autograd.grad` w.r.t.
    parameters inside a step. tests/test_ddp.py checks the all-reduced critic gradients (biases
    included) and the weights after training against one process.

    `broadcast_buffers` stays on (rank 0's buffers at each step); the engine also re-broadcasts
    them after each generator iteration (`AdversarialModule._broadcast_buffers`).
    """
    if not isinstance(strategy, DDPStrategy):
        return
    # Lightning keeps these in private attributes until it wraps the model (pinned: lightning < 2.7).
    kwargs, start_method = strategy._ddp_kwargs, getattr(strategy, "_start_method", "popen")
    if kwargs.get("static_graph"):
        raise ValueError(
            "trainer.strategy.static_graph=True is invalid: critic and generator steps use different parameters; "
            "allowed: false"
        )
    if start_method == "spawn" and _has_parametrizations(model):
        raise ValueError(
            "trainer.strategy='ddp_spawn' is invalid for this model: spawn must pickle it and spectral-norm "
            "(parametrized) layers cannot be pickled; allowed: ddp, ddp_fork"
        )
    kwargs["find_unused_parameters"] = True


def resume_checkpoint(root: Path) -> Path | None:
    """The newest of `<root>/checkpoints/last.ckpt` and Lightning's SLURM preemption checkpoints
    (`<root>/hpc_ckpt_*.ckpt`, written on SIGUSR1 before a requeue), or None for a fresh run."""
    candidates = [p for p in [root / "checkpoints" / "last.ckpt", *root.glob("hpc_ckpt_*.ckpt")] if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def check_checkpoint_file(config: Any) -> None:
    """An explicit `--ckpt_path` must be a readable gan-lab checkpoint: LightningCLI loads it right after
    parsing (for its hyperparameters), and a missing, truncated or foreign file would end in a traceback."""
    ckpt_path = config.get("ckpt_path")
    if ckpt_path is not None and str(ckpt_path) not in LIGHTNING_CKPT_NAMES:
        try:
            read_checkpoint(ckpt_path, "ckpt_path")
        except FileNotFoundError as err:
            raise ValueError(str(err)) from err


def check_max_steps(subcommand: str, trainer: Any) -> None:
    """A fit of no generator iterations would report checkpoints and samples it never wrote."""
    steps = trainer.get("max_steps")
    if subcommand == "fit" and steps is not None and (steps == 0 or steps < -1):
        raise ValueError(
            f"trainer.max_steps={steps} is invalid; allowed: an integer >= 1 (generator iterations), or -1 for no limit"
        )


def check_run_settings(config: Any, trainer: Trainer, model: LightningModule) -> None:
    """What LightningCLI would only find out after the run's files exist: fp16 on a CPU, and a
    checkpoint (`--ckpt_path`, or the run's own `last.ckpt`) shaped for other networks."""
    precision = str(config["trainer"].get("precision"))
    if precision in ("16", "16-mixed") and isinstance(trainer.accelerator, CPUAccelerator):
        raise ValueError(
            f"trainer.precision={precision!r} is invalid on a CPU (Lightning would run bf16-mixed instead, about "
            "15x slower than 32-true); allowed: 32-true, or bf16-mixed to ask for it"
        )
    ckpt_path = config.get("ckpt_path")
    if ckpt_path is not None and str(ckpt_path) not in LIGHTNING_CKPT_NAMES:
        check_resumable(ckpt_path, model)  # an explicit path was found readable by `check_checkpoint_file`


def _has_parametrizations(module: LightningModule) -> bool:
    from torch.nn.utils import parametrize

    return any(parametrize.is_parametrized(m) for m in module.modules())


class SaveRunConfig(SaveConfigCallback):
    """Writes `config.yaml` to the run folder (Lightning's behaviour) and sends the same fully
    resolved config to every W&B logger, so a run's page shows exactly what produced it.

    Lightning writes it at `setup`, before the checkpoint is restored; a command that fails there
    would overwrite the config of the run it meant to resume. It is written when the loop starts."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Deferred to the start of the loop (class docstring)."""

    def _write(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().setup(trainer, pl_module, str(trainer.state.stage))

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, pl_module)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn != "fit":  # in a fit, validation (the sanity check) precedes the loop's start
            self._write(trainer, pl_module)

    on_test_start = on_validation_start

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.config.update(config, allow_val_change=True)


class GanLabCLI(LightningCLI):
    """LightningCLI with the data's shape and number of classes linked into the model, run-local outputs, auto-resume,
    W&B by default, GAN-correct DDP and one-line checks before training (module docstring)."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.link_arguments("data.data_shape", "model.init_args.data_shape", apply_on="instantiate")
        parser.link_arguments("data.num_classes", "model.init_args.data_classes", apply_on="instantiate")
        for callback in (RunCheckpoint, ImageGrid, NonFiniteGuard):
            parser.add_lightning_class_args(callback, callback.config_key)

    def parse_arguments(self, parser: Any, args: Any) -> None:
        super().parse_arguments(parser, args)
        if self.config.get("subcommand"):
            check_checkpoint_file(self.config[self.config.subcommand])

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        trainer = config["trainer"]
        sweep, sweep_run = os.environ.get("WANDB_SWEEP_ID"), os.environ.get("WANDB_RUN_ID")
        if sweep and sweep_run:  # a W&B agent reuses one command: give each of its runs its own folder
            trainer["default_root_dir"] = str(Path(trainer["default_root_dir"]) / f"sweep-{sweep}" / sweep_run)
        check_max_steps(self.subcommand, trainer)
        root = Path(trainer["default_root_dir"])
        loggers = trainer.get("logger")
        for spec in loggers if isinstance(loggers, list) else [loggers]:
            init = getattr(spec, "init_args", None)
            if init is not None and init.get("save_dir") is not None and not Path(init["save_dir"]).is_absolute():
                init["save_dir"] = str(root / init["save_dir"])  # every output of a run lives under its root
        if self.subcommand == "fit" and config.get("ckpt_path") is None:
            last = resume_checkpoint(root)
            if last is not None:
                if rank_zero_only.rank == 0:
                    print(f"gan-lab: resuming from {last} (use another --trainer.default_root_dir for a fresh run)")
                config["ckpt_path"] = str(last)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
        if config.get("enable_checkpointing") is False:  # Lightning refuses a checkpoint callback then: drop ours
            callbacks = [c for c in callbacks if not isinstance(c, RunCheckpoint)]
        callbacks = [*callbacks, StepBoundarySignals()]
        if config.get("enable_progress_bar") is not False:  # count generator iterations, not batches
            callbacks = [*callbacks, GeneratorProgressBar()]
        return super()._instantiate_trainer(config, callbacks)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        make_ddp_gan_safe(trainer.strategy, self.model)
        return trainer

    def _preflight(self) -> None:
        """Checks that need the trainer (world size) or the data on disk; all before training."""
        world = self.trainer.world_size
        batch = self.datamodule.batch_size
        if batch < world or batch % world:
            raise ValueError(
                f"data.batch_size={batch} is invalid for {world} processes (trainer.devices x trainer.num_nodes); "
                f"allowed: a multiple of {world} (it is the global batch, split evenly over the ranks)"
            )
        if isinstance(self.model, AdversarialModule):
            self.model.check_trainer(self.trainer)
            self.model.check_data(self.datamodule, world)
        check_run_settings(self.config[self.subcommand], self.trainer, self.model)
        try:
            self.datamodule.setup("fit")  # loads the data now, so a missing dataset fails here, in one line
        except FileNotFoundError as err:
            raise ValueError(str(err).splitlines()[0]) from err
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbRunLogger):
                logger.add_tags(type(self.model).__name__, getattr(self.datamodule, "name", ""))
        self.preflight_done = True

    before_fit = before_validate = before_test = _preflight

    def _run_subcommand(self, subcommand: str) -> None:
        self.preflight_done = False
        try:
            super()._run_subcommand(subcommand)
        except ValueError as err:
            err.raised_by_run = self.preflight_done  # main() reports config errors only, not failures of a run
            raise

    def after_fit(self) -> None:
        if not self.trainer.is_global_zero:
            return
        root = Path(self.trainer.default_root_dir)
        print(f"gan-lab: done after {self.trainer.global_step} generator iterations")
        print(f"gan-lab:   checkpoints  -> {root / 'checkpoints'}")
        print(f"gan-lab:   samples      -> {root / 'samples' / 'latest.png'}")
        for callback in self.trainer.callbacks:
            results = getattr(callback, "last_results", None)
            if isinstance(callback, GenerativeMetrics) and results:
                shown = ", ".join(f"{k} {v:.4g}" for k, v in results.items() if k in SUMMARY_METRICS)
                print(f"gan-lab:   metrics      -> {shown} ({callback.settings.extractor}, step {callback._last_step})")
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbRunLogger):
                where = logger.run_dir or logger.save_dir
                sync = f"  (upload: wandb sync {where})" if logger.mode == "offline" else ""
                print(f"gan-lab:   W&B {logger.mode:<8} -> {where}{sync}")
            else:
                print(f"gan-lab:   {type(logger).__name__:<12} -> {logger.log_dir or logger.save_dir}")


def _commands() -> dict[str, ModuleType]:
    from gan_modules import commands

    found = {}
    for info in pkgutil.iter_modules(commands.__path__):
        module = importlib.import_module(f"gan_modules.commands.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "main"):
            found[module.NAME] = module
    return found


def run_lightning(args: list[str]) -> GanLabCLI:
    strict = {"exit_on_error": False}  # parse errors come back as exceptions, printed in one line by main()
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    warnings.filterwarnings("ignore", message=".*AMP with fp16 is not supported on CPU")  # refused in one line
    return GanLabCLI(
        AdversarialModule,
        GANDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        save_config_callback=SaveRunConfig,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={
            "description": "gan-lab: train and compare GANs (fit/validate/test via LightningCLI)",
            **strict,
            **{command: {**strict, "default_config_files": [str(DEFAULTS)]} for command in LIGHTNING_COMMANDS},
        },
        auto_configure_optimizers=False,
    )


def one_line_parse_error(message: str) -> str:
    """jsonargparse's multi-line report -> `key.path: problem` on one line (an unknown model class
    gets the list of variant names)."""
    bad_class = re.search(r"Problem with given class_path '([^']+)'", message) or re.search(
        r"Expected a dot import path string: (\S+)", message
    )
    keys = re.findall(r'Parser key "([^"]+)"', message)
    rejected = unknown_option(message, keys)
    if rejected:
        return rejected
    if bad_class and keys[:1] == ["model"] and len(keys) == 1:
        return (
            f"model={bad_class.group(1)!r} is unknown; allowed: {', '.join(presets())} or a config file or class path"
        )
    noise = ("Problem with given class_path", "Subtypes:", "Errors:", "Given value", "Does not validate")
    lines = [re.sub(r'^Parser key "[^"]+":?', "", line.strip(" -")).strip(" :") for line in message.splitlines()]
    details = [line for line in lines if line and not line.startswith(noise) and "NoneType" not in line]
    detail = details[-1] if details else lines[0]
    return f"{'.'.join(keys)}: {detail}" if keys else detail


def unknown_option(message: str, keys: list[str]) -> str | None:
    """`--model.init_args.n_critc 5` -> that `n_critc` is not an option of the class (with the closest
    real one), rather than jsonargparse's report, which reads as if the class itself were unknown."""
    found = re.search(r"Problem with given class_path '([^']+)':\s*Option '([^']+)' is not accepted", message)
    if not found or not keys:
        return None
    class_path, option = found.groups()
    module, _, name = class_path.rpartition(".")
    options = init_options(getattr(importlib.import_module(module), name))
    close = difflib.get_close_matches(option, options, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return (
        f"{keys[0]}.init_args.{option}: {option!r} is not an option of {class_path}{hint}; "
        f"allowed: {', '.join(options)}"
    )


def init_options(cls: type) -> list[str]:
    """The keyword arguments `cls(...)` accepts, following `**kwargs` up the base classes (as jsonargparse does)."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = list(inspect.signature(klass.__init__).parameters.values())[1:]
        names += [p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in names]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names


def yaml_syntax_error(args: list[str]) -> str | None:
    """A `--config` file that is not valid YAML -> `file:line:column: problem` (jsonargparse names neither)."""
    paths = [value for flag, value in zip(args, args[1:], strict=False) if flag == "--config"]
    paths += [arg.split("=", 1)[1] for arg in args if arg.startswith("--config=")]
    for path in paths:
        if not Path(path).is_file():
            continue
        try:
            yaml.safe_load(Path(path).read_text())
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            return f"{path}:{mark.line + 1}:{mark.column + 1}: invalid YAML: {err.problem or err.context}"
    return None


def negative_value_hint(args: list[str]) -> str | None:
    """`--model.init_args.lr_g -1e-4`: argparse reads a value that starts with '-' as the next option."""
    for flag, value in zip(args, args[1:], strict=False):
        if flag.startswith("--") and "=" not in flag and re.fullmatch(r"-(\d|\.\d|inf)\S*", value):
            return f"{flag} {value}: a value that starts with '-' is read as an option; write {flag}={value}"
    return None


def innermost_message(err: BaseException) -> str:
    """jsonargparse wraps a constructor's ValueError in its own; the original names the key."""
    while isinstance(err.__cause__, ValueError):
        err = err.__cause__
    return one_line_parse_error(str(err))


class _Below(logging.Filter):
    def __init__(self, level: int, below: bool) -> None:
        super().__init__()
        self.level, self.below = level, below

    def filter(self, record: logging.LogRecord) -> bool:
        return (record.levelno < self.level) == self.below


def route_info_logs_to_stdout() -> None:
    """Lightning prints its INFO chatter (seed, devices, tips) on stderr. Keep stderr for warnings and
    errors, so that a rejected config leaves exactly its one error line there."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler and not getattr(handler, "gan_lab_routed", False):
                handler.addFilter(_Below(logging.WARNING, below=False))
                info = logging.StreamHandler(sys.stdout)
                info.addFilter(_Below(logging.WARNING, below=True))
                handler.gan_lab_routed = info.gan_lab_routed = True
                logger.addHandler(info)


def main(argv: list[str] | None = None) -> int:
    flush_subnormal_floats()
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
    from argparse import ArgumentError

    route_info_logs_to_stdout()
    try:
        expanded, composed = expand(args)
        if composed and os.environ.get("LOCAL_RANK", "0") == "0" and "--print_config" not in args:
            print(composed)
        run_lightning(expanded)
    except ValueError as err:  # config validation: one line naming the key, value and what is allowed
        if getattr(err, "raised_by_run", False):
            raise
        print(f"gan-lab: error: {innermost_message(err)}", file=sys.stderr)
        return 2
    except ArgumentError as err:
        line = yaml_syntax_error(args) or negative_value_hint(args) or one_line_parse_error(str(err))
        print(f"gan-lab: error: {line}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:  # the last checkpoint on disk is from before the bad step
        print(f"gan-lab: stopped: {err}", file=sys.stderr)
        return 3
    except SIGTERMException:  # StepBoundarySignals saved last.ckpt and said where
        return 128 + signal.SIGTERM
    except SystemExit as exit_:  # Lightning ends a Ctrl-C stop with exit 1; a caller must tell it from an error
        if isinstance(exit_.__context__, KeyboardInterrupt):
            return 128 + signal.SIGINT
        raise
    except KeyboardInterrupt:  # Ctrl-C before the trainer started (inside it, Lightning exits 1)
        print("gan-lab: interrupted before training started; nothing was written", file=sys.stderr)
        return 128 + signal.SIGINT
    return 0


if __name__ == "__main__":
    sys.exit(main())
