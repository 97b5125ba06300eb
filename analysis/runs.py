"""A study's MLflow runs as pandas: one row per trial with its typed config and final metrics.

The layout is the one `study/tracking/` writes: one experiment per study (named after it), one parent run per
launch, one child run per trial (tag `trial_id`), params = every `TrainConfig` field as text, per-epoch metrics,
and the final trial scoring as the `scores.npz` artifact. The client is `study.tracking.store.client`; MLflow
itself is imported here (for `search_runs`' DataFrame) and nowhere else in analysis.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from search_spaces import meets
from study.tracking.runs import CONFIG_ARTIFACT, PARENT_TAG, SCORES_ARTIFACT, STUDY_TAG, TRIAL_TAG
from study.tracking.store import TrackingError, check_reachable, client, resolve_uri, store_path
from trainables.config import TrainConfig, parse_override
from trainables.manifest import resolve
from trainables.metrics import FLOOR_METRICS

CONFIG_KEYS = tuple(f.name for f in fields(TrainConfig))
METRICS = ("eer", "min_dcf", "loss", "epoch", "samples_per_s", "seconds", *FLOOR_METRICS)
"""Final (last logged) metric values kept per run (NaN where a run did not log one: floors before they existed)."""
LAUNCH_TAGS = ("git_commit", "results", "machine", "cluster")
"""Parent-run tags kept per launch: the code, its results folder (with `launch.json`), where it ran."""
FIGURES_ARTIFACT_DIR = "figures"
_SQLITE_MAGIC = b"SQLite format 3\x00"


class RunsError(RuntimeError):
    """The runs cannot be read; the message says why and what to do."""


class MissingScores(RunsError):
    """A run has no `scores.npz` artifact."""


@dataclass
class Runs:
    """The trials of a study (`table`, one row per child run) and the launches they belong to (`launches`)."""

    study: str
    uri: str
    table: pd.DataFrame
    launches: pd.DataFrame
    skipped: pd.DataFrame

    @property
    def finished(self) -> pd.DataFrame:
        """Runs that finished (including those ASHA stopped early)."""
        return self.table[self.table["status"] == "FINISHED"]

    @property
    def complete(self) -> pd.DataFrame:
        """Finished runs that trained every epoch and were evaluated."""
        done = self.finished
        return done[(~done["stopped_early"]) & done["eer"].notna()]

    @property
    def latest_launch(self) -> pd.Series:
        return self.launches.sort_values("start").iloc[-1]

    @property
    def profile(self) -> str | None:
        """The profile of the chosen launches (None when they mix profiles or did not record one)."""
        profiles = set(self.launches["profile"].dropna())
        return profiles.pop() if len(profiles) == 1 else None

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds the runs vary over (empty when they all share one): `Study.searched_keys`' launch seeds."""
        seeds = tuple(sorted({int(seed) for seed in self.table["seed"].dropna()}))
        return seeds if len(seeds) > 1 else ()


def load_runs(study: str, tracking_uri: str | None = None, launch: str | None = None) -> Runs:
    """Every child run of `study` in the store, typed.

    `launch`: None = the launches with the newest launch's profile (so CPU and paper-profile runs never mix),
    'all' = every launch, else one launch by name or parent run id.
    """
    uri = resolve_uri(tracking_uri)
    _check_store(uri)
    try:
        experiment = client(uri).get_experiment_by_name(study)
    except (MlflowException, ImportError) as error:  # an unsupported scheme, a database driver not installed
        reason = str(getattr(error, "message", error)).strip().split("\n")[0].split(" See https://")[0]
        raise RunsError(f"cannot open the MLflow store {uri}: {reason}") from None
    if experiment is None:
        raise RunsError(f"the MLflow store {uri} has no experiment '{study}'; run `python -m study.run {study} "
                        "--tracking-uri ...` first, or pass the --tracking-uri that study used")
    mlflow.set_tracking_uri(uri)
    raw = mlflow.search_runs(experiment_ids=[experiment.experiment_id], output_format="pandas")
    if raw.empty or f"tags.{PARENT_TAG}" not in raw.columns:
        raise RunsError(f"experiment '{study}' in {uri} has no trial runs yet")
    parents = raw[raw[f"tags.{PARENT_TAG}"].isna()]
    children = raw[raw[f"tags.{PARENT_TAG}"].notna()]
    launches = _launches(parents)
    chosen = _choose_launches(launches, launch, study)
    table = _trials(children)
    table = table[table["parent_run_id"].isin(chosen["parent_run_id"])].reset_index(drop=True)
    names = dict(zip(launches["parent_run_id"], launches["launch"]))
    table.insert(1, "launch", table["parent_run_id"].map(names))
    skipped = launches[~launches["parent_run_id"].isin(chosen["parent_run_id"])]
    if table.empty:
        raise RunsError(f"experiment '{study}' in {uri} has no trial runs in launch(es) "
                        f"{', '.join(chosen['launch'])}")
    return Runs(study, uri, table, chosen.reset_index(drop=True), skipped.reset_index(drop=True))


def cast_params(params: dict[str, str]) -> dict[str, object]:
    """MLflow params (text) typed by their `TrainConfig` field; keys that are no field are left out."""
    return dict(parse_override(f"{key}={value}") for key, value in params.items() if key in CONFIG_KEYS)


def metric_history(uri: str, run_id: str, key: str = "eer") -> pd.DataFrame:
    """One metric of one run per epoch (step = epoch): columns `epoch`, `value`."""
    history = client(uri).get_metric_history(run_id, key)
    frame = pd.DataFrame({"epoch": [m.step for m in history], "value": [m.value for m in history]})
    return frame.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)


def load_scores(uri: str, run: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The final trial scores and labels (1 = target) of a run, from its `scores.npz` artifact."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    store = client(uri)
    names = {a.path for a in store.list_artifacts(run["run_id"])}
    if SCORES_ARTIFACT not in names:
        raise MissingScores(
            f"run {run['run_id']} (trial {run['trial_id']}, status {run['status']}) has no {SCORES_ARTIFACT} "
            f"artifact: the trial did not finish its final evaluation, or the artifact was removed from "
            f"{run['artifact_uri']}; its bootstrap interval, DET curve and score histogram cannot be computed "
            "(rerun the trial, or choose another run)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = store.download_artifacts(run["run_id"], SCORES_ARTIFACT, tmp)
        with np.load(path) as data:
            scores, labels = np.asarray(data["scores"], dtype=np.float64), np.asarray(data["labels"]).astype(int)
    return scores, labels


def trial_list_path(uri: str, run: pd.Series) -> str | None:
    """The trial list a run was scored on: its `trials` param under its `data_root`; for the embedded corpus
    (no data_root) the resolved path its `config.json` artifact records. None when neither says."""
    data_root, trials = (run.get(key) if isinstance(run.get(key), str) else "" for key in ("data_root", "trials"))
    if data_root:
        return resolve(data_root, trials) if trials else None
    store = client(uri)
    if CONFIG_ARTIFACT not in {a.path for a in store.list_artifacts(run["run_id"])}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = store.download_artifacts(run["run_id"], CONFIG_ARTIFACT, tmp)
        recorded = json.loads(Path(path).read_text()).get("data", {}).get("trials")
    return recorded or None


def log_figures(uri: str, parent_run_id: str, paths: list[Path]) -> None:
    """Attach figure files to a launch's parent run under `figures/`."""
    store = client(uri)
    for path in paths:
        store.log_artifact(parent_run_id, str(path), FIGURES_ARTIFACT_DIR)


def matching(frame: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """The runs whose config has all of `config`'s values (`search_spaces.meets`)."""
    if frame.empty:
        return frame
    return frame[np.asarray([meets(row, config) for _, row in frame.iterrows()], dtype=bool)]


def _check_store(uri: str) -> None:
    """Refuse a local store that does not exist (MLflow would silently create an empty one)."""
    try:
        check_reachable(uri)
    except TrackingError as error:
        raise RunsError(str(error)) from None
    local = store_path(uri)
    if local is not None and not local.exists():
        raise RunsError(f"no MLflow store at {local}; pass the --tracking-uri the study was run with "
                        "(default: sqlite:///mlflow.db in the working directory)")
    if local is not None and uri.startswith("sqlite:") and not _is_sqlite(local):
        raise RunsError(f"{local} is not an SQLite database, so not the MLflow store of a study; pass the "
                        "--tracking-uri the study was run with")
    if local is not None and not uri.startswith("sqlite:") and not local.is_dir():
        raise RunsError(f"{local} is a file, not an MLflow file store (a folder); for an SQLite store pass "
                        f"--tracking-uri sqlite:///{local}")


def _is_sqlite(path: Path) -> bool:
    """Whether `path` is a non-empty SQLite database file (MLflow would turn an empty file into a store)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def _launches(parents: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame({
        "parent_run_id": parents["run_id"],
        "launch": _column(parents, "tags.launch").fillna(_column(parents, "tags.mlflow.runName")),
        "profile": _column(parents, "tags.profile"),
        "status": parents["status"],
        **{tag: _column(parents, f"tags.{tag}") for tag in LAUNCH_TAGS},
        "start": pd.to_datetime(parents["start_time"], utc=True),
        "end": pd.to_datetime(parents["end_time"], utc=True),
    })
    return frame.sort_values("start").reset_index(drop=True)


def _choose_launches(launches: pd.DataFrame, launch: str | None, study: str) -> pd.DataFrame:
    if launches.empty:
        raise RunsError(f"experiment '{study}' has no launch (parent run)")
    if launch == "all":
        return launches
    if launch is None:
        return launches[launches["profile"].fillna("") == (launches.iloc[-1]["profile"] or "")]
    chosen = launches[(launches["launch"] == launch) | (launches["parent_run_id"] == launch)]
    if chosen.empty:
        raise RunsError(f"study '{study}' has no launch {launch!r}; its launches: {', '.join(launches['launch'])}")
    return chosen


def _trials(children: pd.DataFrame) -> pd.DataFrame:
    """One typed row per child run: ids, status, timing, config fields, final metrics."""
    configs = []
    for _, row in children.iterrows():
        params = {k[len("params."):]: v for k, v in row.items() if k.startswith("params.") and isinstance(v, str)}
        configs.append(cast_params(params))
    config = pd.DataFrame(configs, index=children.index)
    start = pd.to_datetime(children["start_time"], utc=True)
    end = pd.to_datetime(children["end_time"], utc=True)
    frame = pd.DataFrame({
        "run_id": children["run_id"],
        "parent_run_id": children[f"tags.{PARENT_TAG}"],
        "trial_id": _column(children, f"tags.{TRIAL_TAG}"),
        "study": _column(children, f"tags.{STUDY_TAG}"),
        "status": children["status"],
        "stopped_early": _column(children, "tags.stopped_early").fillna("false").astype(str).str.lower() == "true",
        "world_size": pd.to_numeric(_column(children, "tags.world_size"), errors="coerce").fillna(1).astype(int),
        "start": start,
        "end": end,
        "duration_s": (end - start).dt.total_seconds(),
        "artifact_uri": children["artifact_uri"],
    })
    metrics = pd.DataFrame({key: pd.to_numeric(_column(children, f"metrics.{key}"), errors="coerce") for key in METRICS})
    frame = pd.concat([frame, config, metrics.set_index(children.index)], axis=1)
    return frame.sort_values(["trial_id", "start"]).reset_index(drop=True)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series([None] * len(frame), index=frame.index, dtype=object)
