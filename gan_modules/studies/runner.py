"""Many fits through one Optuna queue: every trial is enqueued with its fixed parameters (or none,
for TPE), and workers pop trials until none is left. Used by `gan-lab study` and `gan-lab bench`.

Why a queue of enqueued trials: Optuna's storage moves a trial from WAITING to RUNNING in one
transaction, so two workers on one storage (processes of one pool, SLURM jobs on many machines)
never run a trial twice; the trial's parameters are fixed when it is enqueued, so they do not
depend on which worker runs it or when.

Why heartbeats: a worker that dies (SIGKILL, a SLURM pre-emption) leaves its trial RUNNING. Each
worker beats its trial's heartbeat; a trial without a beat for 2 heartbeats is failed by
`optuna.storages.fail_stale_trials`, and `RetryHeartbeatStaleTrialCallback` enqueues it again with
the same parameters and index. Its fit resumes from the trial folder's last checkpoint.

Why stop signals wait for the running trials: Ctrl-C, `kill -- -PGID` or a scheduler's SIGTERM
reach the whole process group, each fit included, and a fit stops at its next step boundary with a
checkpoint (`gan-lab fit` exits 128 + the signal). A worker that stopped at once would kill its fit
before that checkpoint is written (`subprocess.run` kills its child on KeyboardInterrupt), so
workers and the pool's launcher hold a stop signal until their trials are recorded
(`stop_after_trials`). A trial whose fit was stopped so is enqueued again with its parameters and
index, like a stale one, and the next run resumes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

# heartbeats, stale-trial retries and fail_stale_trials are marked experimental; they are what makes
# a killed worker's trial run again, so they are used on purpose
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

LAUNCHERS = ("pool", "submitit")
CLUSTERS = ("local", "slurm", "debug")
INDEX = "index"  # user attr: the trial's place in its objective's plan (random draw i, grid cell x seed)
SEED = "seed"
REASON = "fail_reason"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
IDLE_POLL_S = 1.0  # how often an idle worker looks again for a waiting trial (one cheap storage read)


@dataclass(frozen=True)
class Outcome:
    """What a trial's fit came to: a value (COMPLETE) or a reason (FAIL), and attributes to keep;
    `interrupted`: a stop signal ended the fit, so the trial runs again and its fit resumes."""

    value: float | None
    attrs: dict[str, Any]
    reason: str | None = None
    interrupted: bool = False


def interrupted_exit(returncode: int | None) -> bool:
    """Whether `gan-lab fit` ended on a stop signal (exit 128 + SIGINT or SIGTERM), after its
    step-boundary checkpoint: such a fit resumes, it did not fail."""
    return returncode is not None and returncode - 128 in STOP_SIGNALS


class Stopped(KeyboardInterrupt):
    """A stop signal reached a worker or a launcher; raised once its running trials are recorded."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def stopped(command: str, err: KeyboardInterrupt, kept: str) -> int:
    """After a stop signal ended `gan-lab <command>`'s queue: one line on what was `kept`, and the
    exit status 128 + the signal."""
    signum = err.signum if isinstance(err, Stopped) else signal.SIGINT
    print(f"gan-lab {command}: stopped by {signal.Signals(signum).name}; {kept}", file=sys.stderr)
    return 128 + signum


@contextlib.contextmanager
def stop_after_trials() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then raise `Stopped` (module docstring). A
    signal this process ignores (a background job's SIGINT) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    held = [s for s in STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        raise Stopped(received[0])


class Task(Protocol):
    """What a queue runs: its Optuna study names, each one's space, and how to run one trial.
    Implementations are picklable dataclasses (they travel to spawned and submitit workers)."""

    heartbeat_s: float

    def names(self) -> list[str]: ...

    def space(self, name: str) -> dict[str, BaseDistribution]: ...

    def sampler(self, worker: int) -> optuna.samplers.BaseSampler: ...

    def execute(self, name: str, index: int, seed: int, params: dict[str, Any]) -> Outcome: ...


def storage(url: str, heartbeat_s: float) -> RDBStorage:
    """An RDB storage with heartbeats; SQLite waits for its lock instead of failing a busy write."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    return RDBStorage(
        url,
        heartbeat_interval=max(1, round(heartbeat_s)),
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(),
        **kwargs,
    )


def enqueue(study: optuna.Study, points: Sequence[dict[str, Any]]) -> int:
    """Enqueue the points whose index has no trial yet (stale ones are failed and re-enqueued first);
    returns how many were added."""
    fail_stale_trials(study)
    known = {t.user_attrs.get(INDEX) for t in study.get_trials(deepcopy=False)}
    added = 0
    for point in points:
        if point["index"] not in known:
            study.enqueue_trial(point["params"], user_attrs={INDEX: point["index"], SEED: point["seed"]})
            added += 1
    return added


@contextlib.contextmanager
def _exclusive(store: RDBStorage) -> Iterator[None]:
    """One taker at a time on an SQLite file: SQLite ignores the row lock (SELECT ... FOR UPDATE)
    by which Optuna's RDB storage refuses a second taker of a WAITING trial elsewhere, so two workers
    could both move it to RUNNING. A lock file beside the database serialises the move."""
    url = str(store.url)
    if not url.startswith("sqlite:///"):
        yield
        return
    with open(url.removeprefix("sqlite:///") + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pop(study: optuna.Study, store: RDBStorage) -> optuna.Trial | None:
    """A WAITING trial moved to RUNNING by this worker (the storage refuses a second taker)."""
    with _exclusive(store):
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            try:
                if store.get_trial(frozen._trial_id).state != TrialState.WAITING:
                    continue
                if store.set_trial_state_values(frozen._trial_id, state=TrialState.RUNNING):
                    store.record_heartbeat(frozen._trial_id)
                    return optuna.Trial(study, frozen._trial_id)
            except UpdateFinishedTrialError:
                continue
    return None


def _beat(store: RDBStorage, trial_id: int, every_s: float, stop: threading.Event) -> None:
    while not stop.wait(every_s):
        store.record_heartbeat(trial_id)


def run_trial(task: Task, name: str, study: optuna.Study, trial: optuna.Trial, store: RDBStorage) -> TrialState:
    """Run one popped trial with its heartbeat; the outcome is told to Optuna, a failure as FAIL
    with its reason (never dropped), an interrupted fit as FAIL with a retry enqueued."""
    from gan_modules.studies.space import suggest

    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(store, trial._trial_id, task.heartbeat_s, stop), daemon=True)
    beat.start()
    try:
        params = suggest(trial, task.space(name))
        attrs = trial.user_attrs
        outcome = task.execute(name, int(attrs[INDEX]), int(attrs[SEED]), params)
    except Exception as err:  # a bug in one trial's set-up must not take the whole study down
        outcome = Outcome(None, {}, f"error: {type(err).__name__}: {err}")
    finally:
        stop.set()
        beat.join()
    if outcome.interrupted:  # the same parameters, index and seed again, before this attempt's attributes
        RetryHeartbeatStaleTrialCallback()(study, store.get_trial(trial._trial_id))
    for key, value in outcome.attrs.items():
        trial.set_user_attr(key, value)
    if outcome.reason is not None:
        trial.set_user_attr(REASON, outcome.reason)
        study.tell(trial, state=TrialState.FAIL)
        return TrialState.FAIL
    study.tell(trial, outcome.value)
    return TrialState.COMPLETE


def work(task: Task, url: str, worker: int = 0, launcher: int | None = None) -> int:
    """One worker: pop and run trials of the task's studies until none is waiting or running
    (a trial running elsewhere may still go stale and come back). Returns the trials it ran. A pool
    worker is given its `launcher`'s pid: once that process is gone (killed, so the worker was handed
    to another parent) it finishes its trial and takes no new one, so stopping the launcher stops
    the study and a rerun resumes it. (The in-process worker has no such check: a `nohup` run must
    outlive its shell.)"""
    store = storage(url, task.heartbeat_s)
    studies = {n: optuna.load_study(study_name=n, storage=store, sampler=task.sampler(worker)) for n in task.names()}
    ran = 0
    while launcher is None or os.getppid() == launcher:
        popped = None
        for name, study in studies.items():
            fail_stale_trials(study)
            trial = _pop(study, store)
            if trial is not None:
                popped = name, study, trial
                break
        if popped is None:
            running = any(s.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) for s in studies.values())
            if not running:
                return ran
            # not a heartbeat: a worker idle that long would keep its launcher waiting up to a
            # heartbeat after the last trial ends, or after another worker enqueued a retry
            time.sleep(min(task.heartbeat_s, IDLE_POLL_S))
            continue
        with stop_after_trials():
            run_trial(task, *popped, store)
        ran += 1
    return ran


def pool_work(task: Task, url: str, worker: int, launcher: int) -> int:
    """`work` in a pool process. Once its launcher is gone the process exits instead of returning:
    the pool would otherwise keep it waiting for work that no launcher will send, an orphan holding
    its memory for good."""
    ran = work(task, url, worker, launcher)
    if os.getppid() != launcher:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return ran


def launch(
    task: Task,
    url: str,
    workers: int,
    launcher: str = "pool",
    cluster: str = "local",
    folder: Path | None = None,
    parameters: dict[str, Any] | None = None,
) -> int:
    """Run `workers` workers on the task's queue: in this process (one worker), a pool of spawned
    processes, or submitit jobs (`cluster` local | slurm | debug; `parameters` go to
    `update_parameters`, e.g. {timeout_min: 240, slurm_partition: cpu}). Returns the trials run."""
    if launcher == "submitit":
        import submitit

        executor = submitit.AutoExecutor(folder=str(folder or Path("submitit")), cluster=cluster)
        executor.update_parameters(**{"timeout_min": 60, "cpus_per_task": 1, **(parameters or {})})
        jobs = [executor.submit(work, task, url, i) for i in range(workers)]
        return sum(job.result() for job in jobs)
    if workers == 1:
        return work(task, url, 0)
    with stop_after_trials(), ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return sum(pool.map(pool_work, [task] * workers, [url] * workers, range(workers), [os.getpid()] * workers))


def latest_trials(study: optuna.Study) -> list[FrozenTrial]:
    """One trial per index, the last attempt: a stale trial that was re-enqueued is replaced by its
    retry, so a killed worker is not counted as a failed trial; trials not yet run are left out."""
    by_index: dict[Any, FrozenTrial] = {}
    for trial in study.get_trials(deepcopy=False):
        by_index[trial.user_attrs.get(INDEX, trial.number)] = trial
    finished = (TrialState.COMPLETE, TrialState.FAIL)
    return sorted((t for t in by_index.values() if t.state in finished), key=lambda t: t.user_attrs.get(INDEX, 0))
