"""`gan-lab study`: per objective a search space and N trials (random, TPE or a grid), each trial a
normal `gan-lab fit` in its own folder, kept in an Optuna storage that workers share; then the
reports of Lucic et al. 2018 and Kurach et al. 2019. Re-running the same command runs only the
trials not finished yet."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import yaml

NAME = "study"
HELP = "hyperparameter study (Lucic et al. 2018): N trials per objective, reports vs budget"


def _positive(flag: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"--{flag}={value} is invalid; allowed: an integer >= 1")


def main(argv: list[str]) -> int:
    from gan_modules.studies.config import load_study
    from gan_modules.studies.runner import CLUSTERS, LAUNCHERS, enqueue, launch, stopped, storage

    parser = argparse.ArgumentParser(prog=f"gan-lab {NAME}", description=HELP)
    parser.add_argument("--config", required=True, help="study file, e.g. configs/study/toy2d.yaml")
    parser.add_argument("--out", default=None, help="study folder (default runs/study/<name>)")
    parser.add_argument("--trials", type=int, default=None, help="trials per objective (random / tpe studies)")
    parser.add_argument("--objectives", default=None, help="comma-separated subset of the study's objectives")
    parser.add_argument("--storage", default=None, help="Optuna RDB URL (default sqlite:///<out>/study.db)")
    parser.add_argument("--workers", type=int, default=None, help="workers (default: the CPU cores)")
    parser.add_argument("--launcher", default="pool", help="pool (local processes) | submitit (jobs)")
    parser.add_argument("--cluster", default="local", help="submitit cluster: local | slurm | debug")
    parser.add_argument("--submitit", default="{}", help="YAML mapping for submitit's update_parameters")
    parser.add_argument("--report_only", action="store_true", help="rebuild the reports from the storage only")
    args = parser.parse_args(argv)
    try:
        study = load_study(args.config)
        _positive("trials", args.trials)
        _positive("workers", args.workers)
        if args.trials is not None:
            if study.sampler == "grid":
                raise ValueError(f"--trials={args.trials} is invalid for a grid study; allowed: a random or tpe study")
            study.trials = args.trials
        if args.objectives is not None:
            known = [o.name for o in study.objectives]
            keep = [n.strip() for n in args.objectives.split(",") if n.strip()]
            for name in keep:
                if name not in known:
                    raise ValueError(f"--objectives={name!r} is not in the study; allowed: {', '.join(known)}")
            study = replace(study, objectives=[o for o in study.objectives if o.name in keep])
        if args.launcher not in LAUNCHERS:
            raise ValueError(f"--launcher={args.launcher!r} is invalid; allowed: {', '.join(LAUNCHERS)}")
        if args.cluster not in CLUSTERS:
            raise ValueError(f"--cluster={args.cluster!r} is invalid; allowed: {', '.join(CLUSTERS)}")
        parameters = yaml.safe_load(args.submitit)
        if not isinstance(parameters, dict):
            raise ValueError(f"--submitit={args.submitit!r} is invalid; allowed: a YAML mapping")
    except (ValueError, FileNotFoundError) as err:
        print(f"gan-lab {NAME}: error: {err}", file=sys.stderr)
        return 2
    import optuna

    from gan_modules.studies.report import write_report
    from gan_modules.studies.trial import StudyTask, study_name

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = Path(args.out or Path("runs") / "study" / study.name).resolve()
    out.mkdir(parents=True, exist_ok=True)
    url = args.storage or f"sqlite:///{out / 'study.db'}"
    store = storage(url, study.heartbeat_s)
    plans = {o.name: study.points(o) for o in study.objectives}
    workers = args.workers or min(os.cpu_count() or 1, sum(len(p) for p in plans.values()))
    if args.report_only:
        known = optuna.get_all_study_names(store)
        missing = [study_name(study, o.name) for o in study.objectives if study_name(study, o.name) not in known]
        if missing:
            print(
                f"gan-lab {NAME}: error: --storage={url!r} has no study {missing[0]!r}; run the study first",
                file=sys.stderr,
            )
            return 2
    else:
        added = 0
        for objective in study.objectives:
            opt = optuna.create_study(
                study_name=study_name(study, objective.name),
                storage=store,
                direction=study.direction,
                load_if_exists=True,
            )
            added += enqueue(opt, plans[objective.name])
        print(f"gan-lab {NAME}: {added} trial(s) enqueued in {url}; {workers} worker(s)")
        try:
            ran = launch(StudyTask(study, out), url, workers, args.launcher, args.cluster, out / "submitit", parameters)
        except KeyboardInterrupt as err:
            return stopped(NAME, err, "finished trials are kept; the same command resumes the rest")
        print(f"gan-lab {NAME}: {ran} trial(s) run")
    command = "gan-lab study " + " ".join(shlex.quote(a) for a in argv if a != "--report_only")
    report, failed = write_report(study, store, out, command, workers)
    print(report.read_text())
    print(f"gan-lab {NAME}: wrote {report} (+ trials.csv, summary.csv, budget.csv, *.png); {failed} failed trial(s)")
    return 1 if failed else 0
