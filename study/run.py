"""Run a named hyperparameter study on Ray: `python -m study.run NAME [options]`.

Ray Tune (Optuna, optional ASHA) proposes trial configs; each trial is one Ray Train run of the trainer with
DDP; every trial lands in MLflow as a child run of the launch's parent run. With nothing configured it runs on
this machine: the embedded corpus, a local Ray instance on loopback, a SQLite MLflow store in the working
directory, and the `cpu` profile. Ctrl+C / SIGTERM, dead workers and tracking outages stop or slow it without
losing work (see the README's *Faults*); `--resume` continues a launch where it stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import search_spaces
from study.cli_checks import number_type
from study.data_options import DATA_OPTIONS, add_data_options, data_overrides
from study.launch import cluster as ray_cluster
from study.launch import code_fingerprint, progress
from study.launch.cluster import Cluster, default_address
from study.launch.code_fingerprint import CodeMismatchError
from study.launch.errors import one_line
from study.launch.console import clear_view, quiet_console
from study.launch.interrupts import Interrupted, Interrupts
from study.launch.outage import EXIT_OUTAGE, TrackingWatch
from study.launch.plan import PlanError, Plan, Resources, build_plan, plan_resources
from study.launch.records import find_launch, plan_from_record, record_resources, save_launch
from study.launch.storage import SHARED_PATHS_ENV, StorageError, check_cluster_storage
from study.launch.storage import resolve as resolve_storage
from study.tracking import provenance, runs, store
from study.tracking.settings import TrackingSettings
from study.tracking.store import TrackingError, resolve_uri
from trainables.config import PROFILES, ConfigError, TrainConfig, parse_override
from trainables.corpus import default_cache_dir, ensure_embedded_corpus

STORAGE_ENV = "MARGIN_STUDY_STORAGE"
DEFAULT_MAX_FAILURES = 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m study.run", description=__doc__.split("\n")[0])
    p.add_argument("name", nargs="?", help="study to run (see --list)")
    p.add_argument("--list", action="store_true", help="list the available studies and exit")
    p.add_argument("--dry-run", action="store_true", help="print the plan (trials, resources, where things go) and exit")
    p.add_argument("--verbose", action="store_true", help="also show Ray's and Tune's banners, hints and internal "
                   "warnings (hidden by default)")
    p.add_argument("--resume", action="store_true", help="continue the newest interrupted launch of the study in --storage")
    p.add_argument("--address", default=default_address(),
                   help="Ray cluster to join, e.g. 10.0.0.1:6379 (default: $RAY_ADDRESS, else start a local instance)")
    p.add_argument("--profile", choices=sorted(PROFILES), help="config profile (default: cpu, or paper with --data-root)")
    add_data_options(p)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a fixed config value")
    p.add_argument("--num-samples", type=int, help="number of trials of an Optuna study (default: the study's)")
    p.add_argument("--seeds", help="comma-separated seeds: run a grid study once per seed")
    p.add_argument("--rows", help="comma-separated rows of a grid study to run, 1-based as --dry-run lists them "
                   "(default: all)")
    p.add_argument("--max-concurrent", type=int, help="at most this many trials at once (default: what fits)")
    p.add_argument("--workers-per-trial", type=int, default=1, help="Ray Train (DDP) workers per trial (default: 1)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per worker (default: 1)")
    p.add_argument("--gpus-per-worker", type=int, help="whole GPUs per worker (default: 1 when the cluster has GPUs)")
    p.add_argument("--trials-per-gpu", type=number_type(int, 1), default=1, metavar="N",
                   help="pack N single-worker trials on each GPU (a 1/N share each); refused when their estimated "
                        "memory does not fit the GPU (default: 1)")
    p.add_argument("--max-failures", type=number_type(int, 0), default=DEFAULT_MAX_FAILURES, metavar="N",
                   help="restart a trial's workers from its last checkpoint up to N times when a worker or node "
                        f"dies (default: {DEFAULT_MAX_FAILURES}; 0 = a failure fails the trial)")
    p.add_argument("--storage", default=os.environ.get(STORAGE_ENV) or "results",
                   help=f"results folder or URI (default: ${STORAGE_ENV}, else ./results)")
    p.add_argument("--assume-shared-storage", action="store_true",
                   help="every node sees --storage and a file-based MLflow store (e.g. all nodes on one machine); "
                        f"folders listed in ${SHARED_PATHS_ENV} are taken as shared without it")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)")
    p.add_argument("--tracking-outage-limit", type=number_type(float, 0, exclusive=True), default=600.0,
                   metavar="SECONDS",
                   help="stop the study (resumably, exit 75) when the tracking server has been unreachable this "
                        "long; until then trials go on and their metrics are sent when it is back (default: 600)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    quiet_console(args.verbose)
    if args.list:
        print(list_studies())
        return 0
    if not args.name:
        parser().error("give a study NAME (see --list)")
    try:
        return launch(args)
    except (PlanError, TrackingError, StorageError, CodeMismatchError, ConfigError, KeyError, FileNotFoundError) as error:
        print(f"error: {error.args[0] if isinstance(error, KeyError) else error}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        print(f"interrupted ({stop}) before any trial started; nothing to resume", file=sys.stderr)
        return stop.code
    except KeyboardInterrupt:
        print("interrupted before any trial started; nothing to resume", file=sys.stderr)
        return 130


def list_studies() -> str:
    """One line per study: name, trials on each profile, description."""
    lines = []
    for name in search_spaces.names():
        study = search_spaces.load(name)
        sizes = ", ".join(f"{p}: {study.samples_for(p)}" for p in sorted(PROFILES))
        lines.append(f"{name:<14} {study.description}  [trials {sizes}]")
    return "\n".join(lines)


def launch(args: argparse.Namespace) -> int:
    """Plan, then run the study (or print the plan)."""
    storage = resolve_storage(args.storage)
    record = find_launch(storage, args.name) if args.resume else None
    if record:
        conflicts = resume_conflicts(args, record)
        if conflicts:
            raise PlanError(f"--resume continues {record['experiment']} as it was launched; these options differ "
                            f"from that launch: {'; '.join(conflicts)}")
    plan = plan_from_record(record) if record else plan_from_args(args, storage)
    if not record and not plan.embedded and not args.address:
        check_lists(plan)
    if args.dry_run:
        plan.resources = record_resources(record) if record else resources_for(args, plan)
        print(plan.describe())
        return 0
    return execute(args, plan, record)


def plan_from_args(args: argparse.Namespace, storage: str) -> Plan:
    study = search_spaces.load(args.name)
    # workers run in their own folders: a relative data root would not be found there
    data = data_overrides(args, absolute_root=True)
    overrides = dict(parse_override(text) for text in args.set)
    seeds = parse_integers(args.seeds, "--seeds")
    rows = parse_integers(args.rows, "--rows")
    profile = args.profile or ("paper" if args.data_root else "cpu")
    plan = build_plan(study, profile, data, overrides, args.num_samples, seeds, rows)
    plan.storage = storage
    plan.experiment = f"{study.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    plan.tracking_uri = resolve_uri(args.tracking_uri)
    plan.address = args.address
    return plan


def check_lists(plan: Plan) -> None:
    """Refuse, before Ray starts, data every trial would fail on: a missing data root or augmentation folder, a
    malformed training or trial list (no audio is opened: trials check their files). On a cluster joined with
    --address the data may be where only the workers see it, so this is left to them."""
    from trainables.data_paths import resolve_data  # heavy: torch (the trainer's data modules)
    from trainables.dataset import DataError
    from trainables.manifest import ManifestError, read_train_manifest, read_trials
    from trainables.parts import check_augmentation_folders

    cfg = TrainConfig.from_dict(plan.base)
    try:
        paths = resolve_data(cfg)
        check_augmentation_folders(cfg, paths)
        read_train_manifest(paths.train_manifest, paths.data_root)
        read_trials(paths.trials)
    except (DataError, ManifestError) as error:
        raise PlanError(str(error)) from None


def resources_for(args: argparse.Namespace, plan: Plan, cluster: Cluster | None = None) -> Resources:
    """Resources from the cluster (or, for a dry run without --address, this machine)."""
    cpus, gpus = (cluster.cpus, cluster.gpus) if cluster is not None else ray_cluster.local_resources()
    if cluster is None and args.address:
        try:
            found = ray_cluster.connect(args.address, {})
            cpus, gpus = found.cpus, found.gpus
        finally:
            ray_cluster.disconnect()
    return plan_resources(cpus, gpus, plan.num_samples, args.workers_per_trial, args.cpus_per_worker,
                          args.gpus_per_worker, args.max_concurrent, args.trials_per_gpu)


def execute(args: argparse.Namespace, plan: Plan, record: dict[str, Any] | None) -> int:
    """Check the store, start or join Ray, run the Tuner, report, and leave nothing running."""
    started = time.monotonic()
    store.check_reachable(plan.tracking_uri)
    address = args.address or (plan.address if record else None)
    env = ray_cluster.worker_env(address, trial_env(plan))
    try:
        cluster = connect(address, env)
        with Interrupts() as interrupts:  # after Ray started: it replaces Ray's SIGTERM handler
            return run_on(cluster, args, plan, record, started, interrupts)
    finally:
        ray_cluster.disconnect()


def trial_env(plan: Plan) -> dict[str, str]:
    """Environment variables the trials need: the MLflow store and, with no dataset, the embedded corpus's
    cache (generated here, once, before any trial starts)."""
    env = {"MLFLOW_TRACKING_URI": plan.tracking_uri}
    if plan.embedded:
        root = ensure_embedded_corpus(log=print)
        env["MARGIN_STUDY_CACHE"] = str(default_cache_dir().resolve())
        print(f"no dataset given: using the embedded corpus at {root} ({plan.profile} profile)")
    return env


def connect(address: str | None, env: dict[str, str]) -> Cluster:
    """Start a local Ray instance (address None) or join the cluster at `address`, and say which."""
    try:
        cluster = ray_cluster.connect(address, env)
    except Exception as error:  # e.g. nothing listens at --address, or its auth token differs
        raise PlanError(f"cannot {'join the Ray cluster at ' + address if address else 'start a local Ray instance'}: "
                        f"{error}") from error
    print(f"Ray: {'local instance on 127.0.0.1' if cluster.local else cluster.address}, {cluster.resources}")
    return cluster


def run_on(cluster: Cluster, args: argparse.Namespace, plan: Plan, record: dict[str, Any] | None, started: float,
           interrupts: Interrupts) -> int:
    """Check the cluster, open the parent run, record the launch, fit the Tuner and report; the exit status."""
    from study.launch.live_board import close_board, open_board  # heavy: ray
    from study.launch.tuner import make_tuner  # heavy: ray.tune and torch; --list, --help and --dry-run skip them

    resources = record_resources(record) if record else resources_for(args, plan, cluster)
    check_cluster(cluster, plan, args.assume_shared_storage or bool(record and record.get("assume_shared_storage")))
    if resources.gpus_per_worker:
        check_gpu_memory(plan, resources)
    experiment_id = store.prepare_experiment(plan.tracking_uri, plan.study.name)
    parent_run_id = parent_run(plan, record, experiment_id, cluster)
    max_failures = record["driver"].get("max_failures", 0) if record else args.max_failures
    driver = driver_plan(plan, resources, experiment_id, parent_run_id, provenance.git_commit(), max_failures,
                         args.verbose)
    if not record:
        save_launch(plan, resources, driver, args.assume_shared_storage)
    print(f"{plan.study.name}: {plan.num_samples} trial(s), {resources.per_trial()} each, "
          f"up to {resources.max_concurrent} at once; results in {plan.storage}/{plan.experiment}")
    tuner = make_tuner(plan, resources, driver, restore=bool(record))
    board = open_board(driver.board)  # trials post to it until the Tuner returns
    interrupts.fitting = True
    outage = TrackingWatch(plan.tracking_uri, args.tracking_outage_limit, lambda why: interrupts.stop(why, EXIT_OUTAGE))
    try:
        with outage:
            result_grid = tuner.fit()
    except Interrupted:  # a second signal while Tune was stopping
        result_grid = None
    finally:
        interrupts.fitting = False
        clear_view()
        close_board(board)
    if interrupts.signum is not None:
        return stopped(plan, driver, interrupts)
    try:
        return report(plan, driver, parent_run_id, result_grid, started)
    except TrackingOutage as error:
        print(f"{error}; when it is back, run: python -m study.run {plan.study.name} --resume --storage {plan.storage}")
        return EXIT_OUTAGE


def check_gpu_memory(plan: Plan, resources: Resources) -> None:
    """Refuse a launch whose trials would not fit in the GPUs' memory (the largest trial the study can draw,
    estimated, times the trials sharing a GPU); print the estimate."""
    from study.launch.gpu_fit import check_fit, probe_gpu_bytes, worker_memory  # heavy: torch

    estimate = worker_memory(plan, resources)
    gpu_bytes = probe_gpu_bytes()
    if gpu_bytes is None:
        print(f"GPU memory: {estimate.describe()} estimated per worker; the GPUs' memory could not be read (every GPU "
              "busy for 60 s), so it is not checked")
        return
    check_fit(resources.trials_per_gpu, estimate, gpu_bytes)
    print(f"GPU memory: {resources.trials_per_gpu} trial(s) per GPU x {estimate.describe()} estimated per worker; "
          f"the GPUs have {gpu_bytes / 2**30:.1f} GiB")


def stopped(plan: Plan, driver, interrupts: Interrupts) -> int:
    """Mark the trials that did not finish (and the launch) interrupted, say how to resume; the exit status."""
    tracking = driver.tracking
    try:
        states = runs.interrupt_launch(tracking) if tracking is not None else {}
    except Exception as error:  # the tracking server is down: the runs stay RUNNING; --resume continues them
        print(f"MLflow was not told ({one_line(error)}); the runs stay RUNNING until --resume continues them")
        states = {}
    finished = sum(status == "FINISHED" for status in states.values())
    cut = sorted(trial for trial, status in states.items() if status == runs.INTERRUPTED)
    print(f"{interrupts.reason}: the study stopped; {finished} of {plan.num_samples} trial(s) finished"
          + (f", {len(cut)} interrupted ({', '.join(cut)}) and resumable from their last checkpoint" if cut else ""))
    print(f"continue with: python -m study.run {plan.study.name} --resume --storage {plan.storage}")
    return interrupts.code


def check_cluster(cluster: Cluster, plan: Plan, assume_shared: bool) -> None:
    """Refuse storage that not every node reaches, and nodes that run other code than this machine."""
    check_cluster_storage(plan.storage, plan.tracking_uri, [n["ip"] for n in cluster.nodes], assume_shared)
    if not cluster.local:
        code = code_fingerprint.check_cluster(cluster.nodes)
        print(f"code: {code_fingerprint.describe(code)} on every node")


def parent_run(plan: Plan, record: dict[str, Any] | None, experiment_id: str, cluster: Cluster) -> str:
    """The id of the launch's MLflow parent run: the recorded one set running again, else a new one (tagged
    with the driver's machine and the cluster's resources, for results pages)."""
    if record:
        parent_run_id = record["tracking"]["parent_run_id"]
        runs.reopen_parent_run(plan.tracking_uri, parent_run_id)
        print(f"resuming {plan.storage}/{plan.experiment} (finished trials are not rerun)")
        return parent_run_id
    return runs.start_parent_run(
        plan.tracking_uri, experiment_id, plan.experiment,
        tags={runs.STUDY_TAG: plan.study.name, runs.LAUNCH_TAG: plan.experiment, "profile": plan.profile,
              "git_commit": provenance.git_commit(), "results": f"{plan.storage}/{plan.experiment}",
              "embedded_data": str(plan.embedded).lower(), "machine": provenance.machine(),
              "cluster": cluster.resources},
        params={**{k: v for k, v in plan.base.items() if k not in plan.searched},
                "num_samples": plan.num_samples, "searched": ",".join(plan.searched),
                **({"rows": ",".join(map(str, plan.rows))} if plan.rows else {})},
    )


class TrackingOutage(RuntimeError):
    """The tracking server could not take the launch's final state; the message says what was not logged."""


def report(plan: Plan, driver, parent_run_id: str, result_grid, started: float) -> int:
    """Close runs the workers could not close, print the summary, close the parent run; exit status."""
    study = plan.study
    trials = progress.outcomes(result_grid, plan.base["epochs"])
    where = {
        "results": f"{plan.storage}/{plan.experiment}",
        "mlflow": f"{plan.tracking_uri}, experiment '{study.name}', parent run {parent_run_id}",
        "browse": store.ui_command(plan.tracking_uri),
    }
    text = progress.summary(study.name, trials, plan.searched, plan.conditions, study.metric, study.mode,
                            study.references, time.monotonic() - started, where)
    try:
        failed, top = close_launch(plan, driver, parent_run_id, trials, text)
    finally:
        print(text)
    return 1 if failed or top is None else 0


def close_launch(plan: Plan, driver, parent_run_id: str, trials, summary: str) -> tuple[bool, Any]:
    """Close the runs the workers could not, and the parent run with the summary metrics and, as artifacts, the
    `summary` text and the trials table; (any failed, best)."""
    study = plan.study
    top = progress.best(trials, study.metric, study.mode)
    summary_metrics = {"trials": len(trials), "failed_trials": sum(t.error is not None for t in trials)}
    if top is not None:
        summary_metrics.update({f"best_{study.metric}": top.metrics[study.metric],
                                "best_min_dcf": top.metrics.get("min_dcf", float("nan"))})
    failed = summary_metrics["failed_trials"] > 0
    try:
        for trial_id in runs.mark_lost_runs(driver.tracking, {trial.trial_id for trial in trials}):
            print(f"trial {trial_id}: its run is marked lost (state=lost): the launch stopped before Tune recorded "
                  "the trial, so --resume ran a new trial in its place")
        for trial in trials:
            if trial.error:
                runs.close_trial_run(driver.tracking, trial.trial_id, "FAILED", {runs.ERROR_TAG: trial.error})
            elif trial.stopped_early:
                runs.mark_stopped_early(driver.tracking, trial.trial_id)
        runs.log_launch_summary(plan.tracking_uri, parent_run_id, summary,
                                progress.trials_csv(trials, plan.searched, study.metric))
        runs.finish_parent_run(plan.tracking_uri, parent_run_id, summary_metrics,
                               status="FAILED" if failed else "FINISHED")
    except Exception as error:  # the tracking server is down (MLflow raises several types)
        raise TrackingOutage(f"MLflow could not take the launch's final state ({one_line(error)})") from None
    return failed, top


def driver_plan(plan: Plan, resources: Resources, experiment_id: str, parent_run_id: str, commit: str,
                max_failures: int = 0, verbose: bool = False):
    """What every trial of the launch shares, its MLflow settings and live-view board included."""
    from study.launch.driver import DriverPlan  # heavy: ray (imported by driver.py)
    from study.launch.live_board import board_name

    return DriverPlan(
        study=plan.study.name, metric=plan.study.metric, mode=plan.study.mode, searched=plan.searched,
        conditions=plan.conditions,
        workers_per_trial=resources.workers_per_trial, cpus_per_worker=resources.cpus_per_worker,
        gpus_per_worker=resources.gpus_per_worker, train_storage=f"{plan.storage}/{plan.experiment}",
        max_failures=max_failures, trials_per_gpu=resources.trials_per_gpu,
        board=board_name(plan.experiment), verbose=verbose,
        tracking=TrackingSettings(tracking_uri=plan.tracking_uri, experiment_id=experiment_id,
                                  parent_run_id=parent_run_id, study=plan.study.name, git_commit=commit),
    )


def parse_integers(text: str | None, flag: str) -> tuple[int, ...]:
    """A comma-separated list of integers given to `flag`; PlanError naming the value otherwise."""
    try:
        return tuple(int(s) for s in (text or "").split(",") if s.strip())
    except ValueError:
        raise PlanError(f"{flag} takes comma-separated integers, e.g. 1,2,3; got {text!r}") from None


def resume_conflicts(args: argparse.Namespace, record: dict[str, Any]) -> list[str]:
    """Options given with --resume whose values differ from the recorded launch (the same command line is fine)."""
    found = []
    for key, value in (parse_override(text) for text in args.set):
        if record["base"].get(key) != value:
            found.append(f"--set {key}={value} (was {record['base'].get(key)})")
    data = data_overrides(args, absolute_root=True)
    for option in DATA_OPTIONS:
        value = data.get(option.key)
        if value is not None and value != record["base"][option.key]:
            found.append(f"{option.flag} {value} (was {record['base'][option.key]!r})")
    given = {
        "--profile": (args.profile, record["profile"]),
        "--num-samples": (args.num_samples, record["num_samples"]),
        "--seeds": (parse_integers(args.seeds, "--seeds") or None, tuple(record["seeds"])),
        "--rows": (parse_integers(args.rows, "--rows") or None, tuple(record.get("rows", ()))),
        "--tracking-uri": (resolve_uri(args.tracking_uri) if args.tracking_uri else None, record["tracking_uri"]),
        "--max-concurrent": (args.max_concurrent, record["resources"]["max_concurrent"]),
        "--gpus-per-worker": (args.gpus_per_worker, record["resources"]["gpus_per_worker"]),
    }
    for flag, key in (("--workers-per-trial", "workers_per_trial"), ("--cpus-per-worker", "cpus_per_worker"),
                      ("--trials-per-gpu", "trials_per_gpu")):
        value = getattr(args, key)
        given[flag] = (None if value == parser().get_default(key) else value, record["resources"].get(key, 1))
    failures = args.max_failures
    given["--max-failures"] = (None if failures == DEFAULT_MAX_FAILURES else failures,
                               record["driver"].get("max_failures", 0))
    found += [f"{flag} {now} (was {was})" for flag, (now, was) in given.items() if now is not None and now != was]
    return found


if __name__ == "__main__":
    sys.exit(main())
