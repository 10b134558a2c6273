"""Weights & Biases as the default tracker, safe on clusters without network and in CI.

`mode: auto` picks W&B's online mode only when an API key is configured *and* the server accepts
a connection within PROBE_TIMEOUT_S; otherwise the run is written in offline mode to a real local
run folder (`<save_dir>/wandb/offline-run-*`) that `wandb sync` uploads later. An online start that
still fails (bad key, server error, longer than INIT_TIMEOUT_S) falls back to offline too. Nothing
prompts for a login, and training never depends on W&B being reachable.
"""

from __future__ import annotations

import netrc
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

Mode = Literal["auto", "online", "offline", "disabled"]
PROBE_TIMEOUT_S = 3.0
INIT_TIMEOUT_S = 30.0  # an online start that takes longer falls back to offline
RUN_ID_FILE = "gan_lab_run_id"


def _api_key_configured(host: str) -> bool:
    """An API key in the environment or in the netrc file that `wandb login` writes."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def _reachable(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """TCP connect in a daemon thread, so that a stalled DNS lookup cannot hang the caller either."""
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def resolve_mode(mode: Mode = "auto") -> str:
    """W&B mode for this run: an explicit mode or `WANDB_MODE` wins; `auto` goes offline unless online can work."""
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env:
        return "offline" if env == "dryrun" else env
    if os.environ.get("WANDB_DISABLED", "").strip().lower() in ("true", "1", "yes"):
        return "disabled"
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    host = url.hostname or "api.wandb.ai"
    if not _api_key_configured(host):
        return "offline"
    return "online" if _reachable(host, url.port or (80 if url.scheme == "http" else 443)) else "offline"


class WandbRunLogger(WandbLogger):
    """Lightning's `WandbLogger` with gan-lab's defaults.

    Args:
        project / entity / name / group / tags / notes / job_type: as in `wandb.init`; `group`
            and `tags` organise sweeps and seeds (e.g. group by config, one run per seed). `name`
            defaults to the run folder's name.
        save_dir: a relative path is taken inside `trainer.default_root_dir` by the CLI.
        mode: auto | online | offline | disabled (see the module docstring).
        log_model: False; True logs the best checkpoint (the last one when nothing is
            monitored) as a `model` artifact when training ends; "all" logs every checkpoint.

    A restarted run (same root folder) continues the same W&B run id, so its charts continue;
    inside a W&B sweep the agent's run id is used.
    """

    def __init__(
        self,
        project: str = "gan-lab",
        entity: str | None = None,
        name: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
        notes: str | None = None,
        job_type: str | None = None,
        save_dir: str = ".",
        mode: Mode = "auto",
        log_model: bool | Literal["all"] = False,
        **kwargs: Any,
    ) -> None:
        if mode not in ("auto", "online", "offline", "disabled"):
            raise ValueError(f"trainer.logger.mode={mode!r} is invalid; allowed: auto, online, offline, disabled")
        os.environ.setdefault("WANDB_SILENT", "true")  # gan-lab prints where the run went
        self.requested_mode = mode
        super().__init__(
            project=project,
            entity=entity,
            name=name,
            group=group,
            tags=list(tags or []),
            notes=notes,
            job_type=job_type,
            save_dir=save_dir,
            log_model=log_model,
            **{k: v for k, v in kwargs.items() if v is not None},  # the CLI lists every wandb.init option as null
        )
        self._finished_run_dir: Path | None = None

    @property
    def mode(self) -> str:
        return str(self._wandb_init.get("mode") or resolve_mode(self.requested_mode))

    @property
    def run_dir(self) -> Path | None:
        """The local run folder (offline runs: the folder to pass to `wandb sync`)."""
        if self._experiment is None or not hasattr(self._experiment, "dir"):
            return self._finished_run_dir
        return Path(self._experiment.dir).parent

    def add_tags(self, *tags: str) -> None:
        """Add tags before the run starts (the CLI adds the variant and dataset names)."""
        current = list(self._wandb_init.get("tags") or [])
        self._wandb_init["tags"] = current + [t for t in tags if t and t not in current]

    @property
    def experiment(self) -> Any:
        if self._experiment is not None or rank_zero_only.rank != 0:
            return super().experiment
        self._prepare_init()
        try:
            return super().experiment
        except Exception as err:  # online start failed (bad key, server error, timeout): keep training
            if self._wandb_init["mode"] != "online":
                raise
            import wandb

            rank_zero_warn(f"W&B could not start online ({type(err).__name__}: {err}); writing an offline run")
            wandb.teardown()  # the failed start still holds the run id in W&B's service process
            self._wandb_init["mode"] = "offline"
            return super().experiment

    def _prepare_init(self) -> None:
        """Decide the mode and the run id once, just before `wandb.init` (rank zero only)."""
        import wandb

        init = self._wandb_init
        if init.get("anonymous") is None:
            init.pop("anonymous", None)
        init["mode"] = resolve_mode(self.requested_mode)
        if not os.environ.get("WANDB_MODE", "x").strip():
            del os.environ["WANDB_MODE"]  # an empty WANDB_MODE fails wandb's own settings validation
        init.setdefault("settings", wandb.Settings(init_timeout=INIT_TIMEOUT_S, silent=True))
        save_dir = Path(init["dir"] or ".")
        if init.get("name") is None:
            init["name"] = save_dir.resolve().name
        if init.get("id") is None and not os.environ.get("WANDB_RUN_ID"):
            id_file = save_dir / "wandb" / RUN_ID_FILE
            if id_file.is_file():
                init["id"] = id_file.read_text().strip()
            else:
                init["id"] = uuid.uuid4().hex[:8]
                id_file.parent.mkdir(parents=True, exist_ok=True)
                id_file.write_text(init["id"])
        self._id = init.get("id")

    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        if self._log_model == "all":
            self._scan_and_log_checkpoints(checkpoint_callback)
        elif self._log_model is True:  # remember it; the best one is logged once, at the end
            self._checkpoint_callbacks[id(checkpoint_callback)] = checkpoint_callback

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Log the best checkpoint (if asked), then finish the W&B run and stop W&B's service, so that
        the run folder is complete when the command returns (`finish` alone may return before the
        service has flushed it); a later trainer call on this logger resumes the same run id."""
        if self._experiment is None:
            return
        if status == "success" and self._log_model is True:
            self._log_best_checkpoints()
        import wandb

        self._finished_run_dir = self.run_dir
        self._experiment.finish(exit_code=0 if status in ("success", "finished") else 1)
        self._experiment = None
        wandb.teardown()  # returns once W&B's service has written the run folder completely

    def _log_best_checkpoints(self) -> None:
        import wandb

        for callback in self._checkpoint_callbacks.values():
            path = callback.best_model_path or callback.last_model_path
            if not path or not Path(path).is_file():
                continue
            artifact = wandb.Artifact(
                name=f"model-{self._experiment.id}",
                type="model",
                metadata={"original_filename": Path(path).name, "monitor": callback.monitor},
            )
            artifact.add_file(path, name="model.ckpt")
            self._experiment.log_artifact(artifact, aliases=["best", "latest"])


class CSVRunLogger(CSVLogger):
    """Lightning's `CSVLogger`, also flushed whenever a checkpoint is written: a killed run's
    `metrics.csv` then reaches at least its last checkpoint, where the resumed run continues."""

    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        self.save()
