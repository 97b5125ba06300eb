"""Score a finished trial's encoder on other trial lists (e.g. VoxCeleb1-O, -E and -H) and log the results to its run.

  python -m study.evaluate TARGET --trials LIST [--trials LIST ...] [--data-root ROOT] [--study NAME]

TARGET is an MLflow run id, a trial id of study --study, `best` (the best finished trial of --study's newest
launch), or a checkpoint folder. For every list: EER and minDCF (p_target 0.01), printed as a table and, for a
trial with an MLflow run, logged to that run as `eer_<list>` / `min_dcf_<list>` with the trial scores as the
artifact `evaluations/<list>.npz` (`<list>`: the list's file name without its suffix, e.g. `eer_trials_dev`).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from study.launch.console import plain_unless_terminal
from study.tracking.store import TrackingError, check_reachable, client, resolve_uri
from trainables.audio import AudioError
from trainables.checkpoint import CheckpointError, checkpoint_in
from trainables.config import ConfigError
from trainables.data_paths import resolve_data
from trainables.dataset import DataError
from trainables.embedder import load_embedder
from trainables.evaluation import TrialSet, evaluate
from trainables.loop import local_device
from trainables.manifest import ManifestError, resolve

RUN_ID = re.compile(r"[0-9a-f]{32}")
EVALUATIONS_ARTIFACT_DIR = "evaluations"


class EvaluateError(ValueError):
    """The target or a list cannot be evaluated; the message says why."""


@dataclass
class Target:
    """A trained encoder to evaluate: its checkpoint folder and, when it has one, its MLflow run."""

    checkpoint: Path
    run_id: str | None = None
    label: str = ""


def parser() -> argparse.ArgumentParser:
    first, rest = __doc__.split("\n", 1)
    p = argparse.ArgumentParser(prog="python -m study.evaluate", description=first, epilog=rest,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", help="MLflow run id, trial id (with --study), 'best' (with --study) or checkpoint folder")
    p.add_argument("--trials", action="append", required=True,
                   help="trial list ('label path1 path2'), relative to the data root unless absolute; repeatable")
    p.add_argument("--data-root", help="folder the lists' paths are relative to (default: the run's data root)")
    p.add_argument("--study", help="study of a trial id or of 'best'")
    p.add_argument("--mode", choices=("full", "segments"), help="whole utterances, or the paper's 10 x 3.515 s "
                   "segments (default: the run's eval_mode)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                   "sqlite:///./mlflow.db)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda (default: auto)")
    p.add_argument("--no-log", action="store_true", help="print only; log nothing to the run")
    p.add_argument("--register", metavar="NAME", help="also register the trial's logged encoder model as NAME in the "
                   "MLflow Model Registry")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    plain_unless_terminal()
    try:
        uri = resolve_uri(args.tracking_uri)
        target = find_target(args.target, args.study, uri)
        if args.register and not target.run_id:
            raise EvaluateError("--register needs a trial with an MLflow run (its logged encoder model), "
                                "not a checkpoint folder")
        embedder, cfg = load_embedder(target.checkpoint)
        device = local_device(args.device)
        embedder.to(device)
        root = args.data_root or resolve_data(cfg).data_root  # the run's (for the embedded corpus: its cache)
        mode = args.mode or cfg.eval_mode
        autocast = torch.bfloat16 if cfg.precision == "bf16" else None  # the run's own evaluation numerics
        print(f"evaluating {target.label} ({cfg.framework}, margin {cfg.margin:g}, {mode})")
        rows = []
        for trials in args.trials:
            path = resolve(root, trials)
            started = time.perf_counter()
            trial_set = TrialSet.load(path, root, cfg.sample_rate)
            result = evaluate(trial_set, embedder.frontend, embedder.encoder, device, mode,
                              cfg.eval_segment_samples, cfg.eval_segments, autocast)
            rows.append((list_name(path), len(trial_set.labels), result, time.perf_counter() - started))
            if target.run_id and not args.no_log:
                log_evaluation(uri, target.run_id, list_name(path), result, mode)
        print(table(rows))
        if target.run_id and not args.no_log:
            print(f"logged to MLflow run {target.run_id} ({uri})")
        if args.register:
            from study.tracking.models import MODEL_NAME, register

            print(f"registered {register(f'runs:/{target.run_id}/{MODEL_NAME}', args.register)}")
    except (EvaluateError, TrackingError, CheckpointError, ConfigError, ManifestError, AudioError, DataError,
            FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def find_target(text: str, study: str | None, uri: str) -> Target:
    """The checkpoint (and run) `text` names: a checkpoint folder, a run id, a trial id of `study`, or 'best'."""
    folder = Path(text)
    if folder.is_dir():
        found = checkpoint_in(folder)
        if found is None:
            raise EvaluateError(f"{folder} holds no checkpoint (no state.pt in it or in a checkpoint folder under it)")
        return Target(Path(found), None, f"checkpoint {found}")
    check_reachable(uri)
    store = client(uri)
    if RUN_ID.fullmatch(text):
        from mlflow.exceptions import MlflowException

        try:
            run = store.get_run(text)
        except MlflowException:
            raise EvaluateError(f"the MLflow store {uri} has no run {text}") from None
    elif study is None:
        raise EvaluateError(f"{text!r} is neither a folder nor an MLflow run id; for a trial id or 'best' give --study")
    else:
        run = _study_run(store, study, text, uri)
    where = run.data.tags.get("checkpoint")
    if not where:
        raise EvaluateError(f"run {run.info.run_id} records no checkpoint (tag 'checkpoint'): did its trial finish?")
    if not Path(where).is_dir():
        raise EvaluateError(f"run {run.info.run_id}'s checkpoint {where} is not a folder on this machine")
    trial = run.data.tags.get("trial_id", run.info.run_id)
    return Target(Path(where), run.info.run_id, f"trial {trial} (run {run.info.run_id})")


def _study_run(store, study: str, trial: str, uri: str):
    experiment = store.get_experiment_by_name(study)
    if experiment is None:
        raise EvaluateError(f"the MLflow store {uri} has no study {study!r}")
    if trial == "best":
        parents = store.search_runs([experiment.experiment_id], "tags.launch != ''", order_by=["start_time DESC"],
                                    max_results=1)
        if not parents:
            raise EvaluateError(f"study {study} has no launch in {uri}")
        runs = store.search_runs([experiment.experiment_id],
                                 f"tags.mlflow.parentRunId = '{parents[0].info.run_id}' and "
                                 "attributes.status = 'FINISHED'", order_by=["metrics.eer ASC"], max_results=1)
    else:
        runs = store.search_runs([experiment.experiment_id], f"tags.trial_id = '{trial}'",
                                 order_by=["start_time DESC"], max_results=1)
    if not runs:
        raise EvaluateError(f"study {study} has no {'finished trial' if trial == 'best' else 'trial ' + trial} in {uri}")
    return runs[0]


def list_name(path: str) -> str:
    """The metric-name form of a trial list's file name: `trials_dev.txt` -> `trials_dev`."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", Path(path).stem)


def log_evaluation(uri: str, run_id: str, name: str, result: dict, mode: str) -> None:
    """EER, minDCF and the trial scores of one list, on run `run_id`."""
    store = client(uri)
    store.log_metric(run_id, f"eer_{name}", float(result["eer"]))
    store.log_metric(run_id, f"min_dcf_{name}", float(result["min_dcf"]))
    store.set_tag(run_id, f"eval_mode_{name}", mode)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.npz"
        np.savez_compressed(path, scores=result["scores"], labels=result["labels"])
        store.log_artifact(run_id, str(path), EVALUATIONS_ARTIFACT_DIR)


def table(rows) -> str:
    lines = [f"{'trial list':<24} {'trials':>8} {'EER (%)':>8} {'minDCF':>8} {'seconds':>8}"]
    lines += [f"{name:<24} {n:>8,} {r['eer']:>8.2f} {r['min_dcf']:>8.4f} {s:>8.1f}" for name, n, r, s in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
